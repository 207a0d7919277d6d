"""Revocation on the real broker: live AMQPS connections are closed and cannot come back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pika
import pika.exceptions
import pytest
from hub_devenv.rabbitmq import LocalBroker
from hub_operator.broker_sync import ChangeAction, apply_desired_state, revoke_client
from hub_operator.clients.rabbitmq import RabbitMQManagementClient

from tests.helpers.broker_refusals import wait_closed_by_broker
from tests.helpers.topology import ProvisionedVHost, deprovision_vhost, provision_vhost

pytestmark = pytest.mark.broker


@pytest.fixture
async def provisioned(broker: LocalBroker, unique: str) -> AsyncIterator[ProvisionedVHost]:
    provisioned = await provision_vhost(
        broker,
        f"15-15-{unique}_v1.5",
        clients=[(f"samu050-{unique}", ["fr.health.samu050"]), (f"sdis50-{unique}", ["fr.fire.nexsis.sdis50"])],
        dispatcher_cn=f"dispatcher-{unique}",
    )
    yield provisioned
    await deprovision_vhost(broker, provisioned)


def _connect(broker: LocalBroker, cn: str, vhost: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(broker.pika_parameters(broker.mint_client_cert(cn), vhost))


async def _until_listed(management: RabbitMQManagementClient, username: str, timeout: float = 15.0) -> float:
    """Seconds until the management API lists the user's connection (it lags by up to a stats interval)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await management.list_connections(username=username):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"the connection of {username} never appeared in the management API")


async def test_revoke_closes_the_live_connection_and_refuses_reconnection(
    broker: LocalBroker, management: RabbitMQManagementClient, provisioned: ProvisionedVHost
) -> None:
    samu, sdis = provisioned.clients
    connection = _connect(broker, samu.username, provisioned.vhost)
    bystander = _connect(broker, sdis.username, provisioned.vhost)
    channel = connection.channel()
    channel.queue_declare(provisioned.protocol.client_queues("fr.health.samu050")[0], passive=True)
    lag = await _until_listed(management, samu.username)

    started = time.perf_counter()
    result = await revoke_client(management, samu.username, [provisioned.vhost], reason="suspended by test")
    revoke_ms = (time.perf_counter() - started) * 1000
    assert result.permissions_removed == (provisioned.vhost,) and len(result.closed_connections) == 1
    closed = wait_closed_by_broker(connection, timeout=10)
    assert isinstance(closed, pika.exceptions.ConnectionClosedByBroker) and closed.reply_code == 320
    assert "suspended by test" in closed.reply_text
    with pytest.raises(pika.exceptions.AMQPConnectionError) as refused:
        _connect(broker, samu.username, provisioned.vhost)
    assert "NOT_ALLOWED" in repr(refused.value) or "access" in repr(refused.value).lower()
    assert bystander.is_open
    bystander.process_data_events(time_limit=0.2)
    assert bystander.is_open
    bystander.close()
    print(f"\n[measure] connection listed after {lag * 1000:.0f} ms; revoke + close took {revoke_ms:.0f} ms")


async def test_suspension_through_the_apply_path_also_disconnects(
    broker: LocalBroker, management: RabbitMQManagementClient, provisioned: ProvisionedVHost
) -> None:
    from hub_operator.builders.broker import ClientAccess, desired_vhost_state

    samu, sdis = provisioned.clients
    connection = _connect(broker, samu.username, provisioned.vhost)  # no waiting: a brand-new connection too
    suspended = ClientAccess(samu.username, samu.client_ids, suspended=True)
    result = await apply_desired_state(management, desired_vhost_state(provisioned.topology, [suspended, sdis]))
    assert {c.action for c in result.changes} == {ChangeAction.REVOKED}
    assert [c.user for c in result.closed_connections] == [samu.username]
    assert isinstance(wait_closed_by_broker(connection, timeout=10), pika.exceptions.ConnectionClosedByBroker)
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        _connect(broker, samu.username, provisioned.vhost)
    # Lifting the suspension restores access.
    await apply_desired_state(management, desired_vhost_state(provisioned.topology, provisioned.clients))
    _connect(broker, samu.username, provisioned.vhost).close()
