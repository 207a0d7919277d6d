"""The dispatcher's checks, in the order of HUBSANTE.md §5, as small named functions.

Each stage reads and enriches a :class:`Context` and returns ``CONTINUE`` (None) or a :class:`Rejection`
(code + a cause a human can act on).  Stages do no I/O.  The body is parsed once (``validate``), validated
once, and converted only when the recipient's preferred format differs (``route``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

import orjson
from lxml import etree

from hub_dispatcher.bundle import ModelBundle
from hub_dispatcher.message import (
    PERSISTENT_DELIVERY_MODE,
    Envelope,
    Inbound,
    MessageFormat,
    ParsedBody,
    format_of_content_type,
    read_json_envelope,
    read_xml_envelope,
)
from hub_dispatcher.outcome import Forward
from hub_dispatcher.preferences import PreferenceLookup
from hub_dispatcher.protocol import (
    DISTRIBUTION_EXCHANGE,
    ORIGINAL_ROUTING_KEY_HEADER,
    VHostProtocol,
    is_health_actor,
    is_valid_client_id,
)
from hub_dispatcher.reports import ErrorCode
from hub_dispatcher.settings import DispatcherSettings
from hub_dispatcher.usecases import BY_KEY as CATALOGUE
from hub_dispatcher.xmlcodec import ROOT_TAG, ConversionError, SafeXmlParser, XmlInputError, edxl, to_bytes

ADDRESS_SCHEME: Final = "hubex"


@dataclass(frozen=True, slots=True)
class Rejection:
    code: ErrorCode
    cause: str


CONTINUE: Final = None
StageResult = Rejection | None


@dataclass(frozen=True)
class DispatchConfig:
    """Everything the stages of one vhost read; built once per process."""

    settings: DispatcherSettings
    bundle: ModelBundle
    protocol: VHostProtocol
    preferences: PreferenceLookup
    xml_parser: SafeXmlParser


@dataclass(slots=True)
class Context:
    inbound: Inbound
    config: DispatchConfig
    now: datetime
    format: MessageFormat | None = None
    body: ParsedBody | None = None
    envelope: Envelope | None = None
    trusted_distribution_id: str | None = None
    """Set once the envelope validated: only then may a report quote the id."""
    use_case: str = ""
    expiration_ms: int | None = None
    forward: Forward | None = None


Stage = Callable[[Context], StageResult]


# 1 ------------------------------------------------------------------------------------------------------------
def check_content_type(ctx: Context) -> StageResult:
    ctx.format = format_of_content_type(ctx.inbound.content_type)
    if ctx.format is None:
        return Rejection(ErrorCode.NOT_ALLOWED_CONTENT_TYPE,
                         f"content type {ctx.inbound.content_type or '(none)'!r} is not allowed: "
                         "publish with content_type application/json or application/xml")
    return CONTINUE


# 2 ------------------------------------------------------------------------------------------------------------
def validate(ctx: Context) -> StageResult:
    body = ctx.inbound.body
    limit = ctx.config.settings.max_message_bytes
    ctx.body = ParsedBody(body, ctx.format)
    if len(body) > limit:
        return Rejection(ErrorCode.INVALID_MESSAGE, f"message is {len(body)} bytes, the limit is {limit}")
    if ctx.format is MessageFormat.JSON:
        return _validate_json(ctx, body)
    return _validate_xml(ctx, body)


def _validate_json(ctx: Context, body: bytes) -> StageResult:
    bundle = ctx.config.bundle
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return Rejection(ErrorCode.INVALID_MESSAGE, f"body is not valid JSON: {error}")
    ctx.body = ParsedBody(body, MessageFormat.JSON, json=document)
    if not bundle.is_valid_json(document):
        if bundle.is_valid_json_envelope(document):
            ctx.trusted_distribution_id = document["distributionID"]
        keys = read_json_envelope(document, bundle.header_keys).use_case_keys
        return _schema_not_found(bundle, keys) or _invalid(bundle, bundle.json_problems(document))
    ctx.envelope = read_json_envelope(document, bundle.header_keys)
    ctx.trusted_distribution_id = ctx.envelope.distribution_id
    return CONTINUE


def _validate_xml(ctx: Context, body: bytes) -> StageResult:
    bundle = ctx.config.bundle
    try:
        root = ctx.config.xml_parser.parse(body)
    except XmlInputError as error:
        return Rejection(ErrorCode.INVALID_MESSAGE, str(error))
    ctx.body = ParsedBody(body, MessageFormat.XML, xml=root)
    if root.tag != ROOT_TAG:
        return Rejection(ErrorCode.INVALID_MESSAGE, f"root element is {root.tag}, expected {ROOT_TAG}")
    result = bundle.validate_xml(root)
    if not result.valid:
        if bundle.is_valid_xml_envelope(root):
            ctx.trusted_distribution_id = read_xml_envelope(root, bundle.message_model).distribution_id
        return _foreign_namespace(bundle, root) or _invalid(bundle, list(result.problems))
    ctx.envelope = read_xml_envelope(root, bundle.message_model)
    ctx.trusted_distribution_id = ctx.envelope.distribution_id
    return CONTINUE


def _schema_not_found(bundle: ModelBundle, keys: tuple[str, ...]) -> Rejection | None:
    """301 when the message is a use case of another model version, which this vhost has no schema for."""
    foreign = [key for key in keys if key in CATALOGUE and key not in bundle.use_cases]
    if not foreign:
        return None
    return Rejection(ErrorCode.SCHEMA_NOT_FOUND,
                     f"model {bundle.version} of this vhost has no schema for use case {', '.join(foreign)} "
                     f"({', '.join(CATALOGUE[key].model for key in foreign)}): use a vhost of a model version "
                     "that defines it")


_MESSAGE_PATH: Final = f".//{edxl('embeddedXMLContent')}/*"


def _foreign_namespace(bundle: ModelBundle, root: etree._Element) -> Rejection | None:
    """301 when the message element is in another model version's namespace (e.g. eda:1.9 on a 2.x vhost)."""
    message = root.find(_MESSAGE_PATH)
    if message is None or not isinstance(message.tag, str):
        return None
    namespace = message.tag[1:].partition("}")[0] if message.tag.startswith("{") else ""
    if namespace == bundle.message_model.namespace:
        return None
    return Rejection(ErrorCode.SCHEMA_NOT_FOUND,
                     f"message namespace {namespace or '(none)'} is not the one of model {bundle.version} of this "
                     f"vhost ({bundle.message_model.namespace}): no schema to validate it")


