"""The broker fails under a 10,000-message stream: a restart, a crash, a disk-free alarm.

A sender publishes realistic messages (model 3.4.1 new cases, 4–7 KB of pretty JSON) with publisher confirms
and the client contract of at-least-once: on a lost connection it reconnects and republishes everything the
broker had not confirmed.  Dispatchers route them; the recipient acks everything it receives.  Every message
the broker confirmed must reach the recipient; duplicates are allowed (at-least-once), counted and reported.

These tests restart and fill up a broker: they get one of their own (module fixture), never the session's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from time import monotonic

import pytest
from hub_devenv.rabbitmq import LocalBroker

from tests.system.fault_streams import (
    STREAM_MESSAGES,
    RunningStream,
    StreamVHost,
    dedicated_broker,
    disk_limit_above_free_space,
    stream_vhost,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

#: Where in the stream the fault strikes: once this share of the messages is confirmed.
FAULT_AT = 0.3
#: Where in the stream the disk alarm strikes: early, for the broker to block the sender well before its end
#: (rabbitmqctl takes seconds to start on a busy machine).
ALARM_AT = 0.1
#: The sender's steady flow during the disk alarm test: the alarm must find it publishing (flat out, the whole
#: stream is confirmed in a few seconds, before the broker has blocked anyone).
ALARM_STREAM_RATE = 500.0
#: How long the disk alarm holds the publishers blocked.
ALARM_SECONDS = 5.0
#: After the broker says a connection is blocked, confirms already owed may still arrive for this long.
SETTLE_SECONDS = 1.0


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    with dedicated_broker(tmp_path_factory.mktemp("fault-broker"), "broker") as node:
        yield node


@pytest.fixture
def vhost(own_broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamVHost]:
    if not own_broker.running:  # a previous test failed half-way through a restart
        own_broker.start()
    with stream_vhost(own_broker, tmp_path_factory.mktemp("fault-stream"), "broker") as provisioned:
        yield provisioned


@pytest.mark.parametrize("kill", [False, True], ids=["restart", "crash"])
async def test_a_broker_restart_mid_stream_delivers_every_confirmed_message(
    vhost: StreamVHost, own_broker: LocalBroker, kill: bool, measure: Callable[[str], None]
) -> None:
    """``restart``: SIGTERM (the broker closes connections and stops cleanly); ``crash``: SIGKILL."""
    dispatchers = [vhost.dispatcher("a"), vhost.dispatcher("b")]
    async with RunningStream.start(vhost, run="restart", count=STREAM_MESSAGES) as stream:
        publisher, consumer = stream.publisher, stream.consumer
        await stream.wait_for(lambda: len(publisher.confirmed) >= FAULT_AT * STREAM_MESSAGES,
                              what=f"{FAULT_AT:.0%} of the stream confirmed")
        confirmed_at_fault, received_at_fault = len(publisher.confirmed), consumer.distinct
        down_at = monotonic()
        await asyncio.to_thread(own_broker.restart, kill=kill)
        back_at, confirmed_when_back = monotonic(), len(publisher.confirmed)
        first_confirm_at = await stream.wait_for(lambda: len(publisher.confirmed) > confirmed_when_back,
                                                 what="a confirm after the broker came back")
        dispatchers_ready_at = await wait_for(lambda: all(d.ready() for d in dispatchers), in_thread=True,
                                              what="both dispatchers ready again", timeout=120)
        outcome = await stream.finish()
        delivered_at = max(arrival.at for arrival in outcome.arrivals)

    assert confirmed_at_fault < STREAM_MESSAGES, "the stream was over before the fault: nothing was tested"
    assert publisher.lost_connections, "the publisher never saw the broker go"
    assert outcome.missing == [], f"confirmed messages lost: {outcome.describe()}"
    assert publisher.returned == 0 and consumer.foreign == 0
    assert all(d.alive and d.metric("hub_dispatcher_connection_losses_total") >= 1 for d in dispatchers)
    what = "crash (SIGKILL)" if kill else "restart (SIGTERM)"
    measure(f"broker {what} at {confirmed_at_fault:,} confirmed / {received_at_fault:,} received: "
            f"down {back_at - down_at:.1f} s, publisher confirming again {first_confirm_at - back_at:.1f} s "
            f"and both dispatchers ready {dispatchers_ready_at - back_at:.1f} s after it was back, "
            f"all delivered {delivered_at - back_at:.1f} s after it was back")
    measure(f"broker {what}: {outcome.describe()}; publisher: {publisher.connections} connections, "
            f"{publisher.republished} republished, {publisher.nacked} nacked; recipient: "
            f"{consumer.connections} connections")


async def test_a_disk_alarm_blocks_publishers_loses_nothing_and_clears(
    vhost: StreamVHost, own_broker: LocalBroker, measure: Callable[[str], None]
) -> None:
    vhost.dispatcher("a")
    async with RunningStream.start(vhost, run="alarm", count=STREAM_MESSAGES, rate=ALARM_STREAM_RATE) as stream:
        publisher, consumer = stream.publisher, stream.consumer
        await stream.wait_for(lambda: len(publisher.confirmed) >= ALARM_AT * STREAM_MESSAGES,
                              what=f"{ALARM_AT:.0%} of the stream confirmed")
        alarm_at = monotonic()  # rabbitmqctl itself takes a second or two: times count from the request
        await asyncio.to_thread(own_broker.set_disk_free_limit, disk_limit_above_free_space(own_broker))
        try:
            blocked_at = await wait_for(lambda: "blocked" in vhost.connection_states(vhost.sender), in_thread=True,
                                        what="the broker to block the sender's connection", timeout=60)
            await asyncio.sleep(SETTLE_SECONDS)
            confirmed_when_blocked, received_when_blocked = len(publisher.confirmed), consumer.distinct
            await asyncio.sleep(ALARM_SECONDS)
            confirmed_during_alarm = len(publisher.confirmed) - confirmed_when_blocked
            received_during_alarm = consumer.distinct - received_when_blocked
            dispatcher_states = await asyncio.to_thread(vhost.connection_states, vhost.dispatcher_credentials)
        finally:
            cleared_at = monotonic()
            await asyncio.to_thread(own_broker.set_disk_free_limit, own_broker.disk_free_limit)
        confirming_at = await stream.wait_for(lambda: len(publisher.confirmed) > confirmed_when_blocked,
                                              what="a confirm after the alarm cleared")
        outcome = await stream.finish()
        delivered_at = max(arrival.at for arrival in outcome.arrivals)

    assert confirmed_when_blocked < STREAM_MESSAGES, "the stream was over before the alarm: nothing was tested"
    assert confirmed_during_alarm == 0, f"{confirmed_during_alarm} publishes confirmed while the sender was blocked"
    assert outcome.missing == [], f"messages lost: {outcome.describe()}"
    # Blocked, never disconnected: nothing to republish, nothing redelivered.
    assert publisher.connections == 1 and consumer.connections == 1, (publisher.lost_connections,
                                                                      consumer.connections)
    assert outcome.duplicates == 0, outcome.describe()
    assert outcome.out_of_order == 0, outcome.describe()  # one dispatcher: blocked publishes are delayed, in order
    measure(f"disk alarm at {confirmed_when_blocked:,} confirmed: sender seen blocked {blocked_at - alarm_at:.1f} s "
            f"after the limit was raised (management API), dispatcher connection {'/'.join(dispatcher_states)}; during "
            f"{ALARM_SECONDS:.0f} s blocked: {confirmed_during_alarm} confirmed, {received_during_alarm} received")
    measure(f"disk alarm cleared: confirming again {confirming_at - cleared_at:.1f} s after the limit was restored, all delivered "
            f"{delivered_at - cleared_at:.1f} s later; {outcome.describe()}")
