"""Structured (JSON, one object per line) logs of the dispatcher.

Every message the dispatcher settles is traced at INFO by its identifiers: input queue, distributionID,
sender, recipient, use case, outcome, the sha256 of the body as received, its size.  Never a body, and never
a report's cause at INFO: causes quote pieces of the offending message (validation errors name values), and
health messages carry patient data.  The cause goes to the sender in the report; operators who need it here
turn on DEBUG for a while.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from datetime import datetime, UTC
from typing import Any, Final, TextIO

import orjson

from hub_dispatcher.message import Inbound
from hub_dispatcher.outcome import Drop, Forward, Outcome, Report

#: Attribute of a LogRecord holding structured fields (``log.info(..., extra={FIELDS: {...}})``).
FIELDS: Final = "fields"
message_log = logging.getLogger("hub_dispatcher.messages")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def skip_unused_record_fields() -> None:
    """The JSON lines carry neither the caller's file and line nor thread or process names: not computing
    them saves ~3 us per line, i.e. per message (the logging HOWTO's "Optimization").  Process-wide, so
    called by the entry point only."""
    logging._srcfile = None  # type: ignore[attr-defined]  # documented switch: no stack walk per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def log_outcome(input_queue: str, inbound: Inbound, outcome: Outcome, *, event: str, seconds: float) -> None:
    """One line per settled publish or drop: ``event`` is routed, reported, returned or dropped."""
    if not message_log.isEnabledFor(logging.INFO):
        return  # skip the digest too: this runs once per message
    fields: dict[str, Any] = {
        "event": event,
        "input": input_queue,
        "routing_key": inbound.routing_key,
        "body_sha256": body_digest(inbound.body),
        "body_bytes": len(inbound.body),
        "redelivered": inbound.redelivered,
        "duration_ms": round(seconds * 1000, 3),
    }
    if isinstance(outcome, Forward):
        fields.update(distribution_id=outcome.distribution_id, sender=outcome.sender_id,
                      recipient=outcome.recipient_id, use_case=outcome.use_case, queue=outcome.routing_key,
                      content_type=outcome.content_type, converted=outcome.converted)
    elif isinstance(outcome, Report):
        fields.update(distribution_id=outcome.referenced_distribution_id, reported_to=outcome.reported_to,
                      code=int(outcome.code), reason=outcome.code.status_string, stage=outcome.stage,
                      queue=outcome.routing_key)
    message_log.info(event, extra={FIELDS: fields})
    if message_log.isEnabledFor(logging.DEBUG):
        detail = outcome.cause if isinstance(outcome, Report) else outcome.reason if isinstance(outcome, Drop) else ""
        if detail:
            message_log.debug(f"{event} detail", extra={FIELDS: {"body_sha256": fields["body_sha256"],
                                                                 "detail": detail}})
