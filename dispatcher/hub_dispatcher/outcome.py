"""What the pipeline decides for one input: publish a copy (Forward), publish an error report (Report), or
nothing (Drop).  The AMQP worker publishes Forward and Report alike (``mandatory``, publisher confirm) and
acks the input only once the confirm arrived; a Drop is acked at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from hub_dispatcher.reports import ErrorCode


@dataclass(frozen=True, slots=True, kw_only=True)
class Publish:
    exchange: str
    routing_key: str
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)
    expiration_ms: int | None = None
    """AMQP per-message TTL; None = the queue's own TTL applies."""
    persistent: bool = True

    @property
    def expiration(self) -> str | None:
        """The AMQP ``expiration`` property (a string of milliseconds)."""
        return None if self.expiration_ms is None else str(self.expiration_ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class Forward(Publish):
    """A routed copy of a client's message.  The labels feed metrics."""

    distribution_id: str = ""
    """For logs: the worker traces every routed message by it."""
    sender_id: str = ""
    recipient_id: str = ""
    use_case: str = ""
    converted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Report(Publish):
    """An RS-ERROR report from the hub to the sender's ``.info`` queue."""

    code: ErrorCode
    referenced_distribution_id: str
    cause: str
    reported_to: str
    stage: str
    """The pipeline stage that rejected the message (a metrics label)."""


@dataclass(frozen=True, slots=True)
class Drop:
    """Nothing to publish (e.g. a report about a report); the reason is for logs and metrics."""

    reason: str


Outcome = Union[Forward, Report, Drop]
