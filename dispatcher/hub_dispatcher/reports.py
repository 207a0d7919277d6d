"""RS-ERROR reports: the error codes of the Hub Santé and the report message the hub sends to a sender.

A report is an EDXL-DE message from ``fr.health.hub`` (``distributionKind: Error``, expiring after one day,
addressed to the sender) whose use case is ``error``: ``errorCode`` {statusCode, statusString},
``errorCause`` (a sentence a human can act on), ``sourceMessage`` (the offending message, parsed when it
could be) and ``referencedDistributionID``.  It goes to the sender's ``.info`` queue in the sender's
preferred format.

The perimeter allow-list (our extension, HUBSANTE.md §5.3) rejects with 300 INVALID_MESSAGE and a cause
naming the use case and the vhost: clients already handle 300, and the models define no dedicated code.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
from lxml import etree

from hub_dispatcher.bundle import BundleError, ModelBundle
from hub_dispatcher.edxl import Addressing, DistributionKind, json_envelope, rc_de_header, utc_now
from hub_dispatcher.message import MessageFormat, ParsedBody
from hub_dispatcher.outcome import Drop, Report
from hub_dispatcher.preferences import PreferenceLookup
from hub_dispatcher.protocol import DISTRIBUTION_EXCHANGE, HUB_SENDER_ID, VHostProtocol, is_valid_client_id
from hub_dispatcher.xmlcodec import ROOT_TAG, ConversionError, generic_from_xml, sanitize_text, to_bytes


class ErrorCode(enum.IntEnum):
    """Hub Santé error codes; the member name is the exact ``statusString``."""

    DELIVERY_MODE_INCONSISTENCY = 100
    NOT_ALLOWED_CONTENT_TYPE = 101
    UNRECOGNIZED_MESSAGE_FORMAT = 102
    SENDER_INCONSISTENCY = 200
    INVALID_MESSAGE = 300
    SCHEMA_NOT_FOUND = 301
    EXPIRED_MESSAGE_BEFORE_ROUTING = 400
    DEAD_LETTER_QUEUED = 500
    UNROUTABLE_MESSAGE = 501
    MESSAGE_CONVERSION_ERROR = 600
    INTERNAL_CLIENT_ERROR = 700
    CASE_ALREADY_EXISTS = 701
    WRONG_MESSAGE_SEQUENCE = 702
    UNKNOWN_SENDER = 703
    INSUFFICIENT_DATA = 704

    @property
    def status_string(self) -> str:
        return self.name


#: ``referencedDistributionID`` when the offending message's id cannot be trusted or read.
UNKNOWN_DISTRIBUTION_ID: Final = "distributionID_could_not_be_extracted"
ERROR_KEY: Final = "error"
REPORT_LIFETIME: Final = timedelta(days=1)
REPORT_LANGUAGE: Final = "fr-FR"
#: Above this, a source message is quoted as truncated raw text rather than embedded.
DEFAULT_MAX_SOURCE_BYTES: Final = 256 * 1024
_RAW_KEY: Final = "rawMessage"
_RAW_QUOTE_CHARS: Final = 4096


class ReportBuilder:
    """Builds RS-ERROR reports for one vhost (its bundle, protocol and client preferences)."""

    def __init__(
        self,
        *,
        bundle: ModelBundle,
        protocol: VHostProtocol,
        preferences: PreferenceLookup,
        clock: Callable[[], datetime] = utc_now,
        new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
        max_source_bytes: int = DEFAULT_MAX_SOURCE_BYTES,
    ) -> None:
        if ERROR_KEY not in bundle.use_cases:
            raise BundleError(f"model bundle {bundle.version} defines no '{ERROR_KEY}' use case: it cannot carry reports")
        self.bundle = bundle
        self.protocol = protocol
        self.preferences = preferences
        self.clock = clock
        self.new_uuid = new_uuid
        self.max_source_bytes = max_source_bytes
        self._error_has_header = bundle.use_cases[ERROR_KEY].has_header

    def build(
        self,
        *,
        code: ErrorCode,
        cause: str,
        reported_to: str,
        referenced_distribution_id: str,
        source: ParsedBody,
        stage: str,
    ) -> Report | Drop:
        """The report to ``reported_to``'s ``.info`` queue, or a Drop if it has nowhere to go."""
        if not is_valid_client_id(reported_to):
            return Drop(f"{code.status_string} not reported: {reported_to!r} is not a client id ({cause})")
        message_format = self.preferences.for_client(reported_to).format
        distribution_id = f"{HUB_SENDER_ID}_{self.new_uuid()}"
        try:
            body = self._render(code, cause, reported_to, referenced_distribution_id, distribution_id,
                                self._source_for(source, message_format), message_format)
        except (ConversionError, orjson.JSONEncodeError, ValueError):
            # The source is what breaks rendering (too deep, unrepresentable): quote it as text instead.
            body = self._render(code, cause, reported_to, referenced_distribution_id, distribution_id,
                                _raw_source(source.raw), message_format)
        return Report(
            exchange=DISTRIBUTION_EXCHANGE,
            routing_key=self.protocol.info_queue(reported_to),
            body=body,
            content_type=message_format.content_type,
            code=code,
            referenced_distribution_id=referenced_distribution_id,
            cause=cause,
            reported_to=reported_to,
            stage=stage,
        )

    def document(self, *, code: ErrorCode, cause: str, reported_to: str, referenced_distribution_id: str,
                 distribution_id: str, source: Any) -> dict[str, Any]:
        """The JSON form of a report."""
        now = self.clock()
        error: dict[str, Any] = {
            "errorCode": {"statusCode": int(code), "statusString": code.status_string},
            "errorCause": cause,
        }
        if source is not None:
            error["sourceMessage"] = source
        error["referencedDistributionID"] = referenced_distribution_id
        addressing = Addressing(HUB_SENDER_ID, reported_to, DistributionKind.ERROR, distribution_id=distribution_id,
                                sent_at=now, expires_at=now + REPORT_LIFETIME, language=REPORT_LANGUAGE)
        message = rc_de_header(addressing) if self._error_has_header else {}
        message[ERROR_KEY] = error
        # Not copied: the source message may be large, and the report is rendered at once.
        return json_envelope(message, addressing)

    def _render(self, code: ErrorCode, cause: str, reported_to: str, referenced_distribution_id: str,
                distribution_id: str, source: Any, message_format: MessageFormat) -> bytes:
        if message_format is MessageFormat.JSON:
            document = self.document(code=code, cause=cause, reported_to=reported_to,
                                     referenced_distribution_id=referenced_distribution_id,
                                     distribution_id=distribution_id, source=source)
            return orjson.dumps(document)
        document = self.document(code=code, cause=sanitize_text(cause), reported_to=reported_to,
                                 referenced_distribution_id=sanitize_text(referenced_distribution_id),
                                 distribution_id=distribution_id, source=_sanitized(source))
        return to_bytes(self.bundle.codec.json_to_xml(document))

    def _source_for(self, source: ParsedBody, message_format: MessageFormat) -> Any:
        """The offending message as the report's ``sourceMessage``, in the report's format."""
        if len(source.raw) > self.max_source_bytes or not source.parsed:
            return _raw_source(source.raw)
        if source.xml is not None:
            if message_format is MessageFormat.XML:
                return source.xml  # embedded as is
            return self._xml_source_as_json(source.xml)
        if isinstance(source.json, dict):
            return source.json
        return _raw_source(source.raw)

    def _xml_source_as_json(self, root: etree._Element) -> dict[str, Any]:
        if root.tag == ROOT_TAG:
            try:
                return self.bundle.codec.xml_to_json(root)
            except ConversionError:
                pass
        converted = generic_from_xml(root)
        return converted if isinstance(converted, dict) else {_RAW_KEY: converted}


