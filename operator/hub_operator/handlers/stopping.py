"""Timers that give way at once when kopf stops them.

kopf stops an object's timers before it removes the object's finalizer (deletion) and when the operator exits.  A
timer still running then holds the deletion back, and kopf looks at it again only every
``settings.background.cancellation_polling`` seconds (60 by default).  The drift timer waits for a run of its vhost,
which at 1,000 clients lasts seconds and may be queued behind other runs: measured by the system scale test, a
VHostVersion deleted during such a wait was decommissioned, then kept a minute longer, and its clients' deletions
waited for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class StopFlag(Protocol):
    """What kopf passes to timers as ``stopped`` (``kopf.DaemonStopped``): ``await stopped.wait()``."""

    def wait(self) -> Any: ...


async def unless_stopped(work: Awaitable[T], stopped: StopFlag) -> T | None:
    """The result of ``work``, or None as soon as ``stopped`` is set.

    ``work`` must be safe to abandon: a coalesced reconcile is (the shared run goes on for its other waiters and
    for the next trigger), so the timer only stops *waiting* for it.
    """
    task = asyncio.ensure_future(work)
    halt = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({task, halt}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        halt.cancel()
    if task.done():
        return task.result()
    task.cancel()
    return None
