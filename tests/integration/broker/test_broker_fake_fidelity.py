"""The in-memory fake used by unit tests ends in the same state, and reports the same changes, as the real broker."""

from __future__ import annotations

import pytest
from hub_devenv.rabbitmq import LocalBroker
from hub_operator.broker_sync import apply_desired_state
from hub_operator.builders.broker import ClientAccess, QueueType, VHostTopology, desired_vhost_state
from hub_operator.builders.broker_definitions import Definitions
from hub_operator.clients.broker_api import BrokerManagement
from hub_operator.clients.fake_rabbitmq import FakeRabbitMQ
from hub_operator.clients.rabbitmq import RabbitMQManagementClient

pytestmark = pytest.mark.broker


async def _scoped_export(broker: BrokerManagement, vhost: str, unique: str) -> Definitions:
    export = Definitions.from_api(await broker.export_definitions())
    return export.restricted_to([vhost], users={u for u in export.usernames if unique in u})


async def _scenario(broker: BrokerManagement, topology: VHostTopology, clients: list[ClientAccess]) -> list[list[str]]:
    """Provision, drift in several ways, suspend one client, drop another; the changes each apply reported."""
    reports = []
    desired = desired_vhost_state(topology, clients)
    reports.append(await apply_desired_state(broker, desired))
    await broker.delete_queue(topology.vhost, "fr.health.samu050.info")
    await broker.delete_user(clients[1].username)
    await broker.unbind(topology.vhost, "hubsante", "dispatch", topology.protocol.dispatch_binding_key)
    await broker.import_definitions(
        {
            "policies": [
                {
                    "vhost": topology.vhost,
                    "name": "hubsante-client-queues",
                    "pattern": "^x$",
                    "definition": {"max-length": 5},
                }
            ]
        }
    )
    reports.append(await apply_desired_state(broker, desired))
    suspended = ClientAccess(clients[0].username, clients[0].client_ids, suspended=True)
    reports.append(await apply_desired_state(broker, desired_vhost_state(topology, [suspended, clients[1]])))
    reports.append(await apply_desired_state(broker, desired_vhost_state(topology, [suspended])))
    return [sorted(change.describe() for change in report.changes) for report in reports]


async def test_fake_and_real_broker_agree(
    broker: LocalBroker, management: RabbitMQManagementClient, unique: str
) -> None:
    topology = VHostTopology(
        f"fidelity-{unique}_v2.0",
        profile="legacy",
        queue_type=QueueType.QUORUM,
        dispatcher_username=f"d-{unique}",  # type: ignore[arg-type]
    )
    clients = [
        ClientAccess(f"samu-{unique}", ("fr.health.samu050",)),
        ClientAccess(f"platform-{unique}", ("fr.health.samu76A", "fr.health.samu76B")),
    ]
    fake = FakeRabbitMQ(username=broker.admin_user)
    try:
        real_reports = await _scenario(management, topology, clients)
        fake_reports = await _scenario(fake, topology, clients)
        assert fake_reports == real_reports
        assert any("repaired user" in line for line in real_reports[1])  # the scenario did drift
        assert await _scoped_export(fake, topology.vhost, unique) == await _scoped_export(
            management, topology.vhost, unique
        )
    finally:
        await management.delete_vhost(topology.vhost)
        for username in [topology.dispatcher_username, *(c.username for c in clients)]:
            await management.delete_user(username)
