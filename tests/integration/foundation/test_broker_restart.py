"""The test broker's fault controls, which the fault-injection system tests rely on: a restart (clean or a crash)
keeps its ports and its data — durable queues and their persistent messages — and the disk-free limit can be
raised over the free space (disk alarm) and set back.

A broker of this module (restarting the session's would disturb the other tests)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hub_devenv.rabbitmq import LocalBroker

pytestmark = [pytest.mark.broker, pytest.mark.slow]

QUEUE = "kept-across-restarts"
PAYLOAD = "a persistent message"


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    node = LocalBroker(tmp_path_factory.mktemp("restarted-broker"), node_name=f"hubrestart{os.getpid()}")
    node.start()
    yield node
    node.stop(kill=True)


def admin(broker: LocalBroker) -> httpx.Client:
    return httpx.Client(base_url=broker.management_url, auth=(broker.admin_user, broker.admin_password), timeout=10)


def queued_messages(broker: LocalBroker) -> int | None:
    """The management API counts messages every second: poll until it has counted the recovered queue."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = broker.management_get(f"/api/queues/%2F/{QUEUE}")
        if isinstance(found, dict) and "messages" in found:
            return int(found["messages"])
        time.sleep(0.2)
    return None


def test_a_restart_and_a_crash_keep_ports_durable_queues_and_persistent_messages(own_broker: LocalBroker) -> None:
    with admin(own_broker) as http:
        http.put(f"/api/queues/%2F/{QUEUE}", json={"durable": True}).raise_for_status()
        published = http.post("/api/exchanges/%2F/amq.default/publish", json={
            "properties": {"delivery_mode": 2}, "routing_key": QUEUE, "payload": PAYLOAD,
            "payload_encoding": "string"}).json()
        assert published == {"routed": True}
    ports, data = own_broker.ports, Path(own_broker.base_dir)

    # Clean first: a crash right after the publish could catch the message between the queue and the disk.
    for kill in (False, True):
        own_broker.restart(kill=kill)

        assert own_broker.running and own_broker.ports == ports and own_broker.base_dir == data
        assert queued_messages(own_broker) == 1, f"after a restart with kill={kill}"
    with admin(own_broker) as http:
        got = http.post(f"/api/queues/%2F/{QUEUE}/get", json={
            "count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}).json()
    assert [message["payload"] for message in got] == [PAYLOAD]


def disk_alarm(broker: LocalBroker, expected: bool) -> bool:
    """Whether the node's disk alarm became ``expected`` (node statistics are refreshed every second)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        nodes = broker.management_get("/api/nodes")
        if isinstance(nodes, list) and nodes and bool(nodes[0].get("disk_free_alarm")) is expected:
            return True
        time.sleep(0.2)
    return False


def test_the_disk_free_limit_raises_and_clears_the_disk_alarm(own_broker: LocalBroker) -> None:
    assert disk_alarm(own_broker, False)
    own_broker.set_disk_free_limit(2 ** 60)  # an exabyte: more than any disk has free
    try:
        assert disk_alarm(own_broker, True)
    finally:
        own_broker.set_disk_free_limit(own_broker.disk_free_limit)
    assert disk_alarm(own_broker, False)
