"""The inbound message as the AMQP worker hands it over, and what the dispatcher reads from its envelope.

Reading is tolerant (missing fields read as ``""``) so that the same code serves valid messages and the
best-effort peek into invalid ones (whom to report to, whether it is itself a report).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from lxml import etree

from hub_dispatcher.xmlcodec import ROOT_TAG, MessageModel, SafeXmlParser, XmlInputError, edxl


class MessageFormat(str, enum.Enum):
    JSON = "json"
    XML = "xml"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPE_OF[self]


_CONTENT_TYPE_OF: Final = {MessageFormat.JSON: "application/json", MessageFormat.XML: "application/xml"}
_FORMAT_OF_MEDIA_TYPE: Final = {value: key for key, value in _CONTENT_TYPE_OF.items()}


def format_of_content_type(content_type: str | None) -> MessageFormat | None:
    """``application/json`` or ``application/xml`` (parameters such as ``charset`` ignored), else None."""
    if not content_type:
        return None
    media_type = content_type.partition(";")[0].strip().lower()
    return _FORMAT_OF_MEDIA_TYPE.get(media_type)


PERSISTENT_DELIVERY_MODE: Final = 2


@dataclass(frozen=True, slots=True)
class Inbound:
    """One AMQP delivery (from ``dispatch`` or ``dispatch.dlq``), or one message the broker returned."""

    body: bytes
    routing_key: str
    content_type: str | None = None
    delivery_mode: int | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    redelivered: bool = False
    exchange: str = ""


@dataclass(frozen=True, slots=True)
class Envelope:
    """What routing needs from the EDXL-DE envelope and the message beside it."""

    format: MessageFormat
    distribution_id: str
    sender_id: str
    recipients: tuple[str, ...]
    """Every ``explicitAddressValue`` (JSON carries one; XML may carry several, which is refused)."""
    address_schemes: tuple[str, ...]
    distribution_kind: str
    distribution_status: str
    date_time_expires: str
    content_count: int
    use_case_keys: tuple[str, ...]
    """Keys beside the RC-DE header in the (first) message: exactly one known key is expected."""

    @property
    def recipient_id(self) -> str:
        return self.recipients[0] if self.recipients else ""


# -- JSON ---------------------------------------------------------------------------------------------------
def read_json_envelope(document: Any, header_keys: frozenset[str]) -> Envelope:
    doc = document if isinstance(document, dict) else {}
    descriptor = _dict(doc.get("descriptor"))
    address = _dict(descriptor.get("explicitAddress"))
    content = doc.get("content")
    content_list = content if isinstance(content, list) else []
    message = _json_message(content_list)
    recipient = address.get("explicitAddressValue")
    scheme = address.get("explicitAddressScheme")
    return Envelope(
        format=MessageFormat.JSON,
        distribution_id=_str(doc.get("distributionID")),
        sender_id=_str(doc.get("senderID")),
        recipients=(recipient,) if isinstance(recipient, str) else (),
        address_schemes=(scheme,) if isinstance(scheme, str) else (),
        distribution_kind=_str(doc.get("distributionKind")),
        distribution_status=_str(doc.get("distributionStatus")),
        date_time_expires=_str(doc.get("dateTimeExpires")),
        content_count=len(content_list),
        use_case_keys=tuple(key for key in message if key not in header_keys),
    )


def _json_message(content: list[Any]) -> dict[str, Any]:
    if not content:
        return {}
    embedded = _dict(_dict(_dict(content[0]).get("jsonContent")).get("embeddedJsonContent"))
    return _dict(embedded.get("message"))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


# -- XML ----------------------------------------------------------------------------------------------------
_DISTRIBUTION_ID: Final = edxl("distributionID")
_SENDER_ID: Final = edxl("senderID")
_KIND: Final = edxl("distributionKind")
_STATUS: Final = edxl("distributionStatus")
_EXPIRES: Final = edxl("dateTimeExpires")
_ADDRESS_PATH: Final = f"{edxl('descriptor')}/{edxl('explicitAddress')}"
_CONTENT_OBJECTS: Final = f"{edxl('content')}/{edxl('contentObject')}"
_MESSAGE_PARENT: Final = f"{edxl('contentXML')}/{edxl('embeddedXMLContent')}"


def read_xml_envelope(root: etree._Element, model: MessageModel) -> Envelope:
    recipients: list[str] = []
    schemes: list[str] = []
    for address in root.iterfind(_ADDRESS_PATH):
        schemes.append(address.findtext(edxl("explicitAddressScheme"), ""))
        recipients.extend(value.text or "" for value in address.iterfind(edxl("explicitAddressValue")))
    content_objects = root.findall(_CONTENT_OBJECTS)
    keys: tuple[str, ...] = ()
    if content_objects:
        parent = content_objects[0].find(_MESSAGE_PARENT)
        message = parent.find(f"{{{model.namespace}}}message") if parent is not None else None
        if message is not None:
            keys = tuple(_key_of(child.tag, model) for child in message
                         if isinstance(child.tag, str) and child.tag not in model.header_tags)
    return Envelope(
        format=MessageFormat.XML,
        distribution_id=root.findtext(_DISTRIBUTION_ID, ""),
        sender_id=root.findtext(_SENDER_ID, ""),
        recipients=tuple(recipients),
        address_schemes=tuple(schemes),
        distribution_kind=root.findtext(_KIND, ""),
        distribution_status=root.findtext(_STATUS, ""),
        date_time_expires=root.findtext(_EXPIRES, ""),
        content_count=len(content_objects),
        use_case_keys=keys,
    )


def _key_of(tag: str, model: MessageModel) -> str:
    """The use-case key of a message child, or its Clark tag if the bundle does not know it."""
    spec = model.content.by_tag.get(tag)
    return spec.key if spec is not None else tag


# -- best-effort reading of any body (sources of reports) ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class ParsedBody:
    """A body parsed as far as it goes: JSON value, XML root, or neither (raw bytes only)."""

    raw: bytes
    format: MessageFormat | None
    json: Any = None
    xml: etree._Element | None = None
    error: str = ""

    @property
    def parsed(self) -> bool:
        return self.json is not None or self.xml is not None


def parse_body(body: bytes, message_format: MessageFormat | None, xml_parser: SafeXmlParser) -> ParsedBody:
    if message_format is MessageFormat.JSON:
        try:
            return ParsedBody(body, message_format, json=orjson.loads(body))
        except orjson.JSONDecodeError as error:
            return ParsedBody(body, message_format, error=f"body is not valid JSON: {error}")
    if message_format is MessageFormat.XML:
        try:
            return ParsedBody(body, message_format, xml=xml_parser.parse(body))
        except XmlInputError as error:
            return ParsedBody(body, message_format, error=str(error))
    return ParsedBody(body, None, error="unknown content type")


def read_envelope(parsed: ParsedBody, header_keys: frozenset[str], model: MessageModel) -> Envelope | None:
    if parsed.json is not None:
        return read_json_envelope(parsed.json, header_keys)
    if parsed.xml is not None and parsed.xml.tag == ROOT_TAG:
        return read_xml_envelope(parsed.xml, model)
    return None
