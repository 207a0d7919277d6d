"""Per-key coalescing of reconciles: many triggers for one vhost collapse into few runs, each seeing fresh state.

For each key at most one run is in progress.  A request made while a run is in progress is served by the next
run, which starts when the current one ends; every request made meanwhile shares that one next run.  So 200
HubClients created at once for a vhost cost two applies, and a caller always gets the result of a run that
started *after* its request (it saw the state as of the request, never an older one).  A caller cancelled while
waiting (kopf shutting down) does not cancel the shared run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass
class _Slot(Generic[T]):
    current: asyncio.Future[T] | None = None
    pending: asyncio.Future[T] | None = None


class Coalescer(Generic[K, T]):
    def __init__(self, run: Callable[[K], Awaitable[T]], *, name: str = "reconcile") -> None:
        self._run = run
        self._name = name
        self._slots: dict[K, _Slot[T]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.runs = 0
        """Runs started so far (tests and metrics)."""

    def _future(self) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        # Nobody may be waiting (a fire-and-forget trigger): mark failures as retrieved so asyncio does not
        # complain; callers that wait still get the exception.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        return future

    async def request(self, key: K) -> T:
        """The result of a run of ``key`` that starts after this call."""
        return await asyncio.shield(self._enqueue(key))

    def trigger(self, key: K) -> None:
        """Ask for a run without waiting for it."""
        self._enqueue(key)

    def busy(self, key: K) -> bool:
        return key in self._slots

    def _enqueue(self, key: K) -> asyncio.Future[T]:
        if self._closed:
            raise RuntimeError(f"{self._name} is shutting down")
        slot = self._slots.setdefault(key, _Slot())
        if slot.current is None:
            return self._start(key, slot, self._future())
        if slot.pending is None:
            slot.pending = self._future()
        return slot.pending

    def _start(self, key: K, slot: _Slot[T], future: asyncio.Future[T]) -> asyncio.Future[T]:
        slot.current = future
        self.runs += 1
        task = asyncio.create_task(self._execute(key, slot, future), name=f"{self._name} {key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return future

    async def _execute(self, key: K, slot: _Slot[T], future: asyncio.Future[T]) -> None:
        try:
            result = await self._run(key)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:  # noqa: BLE001 - handed to every waiter of this run
            if not future.done():
                future.set_exception(error)
        else:
            if not future.done():
                future.set_result(result)
        finally:
            slot.current = None
            upcoming, slot.pending = slot.pending, None
            if upcoming is not None and not upcoming.done() and not self._closed:
                self._start(key, slot, upcoming)
            elif self._slots.get(key) is slot:
                del self._slots[key]

    async def close(self) -> None:
        """Cancel every run in progress (shutdown)."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for slot in self._slots.values():
            if slot.pending is not None and not slot.pending.done():
                slot.pending.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._slots.clear()
