"""The dispatcher's pure core: one input in, one :data:`Outcome` out, no I/O.

* :meth:`Pipeline.process` — a message from ``dispatch``: the stages of :mod:`hub_dispatcher.stages`, then a
  Forward to the recipient, or a Report to the sender, or a Drop (never a report about a report).
* :meth:`Pipeline.process_dead_letter` — a message from ``dispatch.dlq``: 500 DEAD_LETTER_QUEUED to its
  original sender (dead-lettered ``.info`` messages are dropped silently).
* :meth:`Pipeline.process_returned` — a Forward the broker returned (``basic.return`` NO_ROUTE, 312):
  501 UNROUTABLE_MESSAGE to the sender.

None of them raises: an unexpected error becomes a report flagged ``stage="internal"`` (or a Drop).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from hub_dispatcher.bundle import ModelBundle
from hub_dispatcher.message import (
    Envelope,
    Inbound,
    ParsedBody,
    format_of_content_type,
    parse_body,
    read_envelope,
)
from hub_dispatcher.outcome import Drop, Outcome
from hub_dispatcher.preferences import PreferenceLookup, Preferences, PreferencesFile
from hub_dispatcher.protocol import HUB_SENDER_ID, ORIGINAL_ROUTING_KEY_HEADER, QueueKind, for_profile
from hub_dispatcher.reports import (
    ERROR_KEY,
    UNKNOWN_DISTRIBUTION_ID,
    ErrorCode,
    ReportBuilder,
    readable_reason,
    utc_now,
)
from hub_dispatcher.settings import DispatcherSettings
from hub_dispatcher.stages import STAGES, Context, DispatchConfig, Rejection, Stage
from hub_dispatcher.xmlcodec import SafeXmlParser, XmlLimits

log = logging.getLogger(__name__)

INTERNAL_STAGE = "internal"


class Pipeline:
    def __init__(
        self,
        *,
        settings: DispatcherSettings,
        bundle: ModelBundle,
        preferences: PreferenceLookup,
        clock: Callable[[], datetime] = utc_now,
        new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
        stages: Sequence[Stage] = STAGES,
    ) -> None:
        protocol = for_profile(settings.profile)
        self.config = DispatchConfig(
            settings=settings,
            bundle=bundle,
            protocol=protocol,
            preferences=preferences,
            xml_parser=SafeXmlParser(XmlLimits(settings.max_message_bytes, settings.max_depth)),
        )
        self.reports = ReportBuilder(bundle=bundle, protocol=protocol, preferences=preferences,
                                     clock=clock, new_uuid=new_uuid)
        self.clock = clock
        self.stages = tuple(stages)

    @classmethod
    def from_settings(cls, settings: DispatcherSettings, *, stages: Sequence[Stage] = STAGES) -> Pipeline:
        """Loads (and compiles) the bundle and the preferences file: a BundleError here is a start-up error.
        ``stages`` lets the worker time each stage (metrics) without changing them."""
        bundle = ModelBundle.load(settings.bundle_dir, max_depth=settings.max_depth)
        preferences: PreferenceLookup = (
            PreferencesFile(settings.preferences_file) if settings.preferences_file else Preferences.empty()
        )
        return cls(settings=settings, bundle=bundle, preferences=preferences, stages=stages)

    # ---- dispatch -----------------------------------------------------------------------------------------
    def process(self, inbound: Inbound) -> Outcome:
        ctx = Context(inbound=inbound, config=self.config, now=self.clock())
        try:
            for stage in self.stages:
                rejection = stage(ctx)
                if rejection is not None:
                    return self._reject(ctx, rejection, stage.__name__)
            if ctx.forward is None:
                raise RuntimeError("the stages ended without a route")
            return ctx.forward
        except Exception as error:  # the worker must never crash on one message
            log.exception("internal error while dispatching a message from %s", inbound.routing_key)
            return self._internal_failure(ctx, error)

    def _reject(self, ctx: Context, rejection: Rejection, stage: str) -> Outcome:
        envelope = ctx.envelope or self._peek(ctx.body)
        if envelope is not None and is_report(envelope):
            return Drop(f"{rejection.code.status_string} on a report is not reported (no loops): {rejection.cause}")
        return self.reports.build(
            code=rejection.code,
            cause=rejection.cause,
            reported_to=self.config.protocol.sender_from_routing_key(ctx.inbound.routing_key),
            referenced_distribution_id=ctx.trusted_distribution_id or UNKNOWN_DISTRIBUTION_ID,
            source=ctx.body or ParsedBody(ctx.inbound.body, ctx.format),
            stage=stage,
        )

    def _internal_failure(self, ctx: Context, error: Exception) -> Outcome:
        try:
            return self._reject(ctx, Rejection(
                ErrorCode.INVALID_MESSAGE,
                f"the hub could not process this message ({type(error).__name__}); please report it to the hub team",
            ), INTERNAL_STAGE)
        except Exception:
            log.exception("could not even report an internal error")
            return Drop(f"internal error: {type(error).__name__}: {error}")

    # ---- dead letters -------------------------------------------------------------------------------------
    def process_dead_letter(self, inbound: Inbound) -> Outcome:
        try:
            return self._dead_letter(inbound)
        except Exception as error:
            log.exception("internal error while handling a dead letter")
            return Drop(f"internal error on a dead letter: {type(error).__name__}: {error}")

    def _dead_letter(self, inbound: Inbound) -> Outcome:
        reason, queue = last_death(inbound.headers)
        if self.config.protocol.queue_kind(queue) is QueueKind.INFO:
            return Drop(f"dead-lettered message from info queue {queue} ({reason}) dropped silently")
        original = header_text(inbound.headers.get(ORIGINAL_ROUTING_KEY_HEADER))
        if not original:
            return Drop(f"dead letter from {queue or 'an unknown queue'} without {ORIGINAL_ROUTING_KEY_HEADER}: "
                        "its sender is unknown")
        source, envelope = self._read(inbound)
        if envelope is not None and is_report(envelope):
            return Drop(f"dead-lettered report from {queue} dropped (no loops)")
        distribution_id = (envelope.distribution_id if envelope else "") or UNKNOWN_DISTRIBUTION_ID
        recipient = (envelope.recipient_id if envelope else "") or queue
        return self.reports.build(
            code=ErrorCode.DEAD_LETTER_QUEUED,
            cause=f"message {distribution_id} to {recipient} was not delivered: {readable_reason(reason)} "
                  f"(queue {queue or 'unknown'})",
            reported_to=self.config.protocol.sender_from_routing_key(original),
            referenced_distribution_id=distribution_id,
            source=source,
            stage="dead_letter",
        )

    # ---- broker returns (NO_ROUTE) --------------------------------------------------------------------------
    def process_returned(self, returned: Inbound) -> Outcome:
        """For a message published with ``mandatory`` that the broker returned (no queue bound)."""
        try:
            return self._returned(returned)
        except Exception as error:
            log.exception("internal error while handling a returned message")
            return Drop(f"internal error on a returned message: {type(error).__name__}: {error}")

    def _returned(self, returned: Inbound) -> Outcome:
        source, envelope = self._read(returned)
        if envelope is not None and is_report(envelope):
            return Drop(f"returned report dropped: no queue {returned.routing_key} (no loops)")
        original = header_text(returned.headers.get(ORIGINAL_ROUTING_KEY_HEADER))
        if not original:
            return Drop(f"returned message to {returned.routing_key} without {ORIGINAL_ROUTING_KEY_HEADER}")
        distribution_id = (envelope.distribution_id if envelope else "") or UNKNOWN_DISTRIBUTION_ID
        recipient = envelope.recipient_id if envelope else returned.routing_key
        return self.reports.build(
            code=ErrorCode.UNROUTABLE_MESSAGE,
            cause=f"recipient {recipient} is not a client of vhost {self.config.settings.vhost}: "
                  f"there is no queue {returned.routing_key}",
            reported_to=self.config.protocol.sender_from_routing_key(original),
            referenced_distribution_id=distribution_id,
            source=source,
            stage="returned",
        )

    # ---- helpers ------------------------------------------------------------------------------------------
    def _read(self, inbound: Inbound) -> tuple[ParsedBody, Envelope | None]:
        source = parse_body(inbound.body, format_of_content_type(inbound.content_type), self.config.xml_parser)
        return source, self._peek(source)

    def _peek(self, body: ParsedBody | None) -> Envelope | None:
        if body is None or not body.parsed:
            return None
        bundle = self.config.bundle
        return read_envelope(body, bundle.header_keys, bundle.message_model)


def is_report(envelope: Envelope) -> bool:
    """An error report (from the hub or from a client): never reported on, so reports cannot loop."""
    return (envelope.distribution_kind == "Error" or envelope.sender_id == HUB_SENDER_ID
            or ERROR_KEY in envelope.use_case_keys)


def header_text(value: Any) -> str:
    """AMQP header strings arrive as str or bytes depending on the client library."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else ""


def last_death(headers: Mapping[str, Any]) -> tuple[str, str]:
    """(reason, queue) of the latest dead-lettering: RabbitMQ puts the newest ``x-death`` entry first."""
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        latest = deaths[0]
        return header_text(latest.get("reason")), header_text(latest.get("queue"))
    return header_text(headers.get("x-first-death-reason")), header_text(headers.get("x-first-death-queue"))
