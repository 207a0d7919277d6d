"""Retry policy of handlers: capped exponential back-off, and the bounded wait of deletions."""

from __future__ import annotations

import datetime as dt

from hub_operator.inventory import SKIP_BROKER_CLEANUP_ANNOTATION
from hub_operator.settings import OperatorSettings
from hub_operator.status import Problem

#: Cap of the back-off of create/update retries (the drift timer also retries every drift interval).
MAX_RETRY_DELAY = 60.0


def backoff(retry: int, cap: float = MAX_RETRY_DELAY) -> float:
    """1, 2, 4, 8... seconds, capped."""
    return float(min(cap, 2 ** min(max(retry, 0), 16)))


def elapsed_since(started: dt.datetime | None, now: dt.datetime) -> dt.timedelta:
    if started is None:
        return dt.timedelta(0)
    if started.tzinfo is None:  # kopf reports naive UTC datetimes
        started = started.replace(tzinfo=dt.UTC)
    return now - started


def should_give_up(settings: OperatorSettings, elapsed: dt.timedelta) -> bool:
    limit = settings.deletion_give_up_after
    return bool(limit) and elapsed.total_seconds() >= limit


def deletion_message(kind: str, name: str, problem: Problem, settings: OperatorSettings, elapsed: dt.timedelta) -> str:
    """What a pending deletion waits for, and how to end the wait (docs/operations/deletion.md)."""
    limit = settings.deletion_give_up_after
    bound = (f"it completes without broker clean-up after {limit:.0f}s of failures ({elapsed.total_seconds():.0f}s so far)"
             if limit else "it is retried until the broker answers")
    return (
        f"deletion waiting: {problem.message}. Retried with back-off (at most every "
        f"{settings.deletion_retry_max_delay:.0f}s); {bound}. To complete it now without cleaning up the broker: "
        f"kubectl annotate {kind.lower()} {name} {SKIP_BROKER_CLEANUP_ANNOTATION}=true"
    )