def _raw_source(raw: bytes) -> dict[str, str]:
    text = raw[: _RAW_QUOTE_CHARS * 4].decode("utf-8", errors="replace")
    if len(text) > _RAW_QUOTE_CHARS or len(raw) > _RAW_QUOTE_CHARS * 4:
        text = text[:_RAW_QUOTE_CHARS] + f"... [{len(raw)} bytes in all]"
    return {_RAW_KEY: text}


_MAX_SANITIZE_DEPTH: Final = 128


def _sanitized(value: Any, depth: int = 0) -> Any:
    """A copy whose strings XML can carry (reports quote hostile input; they must still be sent)."""
    if depth > _MAX_SANITIZE_DEPTH:
        raise ConversionError("source message nested too deeply to quote")
    if isinstance(value, str):
        return sanitize_text(value)
    if isinstance(value, Mapping):
        return {sanitize_text(str(key)): _sanitized(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_sanitized(item, depth + 1) for item in value]
    return value


def readable_reason(reason: str) -> str:
    """A dead-letter reason as RabbitMQ writes it, explained."""
    return _DEAD_LETTER_REASONS.get(reason, f"dead-lettered ({reason or 'no reason given'})")


_DEAD_LETTER_REASONS: Final = {
    "expired": "expired: the recipient did not consume it before its time-to-live ran out",
    "rejected": "rejected by the recipient (basic.reject or basic.nack without requeue)",
    "maxlen": "dropped because the recipient queue was full",
    "delivery_limit": "returned too many times by the recipient (delivery limit reached)",
}
