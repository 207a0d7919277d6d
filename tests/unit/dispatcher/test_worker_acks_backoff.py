"""The worker's small pure parts: which deliveries may be acked at once, and reconnection delays."""

from __future__ import annotations

import pytest

from hub_dispatcher.acks import AckWindow
from hub_dispatcher.backoff import Backoff


def window_with(*tags: int) -> AckWindow:
    window = AckWindow()
    for tag in tags:
        window.received(tag)
    return window


def test_a_settled_prefix_is_acked_with_its_last_tag() -> None:
    window = window_with(1, 2, 3, 4)
    window.settle(1, acked=True)
    window.settle(2, acked=True)

    assert window.take() == 2
    assert window.outstanding == 2
    assert window.take() is None  # nothing new settled


def test_a_late_delivery_holds_back_the_ones_settled_after_it() -> None:
    window = window_with(1, 2, 3)
    window.settle(2, acked=True)
    window.settle(3, acked=True)

    assert window.take() is None  # acking 3 with multiple would ack 1, still in flight
    window.settle(1, acked=True)
    assert window.take() == 3
    assert window.outstanding == 0


def test_a_nacked_delivery_is_skipped_never_covered_by_a_multiple_ack() -> None:
    window = window_with(1, 2, 3)
    window.settle(1, acked=True)
    window.settle(2, acked=False)  # already nacked on the channel

    assert window.take() == 1
    window.settle(3, acked=True)
    assert window.take() == 3  # 2 is no longer outstanding at the broker


def test_a_prefix_of_nacks_only_acks_nothing() -> None:
    window = window_with(5, 6)
    window.settle(5, acked=False)
    window.settle(6, acked=False)

    assert window.take() is None
    assert window.outstanding == 0


def test_tags_must_increase_and_settle_once() -> None:
    window = window_with(3)
    with pytest.raises(ValueError, match="tags must increase"):
        window.received(3)
    window.settle(3, acked=True)
    with pytest.raises(ValueError, match="settled twice"):
        window.settle(3, acked=True)


def test_backoff_doubles_up_to_its_maximum_with_jitter_in_the_upper_half() -> None:
    drawn: list[tuple[float, float]] = []

    def upper_bound(low: float, high: float) -> float:
        drawn.append((low, high))
        return high

    backoff = Backoff(0.5, 4.0, uniform=upper_bound)

    delays = [backoff.next_delay() for _ in range(6)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(low == high / 2 for low, high in drawn)


def test_backoff_starts_again_after_a_reset() -> None:
    backoff = Backoff(1.0, 8.0, uniform=lambda low, high: high)
    for _ in range(3):
        backoff.next_delay()

    backoff.reset()

    assert backoff.next_delay() == 1.0


def test_backoff_keeps_its_cap_after_very_many_attempts() -> None:
    backoff = Backoff(0.5, 30.0, uniform=lambda low, high: high)
    for _ in range(2000):
        delay = backoff.next_delay()
    assert delay == 30.0


@pytest.mark.parametrize(("initial", "maximum"), [(0, 1), (2, 1), (-1, 5)])
def test_backoff_refuses_nonsense_bounds(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="0 < initial <= maximum"):
        Backoff(initial, maximum)