def _invalid(bundle: ModelBundle, problems: list[str]) -> Rejection:
    return Rejection(ErrorCode.INVALID_MESSAGE,
                     f"message does not validate against model {bundle.version}: " + "; ".join(problems))


# 3 ------------------------------------------------------------------------------------------------------------
def recognise_use_case(ctx: Context) -> StageResult:
    envelope = _envelope(ctx)
    if envelope.content_count != 1:
        return Rejection(ErrorCode.UNRECOGNIZED_MESSAGE_FORMAT,
                         f"the envelope must carry exactly one content object, it carries {envelope.content_count}")
    keys = envelope.use_case_keys
    use_cases = ctx.config.bundle.use_cases
    if len(keys) != 1 or keys[0] not in use_cases:
        found = ", ".join(keys) or "nothing"
        return Rejection(ErrorCode.UNRECOGNIZED_MESSAGE_FORMAT,
                         f"the message must carry exactly one known use case beside the RC-DE header, "
                         f"found {found} (model {ctx.config.bundle.version} knows {', '.join(use_cases)})")
    ctx.use_case = keys[0]
    return CONTINUE


def enforce_allow_list(ctx: Context) -> StageResult:
    allowed = ctx.config.settings.allowed_use_cases
    if allowed is not None and ctx.use_case not in allowed:
        return Rejection(ErrorCode.INVALID_MESSAGE,
                         f"use case {ctx.use_case} is not allowed on vhost {ctx.config.settings.vhost} "
                         f"(allowed: {', '.join(sorted(allowed)) or 'none'})")
    return CONTINUE


# 4 ------------------------------------------------------------------------------------------------------------
def require_health_actor(ctx: Context) -> StageResult:
    envelope = _envelope(ctx)
    if not (is_health_actor(envelope.sender_id) or is_health_actor(envelope.recipient_id)):
        return Rejection(ErrorCode.UNROUTABLE_MESSAGE,
                         f"neither the sender {envelope.sender_id} nor the recipient {envelope.recipient_id} "
                         "is a health actor (fr.health.*): the health hub does not route between other forces")
    return CONTINUE


# 5 ------------------------------------------------------------------------------------------------------------
def check_sender(ctx: Context) -> StageResult:
    envelope = _envelope(ctx)
    claimed = ctx.config.protocol.sender_from_routing_key(ctx.inbound.routing_key)
    if claimed != envelope.sender_id:
        return Rejection(ErrorCode.SENDER_INCONSISTENCY,
                         f"senderID {envelope.sender_id} does not match the routing key "
                         f"{ctx.inbound.routing_key} you published with (client id {claimed})")
    return CONTINUE


# 6 ------------------------------------------------------------------------------------------------------------
def check_persistence(ctx: Context) -> StageResult:
    mode = ctx.inbound.delivery_mode
    if mode != PERSISTENT_DELIVERY_MODE:
        return Rejection(ErrorCode.DELIVERY_MODE_INCONSISTENCY,
                         f"delivery_mode is {mode if mode is not None else 'not set'}: "
                         f"publish persistent messages (delivery_mode={PERSISTENT_DELIVERY_MODE})")
    return CONTINUE


