"""Building Hub Santé messages as a client does: a use case wrapped in the RC-DE header and the EDXL-DE
envelope (JSON or XML), the RC-REF functional acknowledgement of a received message, and the bare use-case
examples a model bundle ships (``sample/examples/<MODEL>/*.json``).

Used by ``hubctl send`` / ``hubctl listen`` (a test client like the national test LRM), by the dispatcher's
error reports, and by the tests.  Nothing here validates: callers check the result against the vhost's
:class:`~hub_dispatcher.bundle.ModelBundle` when they need to.
"""

from __future__ import annotations

import copy
import enum
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final

import orjson
from lxml import etree

from hub_dispatcher.protocol import is_valid_client_id
from hub_dispatcher.usecases import BY_KEY, USE_CASES
from hub_dispatcher.xmlcodec import EDXL_NS, ROOT_TAG, XLINK_NS, SafeXmlParser, XmlInputError, edxl

ADDRESS_SCHEME: Final = "hubex"
DEFAULT_LANGUAGE: Final = "fr-FR"
#: How long a message built here stays deliverable unless told otherwise.
DEFAULT_LIFETIME: Final = timedelta(days=1)
#: The use case of a functional acknowledgement (RC-REF).
REFERENCE_KEY: Final = "reference"
ERROR_KEY: Final = "error"
EXAMPLES_DIR: Final = Path("sample") / "examples"

_XLINK_TYPE: Final = f"{{{XLINK_NS}}}type"


class EdxlError(ValueError):
    """A message that cannot be built (bad client id, unknown use case, missing example...)."""


class DistributionKind(str, enum.Enum):
    REPORT = "Report"
    UPDATE = "Update"
    CANCEL = "Cancel"
    ACK = "Ack"
    ERROR = "Error"


