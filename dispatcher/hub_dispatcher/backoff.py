"""Delays between reconnection attempts: exponential, capped, with jitter.

Jitter spreads the replicas of a vhost (and the dispatchers of every vhost) that lost the broker at the same
moment, so that they do not all reconnect in the same instant when it comes back.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """The n-th delay is drawn uniformly in [d/2, d] with d = min(maximum, initial * 2**n) ("equal jitter":
    never hammering the broker, never waiting longer than ``maximum``)."""

    def __init__(self, initial: float, maximum: float, *, uniform: Callable[[float, float], float] = random.uniform):
        if initial <= 0 or maximum < initial:
            raise ValueError(f"need 0 < initial <= maximum, got initial={initial}, maximum={maximum}")
        self.initial = initial
        self.maximum = maximum
        self._uniform = uniform
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * 2 ** min(self._attempt, 62))
        self._attempt += 1
        return self._uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._attempt = 0

    @property
    def attempts(self) -> int:
        return self._attempt
