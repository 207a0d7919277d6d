"""Timers give way at once when kopf stops them, so that a deletion never waits for a drift run.

Found by tests/system/test_scale_operator.py: with 1,000 clients a VHostVersion deleted while its drift timer was
waiting for a run kept its finalizer a minute longer (kopf's default re-check of a timer still running).
"""

from __future__ import annotations

import asyncio

import kopf
from hub_operator.handlers import register
from hub_operator.handlers.stopping import unless_stopped
from hub_operator.reconcile.coalescer import Coalescer

from tests.unit.operator.operator_support import Hub


class Flag:
    """Stands in for kopf's ``stopped``."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def wait(self) -> asyncio.Future[bool]:
        return asyncio.ensure_future(self.event.wait())


async def test_the_result_of_work_that_ends_first() -> None:
    async def work() -> str:
        return "done"

    assert await unless_stopped(work(), Flag()) == "done"


async def test_stopping_ends_the_wait_at_once_but_not_the_shared_run() -> None:
    release = asyncio.Event()
    finished: list[str] = []

    async def run(key: str) -> str:
        await release.wait()
        finished.append(key)
        return key

    coalescer: Coalescer[str, str] = Coalescer(run)
    other_waiter = asyncio.ensure_future(coalescer.request("15-gps_v1.0"))
    flag = Flag()
    timer = asyncio.ensure_future(unless_stopped(coalescer.request("15-gps_v1.0"), flag))
    await asyncio.sleep(0.01)
    flag.event.set()
    assert await asyncio.wait_for(timer, timeout=1) is None
    release.set()
    assert await asyncio.wait_for(other_waiter, timeout=1) == "15-gps_v1.0"
    # The run the timer had asked for (queued behind the one in progress) still takes place.
    for _ in range(100):
        if len(finished) == 2:
            break
        await asyncio.sleep(0.01)
    assert finished == ["15-gps_v1.0", "15-gps_v1.0"]


async def test_kopf_waits_a_moment_for_timers_and_looks_again_within_seconds() -> None:
    registry = kopf.OperatorRegistry()
    register(registry, Hub().context)
    configure = next(h for h in registry._activities.get_all_handlers() if h.id == "configure")
    settings = kopf.OperatorSettings()
    await configure.fn(settings=settings)
    assert settings.background.instant_exit_timeout is not None and settings.background.instant_exit_timeout <= 0.1
    assert settings.background.cancellation_polling <= 5