class DistributionStatus(str, enum.Enum):
    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    SYSTEM = "System"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def edxl_datetime(moment: datetime) -> str:
    """EDXL date-times carry a numeric offset and no fraction (the schemas refuse ``Z``); the offset given is
    kept (a French client writes +01:00 or +02:00, the hub +00:00)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise EdxlError(f"date-time {moment.isoformat()} has no time zone")
    return moment.replace(microsecond=0).isoformat()


def new_distribution_id(sender: str) -> str:
    """``<senderID>_<uuid>``: the dispatcher checks that the prefix is the sender."""
    return f"{sender}_{uuid.uuid4()}"


def hubex_uri(client_id: str) -> str:
    return f"{ADDRESS_SCHEME}:{client_id}"


def _short_name(client_id: str) -> str:
    return client_id.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Addressing:
    """Who sends what to whom, and when: everything the envelope and the header say besides the content."""

    sender: str
    recipient: str
    kind: DistributionKind = DistributionKind.REPORT
    status: DistributionStatus = DistributionStatus.ACTUAL
    distribution_id: str = ""
    sent_at: datetime | None = None
    expires_at: datetime | None = None
    language: str = DEFAULT_LANGUAGE

    @classmethod
    def create(
        cls,
        sender: str,
        recipient: str,
        *,
        kind: DistributionKind | str = DistributionKind.REPORT,
        status: DistributionStatus | str = DistributionStatus.ACTUAL,
        distribution_id: str | None = None,
        sent_at: datetime | None = None,
        expires_at: datetime | None = None,
        lifetime: timedelta = DEFAULT_LIFETIME,
        language: str = DEFAULT_LANGUAGE,
    ) -> Addressing:
        """Checked addressing; the id defaults to a fresh ``<sender>_<uuid>``, the times to now + lifetime."""
        for role, client_id in (("sender", sender), ("recipient", recipient)):
            if not is_valid_client_id(client_id):
                raise EdxlError(f"{role} {client_id!r} is not a client id (fr.<domain>.<organisation>[.<unit>])")
        try:
            kind, status = DistributionKind(kind), DistributionStatus(status)
        except ValueError as error:
            raise EdxlError(str(error)) from None
        sent = sent_at or utc_now()
        expires = expires_at or sent + lifetime
        if expires <= sent:
            raise EdxlError(f"the message would expire ({edxl_datetime(expires)}) before it is sent ({edxl_datetime(sent)})")
        return cls(sender, recipient, kind, status, distribution_id or new_distribution_id(sender), sent, expires, language)

    @property
    def sent(self) -> str:
        return edxl_datetime(self.sent_at or utc_now())

    @property
    def expires(self) -> str:
        return edxl_datetime(self.expires_at or utc_now() + DEFAULT_LIFETIME)


def rc_de_header(addressing: Addressing) -> dict[str, Any]:
    """The RC-DE header (``distributionElement``) that precedes the use case in ``message``."""
    return {
        "messageId": addressing.distribution_id,
        "sender": {"name": _short_name(addressing.sender), "URI": hubex_uri(addressing.sender)},
        "sentAt": addressing.sent,
        "kind": addressing.kind.value,
        "status": addressing.status.value,
        "recipient": [{"name": _short_name(addressing.recipient), "URI": hubex_uri(addressing.recipient)}],
    }


#: The header's keys: everything else beside them in ``message`` is the use case.
HEADER_KEYS: Final = frozenset(rc_de_header(Addressing("fr.a.b", "fr.a.b", distribution_id="x")))


def json_message(use_case: Mapping[str, Any], addressing: Addressing, *, with_header: bool = True) -> dict[str, Any]:
    """A full JSON EDXL-DE message carrying (a copy of) ``use_case`` (``{"createCase": {...}}``)."""
    message = rc_de_header(addressing) if with_header else {}
    message.update(copy.deepcopy(dict(use_case)))
    return json_envelope(message, addressing)


def json_envelope(message: dict[str, Any], addressing: Addressing) -> dict[str, Any]:
    """The EDXL-DE envelope around a complete ``message`` (header and use case), which is not copied."""
    return {
        "distributionID": addressing.distribution_id,
        "senderID": addressing.sender,
        "dateTimeSent": addressing.sent,
        "dateTimeExpires": addressing.expires,
        "distributionStatus": addressing.status.value,
        "distributionKind": addressing.kind.value,
        "descriptor": {
            "language": addressing.language,
            "explicitAddress": {"explicitAddressScheme": ADDRESS_SCHEME, "explicitAddressValue": addressing.recipient},
        },
        "content": [{"jsonContent": {"embeddedJsonContent": {"message": message}}}],
    }


def xml_message(
    use_case_element: bytes | etree._Element,
    message_namespace: str,
    addressing: Addressing,
    *,
    with_header: bool = True,
) -> bytes:
    """A full XML EDXL-DE message around a bare use-case element (``sample/examples/*/*.xml``).

    ``message_namespace`` is the bundle's (``urn:emergency:cisu:2.0`` in models 1.x/2.x,
    ``urn:emergency:eda:1.9`` in 3.x): ``ModelBundle.message_model.namespace``.
    """
    root = etree.Element(ROOT_TAG, {_XLINK_TYPE: "extended"}, nsmap={None: EDXL_NS, "xlink": XLINK_NS})
    for name, value in (("distributionID", addressing.distribution_id), ("senderID", addressing.sender),
                        ("dateTimeSent", addressing.sent), ("dateTimeExpires", addressing.expires),
                        ("distributionStatus", addressing.status.value), ("distributionKind", addressing.kind.value)):
        etree.SubElement(root, edxl(name)).text = value
    descriptor = etree.SubElement(root, edxl("descriptor"), {_XLINK_TYPE: "resource"})
    etree.SubElement(descriptor, edxl("language")).text = addressing.language
    address = etree.SubElement(descriptor, edxl("explicitAddress"))
    etree.SubElement(address, edxl("explicitAddressScheme")).text = ADDRESS_SCHEME
    etree.SubElement(address, edxl("explicitAddressValue")).text = addressing.recipient
    content = etree.SubElement(root, edxl("content"), {_XLINK_TYPE: "resource"})
    content_object = etree.SubElement(content, edxl("contentObject"), {_XLINK_TYPE: "resource"})
    embedded = etree.SubElement(etree.SubElement(content_object, edxl("contentXML")), edxl("embeddedXMLContent"))
    message = etree.SubElement(embedded, f"{{{message_namespace}}}message", nsmap={None: message_namespace})
    if with_header:
        _append_xml_header(message, message_namespace, rc_de_header(addressing))
    element = etree.fromstring(use_case_element) if isinstance(use_case_element, bytes) else use_case_element
    message.append(copy.deepcopy(element))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _append_xml_header(message: etree._Element, namespace: str, header: Mapping[str, Any]) -> None:
    """The header in its XSD order (messageId, sender, sentAt, kind, status, recipient+)."""

    def child(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        element = etree.SubElement(parent, f"{{{namespace}}}{name}")
        element.text = text
        return element

    def party(name: str, value: Mapping[str, str]) -> None:
        element = child(message, name)
        child(element, "name", value["name"])
        child(element, "URI", value["URI"])

    child(message, "messageId", header["messageId"])
    party("sender", header["sender"])
    for name in ("sentAt", "kind", "status"):
        child(message, name, header[name])
    for recipient in header["recipient"]:
        party("recipient", recipient)


# -- reading what was received ----------------------------------------------------------------------------
class ReceivedFormat(str, enum.Enum):
    JSON = "json"
    XML = "xml"


@dataclass(frozen=True)
class ReceivedMessage:
    """What a client needs to know about a message it received (tolerant: missing fields read as "")."""

    format: ReceivedFormat
    distribution_id: str
    sender_id: str
    recipient_id: str
    distribution_kind: str
    use_case: str
    """The use-case key beside the header (``createCase``, ``reference``, ``error``...), "" if none."""
    referenced_distribution_id: str = ""
    """For an ack (RC-REF) or an error report (RS-ERROR): the id of the message it is about."""
    error_code: int | None = None
    error_status: str = ""
    error_cause: str = ""
    document: Any = None
    """The parsed JSON document (None for XML)."""

    @property
    def is_ack(self) -> bool:
        return self.distribution_kind == DistributionKind.ACK.value or self.use_case == REFERENCE_KEY

    @property
    def is_error(self) -> bool:
        return self.distribution_kind == DistributionKind.ERROR.value or self.use_case == ERROR_KEY

    def refers_to(self, distribution_id: str) -> bool:
        return bool(distribution_id) and self.referenced_distribution_id == distribution_id

    @property
    def wants_ack(self) -> bool:
        """Whether a client answers it with RC-REF: never an ack, an error report or an anonymous message."""
        return not self.is_ack and not self.is_error and bool(self.distribution_id) and is_valid_client_id(self.sender_id)


def read_received(body: bytes, content_type: str | None, parser: SafeXmlParser | None = None) -> ReceivedMessage:
    """Reads a delivered message (JSON or XML by content type, else by its first byte)."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    looks_like_xml = body.lstrip()[:1] == b"<"
    if media_type == "application/xml" or (media_type != "application/json" and looks_like_xml):
        return _read_xml(body, parser or SafeXmlParser())
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise EdxlError(f"body is neither JSON nor XML: {error}") from None
    return _read_json(document)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _read_json(document: Any) -> ReceivedMessage:
    doc = _dict(document)
    content = doc.get("content")
    first = content[0] if isinstance(content, list) and content else {}
    message = _dict(_dict(_dict(_dict(first).get("jsonContent")).get("embeddedJsonContent")).get("message"))
    keys = [key for key in message if key not in HEADER_KEYS]
    use_case = keys[0] if len(keys) == 1 else ""
    body = _dict(message.get(use_case))
    error_code = _dict(body.get("errorCode")) if use_case == ERROR_KEY else {}
    code = error_code.get("statusCode")
    return ReceivedMessage(
        format=ReceivedFormat.JSON,
        distribution_id=_text(doc.get("distributionID")),
        sender_id=_text(doc.get("senderID")),
        recipient_id=_text(_dict(_dict(doc.get("descriptor")).get("explicitAddress")).get("explicitAddressValue")),
        distribution_kind=_text(doc.get("distributionKind")),
        use_case=use_case,
        referenced_distribution_id=_text(body.get("distributionID") if use_case == REFERENCE_KEY
                                         else body.get("referencedDistributionID")),
        error_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        error_status=_text(error_code.get("statusString")),
        error_cause=_text(body.get("errorCause")),
        document=document,
    )


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _read_xml(body: bytes, parser: SafeXmlParser) -> ReceivedMessage:
    try:
        root = parser.parse(body)
    except XmlInputError as error:
        raise EdxlError(str(error)) from None
    if root.tag != ROOT_TAG:
        raise EdxlError(f"XML root is {_local(root.tag) or root.tag!r}, not an EDXL-DE edxlDistribution")
    message = next((element for element in root.iter() if _local(element.tag) == "message"), None)
    children = [child for child in (message if message is not None else []) if isinstance(child.tag, str)]
    keys = [_local(child.tag) for child in children if _local(child.tag) not in HEADER_KEYS]
    use_case = keys[0] if len(keys) == 1 else ""
    use_case_element = next((child for child in children if _local(child.tag) == use_case), None)

    def find(element: etree._Element | None, *path: str) -> str:
        for name in path:
            element = None if element is None else next(
                (child for child in element if _local(child.tag) == name), None)
        return (element.text or "").strip() if element is not None else ""

    code = find(use_case_element, "errorCode", "statusCode")
    return ReceivedMessage(
        format=ReceivedFormat.XML,
        distribution_id=root.findtext(edxl("distributionID"), "").strip(),
        sender_id=root.findtext(edxl("senderID"), "").strip(),
        recipient_id=find(root, "descriptor", "explicitAddress", "explicitAddressValue"),
        distribution_kind=root.findtext(edxl("distributionKind"), "").strip(),
        use_case=use_case,
        referenced_distribution_id=find(use_case_element, "distributionID") if use_case == REFERENCE_KEY
        else find(use_case_element, "referencedDistributionID"),
        error_code=int(code) if code.isdigit() else None,
        error_status=find(use_case_element, "errorCode", "statusString"),
        error_cause=find(use_case_element, "errorCause"),
    )


def functional_ack(received: ReceivedMessage, *, acknowledged_by: str, sent_at: datetime | None = None,
                   lifetime: timedelta = DEFAULT_LIFETIME) -> dict[str, Any]:
    """The RC-REF acknowledgement ``acknowledged_by`` sends back to the sender of ``received`` (JSON).

    It lands on the original sender's ``.ack`` queue.  Acks and error reports are never acknowledged.
    """
    if not received.wants_ack:
        what = "an ack" if received.is_ack else "an error report" if received.is_error else "a message without sender or id"
        raise EdxlError(f"{received.distribution_id or 'message'} is {what}: clients never acknowledge it")
    addressing = Addressing.create(acknowledged_by, received.sender_id, kind=DistributionKind.ACK,
                                   sent_at=sent_at, lifetime=lifetime)
    return json_message({REFERENCE_KEY: {"distributionID": received.distribution_id}}, addressing)


# -- the examples of a bundle ------------------------------------------------------------------------------
@dataclass(frozen=True)
class UseCaseExample:
    """A bare use-case object shipped by a bundle (``sample/examples/RC-EDA/RC-EDA-FuiteDeGaz....json``)."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def model(self) -> str:
        return self.path.parent.name

    def use_case(self) -> dict[str, Any]:
        """The bare use-case object, e.g. ``{"createCase": {...}}``."""
        try:
            value = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise EdxlError(f"{self.path}: not a readable JSON example: {error}") from None
        if not isinstance(value, dict) or len(value) != 1:
            raise EdxlError(f"{self.path}: an example holds exactly one use-case key, found {list(value)[:5]}")
        return value

    @property
    def key(self) -> str:
        return next(iter(self.use_case()))


def bundle_examples(bundle_dir: Path, suffix: str = "json") -> Iterator[UseCaseExample]:
    """Every example of the bundle with this suffix (``json`` or ``xml``), sorted by model then name."""
    for path in sorted((bundle_dir / EXAMPLES_DIR).glob(f"*/*.{suffix}")):
        yield UseCaseExample(path)


def use_case_key(name: str) -> str:
    """``createCase`` for ``createCase``, ``RC-EDA`` or ``rc-eda`` (the key or its model name)."""
    if name in BY_KEY:
        return name
    by_model = {use_case.model.lower(): use_case.key for use_case in USE_CASES}
    by_lower_key = {use_case.key.lower(): use_case.key for use_case in USE_CASES}
    found = by_model.get(name.lower()) or by_lower_key.get(name.lower())
    if found is None:
        known = ", ".join(f"{use_case.key} ({use_case.model})" for use_case in USE_CASES)
        raise EdxlError(f"unknown use case {name!r}; known: {known}")
    return found


def find_example(bundle_dir: Path, use_case: str, name: str | None = None) -> UseCaseExample:
    """The JSON example of ``use_case`` (key or model name) whose file name contains ``name`` (first if None)."""
    key = use_case_key(use_case)
    candidates = [example for example in bundle_examples(bundle_dir) if example.key == key]
    if not candidates:
        offered = sorted({example.key for example in bundle_examples(bundle_dir)})
        raise EdxlError(f"model bundle {bundle_dir.name} has no example of {key}; examples exist for: "
                        f"{', '.join(offered) or 'nothing'} (or pass your own use case file)")
    if name is None:
        return candidates[0]
    matching = [example for example in candidates if name.lower() in example.name.lower()]
    if len(matching) != 1:
        names = ", ".join(example.name for example in candidates)
        problem = "no" if not matching else "more than one"
        raise EdxlError(f"{problem} example of {key} matches {name!r}; choose among: {names}")
    return matching[0]
