"""Explicit deletions on the real broker: retain keeps queues and messages, delete removes them."""

from __future__ import annotations

import asyncio
import time

import pika
import pytest
from hub_devenv.rabbitmq import LocalBroker
from hub_operator.broker_sync import remove_client, remove_vhost
from hub_operator.builders.broker_definitions import BindingDef, VHostDef
from hub_operator.clients.rabbitmq import RabbitMQManagementClient

from tests.helpers.topology import deprovision_vhost, provision_vhost

pytestmark = pytest.mark.broker


def _dispatch_one(broker: LocalBroker, dispatcher_cn: str, vhost: str, queue: str) -> None:
    """Publish one persistent message to a client queue the way the dispatcher does (mandatory, confirmed)."""
    connection = pika.BlockingConnection(broker.pika_parameters(broker.mint_client_cert(dispatcher_cn), vhost))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("distribution", queue, b"{}", pika.BasicProperties(delivery_mode=2), mandatory=True)
    finally:
        connection.close()


async def _ready(management: RabbitMQManagementClient, vhost: str, queue: str, expected: int) -> int:
    """The management API's counts lag by a statistics interval: wait for them to settle."""
    deadline = time.monotonic() + 15
    ready = -1
    while time.monotonic() < deadline:
        ready = next((d.ready for d in await management.queue_depths(vhost) if d.name == queue), -1)
        if ready == expected:
            break
        await asyncio.sleep(0.2)
    return ready


async def test_retained_client_keeps_its_queues_and_messages_but_loses_routing(
    broker: LocalBroker, management: RabbitMQManagementClient, unique: str
) -> None:
    provisioned = await provision_vhost(
        broker, f"15-15-{unique}_v1.5", clients=[(f"samu-{unique}", ["fr.health.samu050"])], dispatcher_cn=f"d-{unique}"
    )
    try:
        queue = provisioned.protocol.client_queues("fr.health.samu050")[0]
        _dispatch_one(broker, provisioned.dispatcher_cn, provisioned.vhost, queue)
        assert await _ready(management, provisioned.vhost, queue, 1) == 1
        (client,) = provisioned.clients
        result = await remove_client(management, client, [provisioned.topology], delete_queues=False)
        assert BindingDef(provisioned.vhost, "distribution", queue, queue) in result.removed
        users = {u["name"] for u in await management.list_users()}
        assert client.username not in users
        assert await _ready(management, provisioned.vhost, queue, 1) == 1
        with pytest.raises(pika.exceptions.UnroutableError):  # the dispatcher now gets NO_ROUTE -> 501
            _dispatch_one(broker, provisioned.dispatcher_cn, provisioned.vhost, queue)

        retained = await remove_vhost(management, provisioned.vhost, delete=False)
        assert retained.retained == (VHostDef(provisioned.vhost),)
        assert {p["user"] for p in await management.list_permissions(provisioned.vhost)} == {management.username}
        assert await _ready(management, provisioned.vhost, queue, 1) == 1

        deleted = await remove_vhost(management, provisioned.vhost, delete=True)
        assert deleted.removed == (VHostDef(provisioned.vhost),)
        assert provisioned.vhost not in {v["name"] for v in (await management.export_definitions())["vhosts"]}
    finally:
        await deprovision_vhost(broker, provisioned)


async def test_deleting_a_client_with_its_queues(
    broker: LocalBroker, management: RabbitMQManagementClient, unique: str
) -> None:
    provisioned = await provision_vhost(
        broker,
        f"15-15-{unique}_v1.5",
        clients=[(f"a-{unique}", ["fr.health.samu050"]), (f"b-{unique}", ["fr.health.samu051"])],
        dispatcher_cn=f"d-{unique}",
    )
    try:
        first = provisioned.clients[0]
        result = await remove_client(management, first, [provisioned.topology], delete_queues=True)
        names = {d.name for d in await management.queue_depths(provisioned.vhost)}
        assert names.isdisjoint(provisioned.protocol.client_queues("fr.health.samu050"))
        assert set(provisioned.protocol.client_queues("fr.health.samu051")) <= names
        assert len(result.removed) == 1 + 3
    finally:
        await deprovision_vhost(broker, provisioned)
