"""Which deliveries of one channel may be acknowledged now, as a single ``basic.ack(multiple=True)``.

Deliveries finish out of order (one confirm arrives late, a returned message needs a report first), while a
multiple ack covers *every* outstanding delivery up to its tag.  So only the longest prefix of settled
deliveries may be acked at once.  One multiple ack per event-loop turn instead of one ack per message cut
the dispatcher's CPU per message by about 20 % and the broker's by about 25 % (docs/dispatcher.md).

Invariant the worker keeps: one consumer per channel (delivery tags are per channel), and a delivery that
is nacked is nacked *before* it is settled here, so a later multiple ack can never cover it.
"""

from __future__ import annotations

from collections import deque


class AckWindow:
    """Delivery tags of one channel, in the order received, and which of them are settled."""

    def __init__(self) -> None:
        self._received: deque[int] = deque()
        self._settled: dict[int, bool] = {}

    def received(self, tag: int) -> None:
        if self._received and tag <= self._received[-1]:
            raise ValueError(f"delivery tag {tag} received after {self._received[-1]}: tags must increase")
        self._received.append(tag)

    def settle(self, tag: int, *, acked: bool) -> None:
        """``acked=False``: the delivery was already nacked (or rejected) on the channel."""
        if tag in self._settled:
            raise ValueError(f"delivery tag {tag} settled twice")
        self._settled[tag] = acked

    def take(self) -> int | None:
        """The tag to ack with ``multiple=True`` now, or None; forgets the settled prefix either way."""
        ack_up_to: int | None = None
        while self._received and self._received[0] in self._settled:
            tag = self._received.popleft()
            if self._settled.pop(tag):
                ack_up_to = tag
        return ack_up_to

    @property
    def outstanding(self) -> int:
        """Deliveries received and not yet taken (settled or not)."""
        return len(self._received)
