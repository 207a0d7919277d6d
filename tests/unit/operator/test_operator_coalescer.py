"""Coalescing of reconciles: one run at a time per key, requests during a run share the next one."""

from __future__ import annotations

import asyncio

import pytest
from hub_operator.reconcile.coalescer import Coalescer


class Recorder:
    def __init__(self) -> None:
        self.started: list[tuple[str, int]] = []
        self.release = asyncio.Event()
        self.state = 0
        self.fail = False

    async def run(self, key: str) -> int:
        seen, fail = self.state, self.fail  # a run sees the state as of its start
        self.started.append((key, seen))
        await self.release.wait()
        if fail:
            raise RuntimeError("boom")
        return seen


async def until(predicate: object) -> None:
    for _ in range(100):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never met")


async def test_requests_during_a_run_share_one_next_run_that_sees_their_state() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, int] = Coalescer(recorder.run)
    first = asyncio.create_task(coalescer.request("vhost"))
    await until(lambda: recorder.started)
    recorder.state = 1  # what the later requests were made for
    later = [asyncio.create_task(coalescer.request("vhost")) for _ in range(50)]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == 0
    assert set(await asyncio.gather(*later)) == {1}
    assert recorder.started == [("vhost", 0), ("vhost", 1)]
    assert not coalescer.busy("vhost")


async def test_keys_run_independently() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, int] = Coalescer(recorder.run)
    tasks = [asyncio.create_task(coalescer.request(key)) for key in ("a", "b", "c")]
    await until(lambda: len(recorder.started) == 3)
    assert sorted(key for key, _ in recorder.started) == ["a", "b", "c"]
    recorder.release.set()
    await asyncio.gather(*tasks)


async def test_a_failure_reaches_the_waiters_of_that_run_only() -> None:
    recorder = Recorder()
    recorder.fail = True
    coalescer: Coalescer[str, int] = Coalescer(recorder.run)
    first = asyncio.create_task(coalescer.request("vhost"))
    await until(lambda: recorder.started)
    recorder.fail = False  # the next run starts after this one and succeeds
    second = asyncio.create_task(coalescer.request("vhost"))
    await asyncio.sleep(0)
    recorder.release.set()
    with pytest.raises(RuntimeError):
        await first
    assert await second == 0


async def test_a_cancelled_waiter_does_not_cancel_the_shared_run() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, int] = Coalescer(recorder.run)
    impatient = asyncio.create_task(coalescer.request("vhost"))
    await until(lambda: recorder.started)
    patient = asyncio.create_task(coalescer.request("vhost"))
    await asyncio.sleep(0)
    impatient.cancel()
    recorder.release.set()
    assert await patient == 0
    assert len(recorder.started) == 2  # the first run went on; the patient one got the next


async def test_fire_and_forget_failures_are_not_reported_as_unretrieved(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    recorder.fail = True
    recorder.release.set()
    coalescer: Coalescer[str, int] = Coalescer(recorder.run)
    coalescer.trigger("vhost")
    await asyncio.sleep(0.01)
    import gc

    gc.collect()
    assert "never retrieved" not in caplog.text


async def test_close_cancels_runs_and_refuses_new_requests() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, int] = Coalescer(recorder.run)
    waiting = asyncio.create_task(coalescer.request("vhost"))
    await until(lambda: recorder.started)
    await coalescer.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    with pytest.raises(RuntimeError):
        coalescer.trigger("vhost")
