"""A dispatcher dies in the middle of a 10,000-message stream: SIGKILL (a crash, an OOM kill) and SIGTERM (a
rolling update, a scale-down, a node drain).

Two dispatchers share the vhost, as replicas do; one of them is stopped while the recipient has received a
third of the stream, and a replacement starts at once, as its Deployment would start a new pod.  Nothing may be
lost either way.  SIGKILL may duplicate what the killed process had forwarded but not yet acked (at most its
window, 2 × prefetch); SIGTERM drains the work in flight first, so it must not duplicate anything.

The broker is the session's (these faults do not touch it); the vhost is the test's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from time import monotonic

import pytest
from hub_devenv.rabbitmq import LocalBroker

from tests.helpers.dispatcher_process import DispatcherProcess
from tests.helpers.message_stream import StreamOutcome
from tests.system.fault_streams import (
    STREAM_MESSAGES,
    STREAM_TIMEOUT,
    RunningStream,
    StreamVHost,
    stream_vhost,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

#: The dispatcher's default prefetch per input queue (docs/dispatcher.md).
PREFETCH = 256
ROUTED = "hub_dispatcher_messages_routed_total"
IN_FLIGHT = "hub_dispatcher_in_flight"
#: Where in the stream the dispatcher is stopped: once the recipient has this share of the messages.
FAULT_AT = 0.3


@pytest.fixture
def vhost(broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamVHost]:
    with stream_vhost(broker, tmp_path_factory.mktemp("fault-dispatcher"), "dispatcher") as provisioned:
        yield provisioned


@dataclass(frozen=True)
class ReplicaStop:
    """What a stream gave when one of two replicas was stopped a third of the way through."""

    outcome: StreamOutcome
    exit_code: int | None
    in_flight: int
    """Deliveries the stopped replica held, received and not settled, an instant before the signal."""
    received_at_stop: int
    stop_seconds: float
    routed_by_survivor: int
    routed_by_replacement: int


async def stream_stopping_a_replica(vhost: StreamVHost, run: str,
                                    stop: Callable[[DispatcherProcess], int | None]) -> ReplicaStop:
    """Streams through two replicas, stops one (``stop``) a third of the way through and starts a replacement
    at once; checks that nothing was lost and that nothing but the dispatcher failed."""
    victim, survivor = vhost.dispatcher("victim"), vhost.dispatcher("survivor")
    async with RunningStream.start(vhost, run=run) as stream:
        consumer = stream.consumer
        await stream.wait_for(lambda: consumer.has(int(FAULT_AT * STREAM_MESSAGES)),
                              what=f"{FAULT_AT:.0%} of the stream received")
        # Strike while the victim holds deliveries: when the replicas keep up with the sender, a replica is
        # often idle for an instant, and stopping it then would test nothing.
        in_flight: list[float] = []

        def victim_holds_deliveries() -> bool:
            in_flight.append(victim.metric(IN_FLIGHT))
            return in_flight[-1] > 0

        await wait_for(victim_holds_deliveries, in_thread=True, timeout=STREAM_TIMEOUT,
                       what="the victim to hold deliveries in flight")
        received_at_stop, stopping_at = consumer.distinct, monotonic()
        exit_code = await asyncio.to_thread(stop, victim)
        stopped_at = monotonic()
        replacement = await asyncio.to_thread(vhost.dispatcher, "replacement")
        outcome = await stream.finish()
    assert received_at_stop < STREAM_MESSAGES, "the stream was over before the fault: nothing was tested"
    assert outcome.missing == [], f"messages lost: {outcome.describe()}"
    assert stream.publisher.returned == 0 and consumer.foreign == 0
    assert stream.publisher.connections == 1 and consumer.connections == 1  # only the dispatcher failed
    return ReplicaStop(outcome, exit_code, int(in_flight[-1]), received_at_stop, stopped_at - stopping_at,
                       int(survivor.metric(ROUTED)), int(replacement.metric(ROUTED)))


async def test_a_dispatcher_killed_mid_stream_loses_nothing(vhost: StreamVHost,
                                                           measure: Callable[[str], None]) -> None:
    def sigkill(process: DispatcherProcess) -> None:
        process.kill()

    stopped = await stream_stopping_a_replica(vhost, "sigkill", sigkill)

    # At-least-once: only what the killed process had forwarded and not yet acked can come twice.
    assert stopped.outcome.duplicates <= 2 * PREFETCH, stopped.outcome.describe()
    measure(f"dispatcher SIGKILL at {stopped.received_at_stop:,} received ({stopped.in_flight} in flight in the "
            f"killed replica): {stopped.outcome.describe()}; routed by the survivor / the replacement: "
            f"{stopped.routed_by_survivor:,} / {stopped.routed_by_replacement:,}")


async def test_a_dispatcher_stopped_mid_stream_drains_without_duplicates(vhost: StreamVHost,
                                                                         measure: Callable[[str], None]) -> None:
    def sigterm(process: DispatcherProcess) -> int:
        return process.stop(grace=60)

    stopped = await stream_stopping_a_replica(vhost, "sigterm", sigterm)

    assert stopped.exit_code == 0, "the dispatcher did not drain and exit cleanly on SIGTERM"
    # Drained: everything in flight was settled and acked before the connection closed.
    assert stopped.outcome.duplicates == 0, stopped.outcome.describe()
    measure(f"dispatcher SIGTERM at {stopped.received_at_stop:,} received ({stopped.in_flight} in flight): "
            f"drained and exited 0 in {stopped.stop_seconds:.2f} s; {stopped.outcome.describe()}; routed by the "
            f"survivor / the replacement: {stopped.routed_by_survivor:,} / {stopped.routed_by_replacement:,}")