# 7 ------------------------------------------------------------------------------------------------------------
def check_distribution_id(ctx: Context) -> StageResult:
    envelope = _envelope(ctx)
    prefix, separator, unique = envelope.distribution_id.partition("_")
    if not separator or prefix != envelope.sender_id or not unique:
        return Rejection(ErrorCode.INVALID_MESSAGE,
                         f"distributionID {envelope.distribution_id} must be <senderID>_<unique id>, "
                         f"i.e. start with {envelope.sender_id}_")
    return CONTINUE


# 8 ------------------------------------------------------------------------------------------------------------
def check_expiry(ctx: Context) -> StageResult:
    envelope = _envelope(ctx)
    try:
        expires = parse_datetime(envelope.date_time_expires)
    except ValueError:
        return Rejection(ErrorCode.INVALID_MESSAGE,
                         f"dateTimeExpires {envelope.date_time_expires!r} is not a date-time")
    remaining_ms = int((expires - ctx.now).total_seconds() * 1000)
    if remaining_ms <= 0:
        return Rejection(ErrorCode.EXPIRED_MESSAGE_BEFORE_ROUTING,
                         f"the message expired at {envelope.date_time_expires} (dateTimeExpires), "
                         f"before the hub could route it at {ctx.now.isoformat(timespec='seconds')}")
    ctx.expiration_ms = min(ctx.config.settings.default_ttl_ms, remaining_ms)
    return CONTINUE


def parse_datetime(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


# 9 ------------------------------------------------------------------------------------------------------------
def check_recipient(ctx: Context) -> StageResult:
    envelope = _envelope(ctx)
    if len(envelope.recipients) != 1:
        return Rejection(ErrorCode.UNROUTABLE_MESSAGE,
                         f"the hub routes to exactly one recipient, the envelope names {len(envelope.recipients)}")
    if envelope.address_schemes != (ADDRESS_SCHEME,):
        return Rejection(ErrorCode.UNROUTABLE_MESSAGE,
                         f"explicitAddressScheme must be {ADDRESS_SCHEME}, got {', '.join(envelope.address_schemes)}")
    if not is_valid_client_id(envelope.recipient_id):
        return Rejection(ErrorCode.UNROUTABLE_MESSAGE,
                         f"recipient {envelope.recipient_id!r} is not a client id (fr.<domain>.<organisation>)")
    return CONTINUE


def route(ctx: Context) -> StageResult:
    config = ctx.config
    envelope = _envelope(ctx)
    assert ctx.body is not None and ctx.format is not None
    recipient = envelope.recipient_id
    wanted = config.preferences.for_client(recipient).format
    if wanted is ctx.format:
        body = ctx.inbound.body
    else:
        try:
            body = _convert(ctx, wanted)
        except ConversionError as error:
            return Rejection(ErrorCode.MESSAGE_CONVERSION_ERROR,
                             f"recipient {recipient} receives {wanted.value.upper()} and this message cannot be "
                             f"converted without loss: {error}")
    ctx.forward = Forward(
        exchange=DISTRIBUTION_EXCHANGE,
        routing_key=config.protocol.queue_for_distribution_kind(recipient, envelope.distribution_kind),
        body=body,
        content_type=wanted.content_type,
        headers={ORIGINAL_ROUTING_KEY_HEADER: ctx.inbound.routing_key},
        expiration_ms=ctx.expiration_ms,
        persistent=True,
        distribution_id=envelope.distribution_id,
        sender_id=envelope.sender_id,
        recipient_id=recipient,
        use_case=ctx.use_case,
        converted=wanted is not ctx.format,
    )
    return CONTINUE


def _convert(ctx: Context, wanted: MessageFormat) -> bytes:
    bundle = ctx.config.bundle
    check = ctx.config.settings.validate_converted
    assert ctx.body is not None
    if wanted is MessageFormat.XML:
        variant = bundle.use_cases[ctx.use_case].xml_variant
        if variant is None:
            raise ConversionError(f"use case {ctx.use_case} has no XML form in model {bundle.version}")
        root = bundle.codec.json_to_xml(ctx.body.json)
        if check and not bundle.is_valid_xml(root, variant):
            raise ConversionError("the XML copy does not validate: " + "; ".join(bundle.xml_problems(root, variant)))
        return to_bytes(root)
    xml_root: etree._Element = ctx.body.xml  # type: ignore[assignment]
    document: Any = bundle.codec.xml_to_json(xml_root)
    if check and not bundle.is_valid_json(document):
        raise ConversionError("the JSON copy does not validate: " + "; ".join(bundle.json_problems(document)))
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError as error:
        raise ConversionError(str(error)) from None


def _envelope(ctx: Context) -> Envelope:
    assert ctx.envelope is not None, "stage run before validate"
    return ctx.envelope


#: HUBSANTE.md §5, in order.  (§5.10, ack after confirm, is the AMQP worker's.)
STAGES: Final[tuple[Stage, ...]] = (
    check_content_type,
    validate,
    recognise_use_case,
    enforce_allow_list,
    require_health_actor,
    check_sender,
    check_persistence,
    check_distribution_id,
    check_expiry,
    check_recipient,
    route,
)
