"""Delivery guarantees through the real broker, with real dispatcher processes: at-least-once across a kill -9
and a lost connection, exactly-once across a graceful stop, and replicas sharing one vhost's work."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator

import orjson
import pytest

from tests.helpers.topology import management_client
from tests.integration.dispatcher.conftest import JSON_RECIPIENT, SENDER, Hub, HubFactory
from tests.integration.dispatcher.hubclient import Delivered, HubTestClient, wait_until
from tests.integration.dispatcher.messages import case_message

pytestmark = [pytest.mark.broker, pytest.mark.slow]

VERSION = "3.4.1"
ROUTED = "hub_dispatcher_messages_routed_total"


@pytest.fixture(scope="module")
def hub(hub_factory: HubFactory) -> Hub:
    return hub_factory(VERSION)


@pytest.fixture(autouse=True)
def fresh_queues(hub: Hub) -> Iterator[None]:
    """Each test starts with empty queues and stops the dispatchers it started."""
    with HubTestClient(hub.broker, hub.credentials_by_client[JSON_RECIPIENT], hub.vhost) as recipient:
        recipient.purge(hub.queue(JSON_RECIPIENT))
    yield
    for process in hub.dispatchers:
        if process.alive:
            process.stop(grace=10)


@pytest.fixture
def recipient(hub: Hub) -> HubTestClient:
    return hub.client(JSON_RECIPIENT)


@pytest.fixture
def inputs(hub: Hub) -> Iterator[HubTestClient]:
    """Looks at the dispatcher's input queue (the dispatcher's identity may read it).  Closed after the test:
    the lost-connection test closes every connection of that identity."""
    with HubTestClient(hub.broker, hub.dispatcher_credentials, hub.vhost) as client:
        yield client


def publish(hub: Hub, count: int) -> set[str]:
    """``count`` distinct valid messages from SENDER to JSON_RECIPIENT; their distribution ids."""
    sender = hub.client(SENDER)
    ids = set()
    for _ in range(count):
        document = case_message(hub.bundle_dir)
        sender.publish(orjson.dumps(document), SENDER)
        ids.add(document["distributionID"])
    sender.close()
    return ids


def receive_all(hub: Hub, recipient: HubTestClient, expected: set[str],
                timeout: float = 120) -> collections.Counter[str]:
    """How many times each distribution id reached the recipient, once every expected one has."""
    seen: collections.Counter[str] = collections.Counter()
    counted = 0

    def complete(received: list[Delivered]) -> bool:
        nonlocal counted
        for item in received[counted:]:
            seen[item.json()["distributionID"]] += 1
        counted = len(received)
        return expected <= seen.keys()

    recipient.take_until(hub.queue(JSON_RECIPIENT), complete, timeout=timeout,
                         expectation=f"all {len(expected)} messages")
    return seen


def test_kill_9_in_the_middle_of_5000_messages_loses_none(hub: Hub, recipient: HubTestClient,
                                                         inputs: HubTestClient) -> None:
    sent = publish(hub, 5000)
    first = hub.dispatcher("first")
    wait_until(lambda: recipient.count(hub.queue(JSON_RECIPIENT)) >= 1000, what="1000 messages routed")

    first.kill()
    routed_before_the_kill = recipient.count(hub.queue(JSON_RECIPIENT))
    assert routed_before_the_kill < len(sent), "the kill came too late to test anything"
    hub.dispatcher("second")
    received = receive_all(hub, recipient, sent)

    assert set(received) == sent  # every message, nothing else
    assert inputs.count("dispatch") == 0
    duplicates = sum(received.values()) - len(sent)
    # At-least-once: only what was confirmed but not yet acked when the process died can come twice.
    assert duplicates <= 2 * 256, f"{duplicates} duplicates: more than the window in flight at the kill"


def test_a_lost_connection_is_reopened_and_loses_nothing(hub: Hub, recipient: HubTestClient) -> None:
    sent = publish(hub, 2000)
    dispatcher = hub.dispatcher()
    wait_until(lambda: recipient.count(hub.queue(JSON_RECIPIENT)) >= 200, what="200 messages routed")

    asyncio.run(close_connections_of(hub, hub.provisioned.dispatcher_cn))

    wait_until(lambda: dispatcher.metric("hub_dispatcher_connection_losses_total") == 1,
               what="the dispatcher to notice the lost connection")
    received = receive_all(hub, recipient, sent)
    assert set(received) == sent
    wait_until(dispatcher.ready, what="the dispatcher to be ready again")
    assert dispatcher.alive


async def close_connections_of(hub: Hub, username: str) -> None:
    """Closes ``username``'s connections as an operator would (management API)."""
    async with management_client(hub.broker) as management:
        for _ in range(100):
            # The management API lists a connection after its statistics interval, and may refuse to close
            # one it lists (404) for a moment after that.
            connections = await management.list_connections(vhost=hub.vhost, username=username)
            closed = [await management.close_connection(c.name, "integration test: connection lost")
                      for c in connections]
            if any(closed):
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"could not close a connection of {username} through the management API")


def test_sigterm_finishes_the_work_in_flight_and_exits_0(hub: Hub, recipient: HubTestClient,
                                                        inputs: HubTestClient) -> None:
    sent = publish(hub, 2000)
    first = hub.dispatcher("first")
    wait_until(lambda: recipient.count(hub.queue(JSON_RECIPIENT)) >= 200, what="200 messages routed")

    assert first.stop() == 0

    routed = sum(1 for record in first.log_records() if record.get("event") == "routed")
    assert recipient.count(hub.queue(JSON_RECIPIENT)) == routed  # every confirmed forward...
    assert inputs.count("dispatch") == len(sent) - routed  # ...was acked, and nothing else was taken
    hub.dispatcher("second")
    received = receive_all(hub, recipient, sent)
    wait_until(lambda: inputs.count("dispatch") == 0, what="the input queue to drain")
    assert set(received) == sent and sum(received.values()) == len(sent)  # no duplicate either


def test_two_replicas_share_a_vhost_and_route_each_message_once(hub: Hub, recipient: HubTestClient) -> None:
    replicas = [hub.dispatcher("a"), hub.dispatcher("b")]

    sent = publish(hub, 600)
    received = receive_all(hub, recipient, sent)

    assert set(received) == sent and sum(received.values()) == len(sent)
    shares = [replica.metric(ROUTED) for replica in replicas]
    assert all(share > 0 for share in shares) and sum(shares) == len(sent), shares
