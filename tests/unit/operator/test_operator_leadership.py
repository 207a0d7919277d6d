"""Leader election with a Lease: one holder, takeover only after a full duration unchanged, release."""

from __future__ import annotations

import asyncio

from hub_operator.clients.fake_kubernetes import FakeKubernetes
from hub_operator.clients.kubernetes import LEASES
from hub_operator.leadership import LeaseElector


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _elector(kube: FakeKubernetes, identity: str, clock: Clock) -> LeaseElector:
    return LeaseElector(kube, namespace="ops", name="hub-operator", identity=identity, duration=15,  # type: ignore[arg-type]
                        clock=clock)


async def test_one_holder_then_takeover_after_the_lease_expires() -> None:
    kube, clock = FakeKubernetes(), Clock()
    first, second = _elector(kube, "a", clock), _elector(kube, "b", clock)
    assert await first.try_acquire()
    assert not await second.try_acquire()
    clock.now += 10
    assert await first.renew()
    clock.now += 10
    assert not await second.try_acquire()  # renewed 10 s ago: still held
    clock.now += 16  # no renewal for longer than the duration
    assert await second.try_acquire()
    assert (kube.get(LEASES, "ops", "hub-operator") or {})["spec"]["holderIdentity"] == "b"
    assert not await first.renew()  # the old leader learns it lost


async def test_same_identity_takes_its_lease_back_at_once() -> None:
    kube, clock = FakeKubernetes(), Clock()
    assert await _elector(kube, "pod-0", clock).try_acquire()
    assert await _elector(kube, "pod-0", clock).try_acquire()  # a restarted container of the same pod


async def test_release_lets_a_successor_start_at_once() -> None:
    kube, clock = FakeKubernetes(), Clock()
    first, second = _elector(kube, "a", clock), _elector(kube, "b", clock)
    assert await first.try_acquire()
    await first.release()
    assert await second.try_acquire()


async def test_hold_reports_a_lost_lease() -> None:
    kube, clock = FakeKubernetes(), Clock()
    leader = LeaseElector(kube, namespace="ops", name="l", identity="a", duration=0.6, clock=clock)  # type: ignore[arg-type]
    assert await leader.try_acquire()
    lease = kube.get(LEASES, "ops", "l") or {}
    lease["spec"]["holderIdentity"] = "intruder"
    kube.put(LEASES, lease)
    lost = asyncio.Event()
    await asyncio.wait_for(leader.hold(lost), timeout=5)
    assert lost.is_set()


async def test_acquire_waits_and_stops_on_request() -> None:
    kube, clock = FakeKubernetes(), Clock()
    assert await _elector(kube, "a", clock).try_acquire()
    stop = asyncio.Event()
    waiting = asyncio.create_task(LeaseElector(kube, namespace="ops", name="hub-operator", identity="b",  # type: ignore[arg-type]
                                               duration=0.9, clock=clock).acquire(stop))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    stop.set()
    assert await asyncio.wait_for(waiting, timeout=5) is False
