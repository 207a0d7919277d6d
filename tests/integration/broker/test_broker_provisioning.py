"""Provisioning on the real broker: exactly the expected definitions, idempotent, drift repaired and reported."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from hub_devenv.rabbitmq import LocalBroker
from hub_operator.broker_sync import ChangeAction, apply_desired_state
from hub_operator.builders.broker import ClientAccess, DesiredState, QueueType, VHostTopology, desired_vhost_state
from hub_operator.builders.broker_definitions import Definitions, ItemKind
from hub_operator.clients.rabbitmq import RabbitMQManagementClient

pytestmark = pytest.mark.broker


@pytest.fixture
def clients(unique: str) -> list[ClientAccess]:
    return [
        ClientAccess(f"samu050-{unique}.example.org", ("fr.health.samu050",)),
        ClientAccess(f"sdis50-{unique}.example.org", ("fr.fire.nexsis.sdis50",)),
        ClientAccess(f"platform-{unique}.example.org", ("fr.health.samu76A", "fr.health.samu76B")),
    ]


@pytest.fixture
async def topology(
    unique: str, management: RabbitMQManagementClient, clients: list[ClientAccess]
) -> AsyncIterator[VHostTopology]:
    topology = VHostTopology(f"15-15-{unique}_v1.5", message_ttl_ms=60_000, dispatcher_username=f"dispatcher-{unique}")
    yield topology
    await management.delete_vhost(topology.vhost)
    for username in [topology.dispatcher_username, *(c.username for c in clients)]:
        await management.delete_user(username)


async def _broker_state(management: RabbitMQManagementClient, desired: DesiredState, unique: str) -> Definitions:
    """The full export, scoped to this test: its vhost (every object, every user's access) and its users."""
    export = Definitions.from_api(await management.export_definitions())
    ours = {name for name in export.usernames if unique in name}
    return export.restricted_to(desired.vhosts, users=ours)


async def test_three_clients_yield_exactly_the_expected_definitions(
    management: RabbitMQManagementClient, topology: VHostTopology, clients: list[ClientAccess], unique: str
) -> None:
    desired = desired_vhost_state(topology, clients)
    result = await apply_desired_state(management, desired)
    expected = desired.with_management_access(management.username).definitions
    assert await _broker_state(management, desired, unique) == expected
    assert len(expected.section(ItemKind.QUEUE)) == 2 + 4 * 3 and len(expected.section(ItemKind.USER)) == 4
    assert result.converged and {c.action for c in result.changes} == {ChangeAction.CREATED}
    print(f"\n[measure] 3-client vhost from empty: {result.elapsed_seconds * 1000:.0f} ms")


async def test_a_second_apply_changes_nothing(
    management: RabbitMQManagementClient, topology: VHostTopology, clients: list[ClientAccess], unique: str
) -> None:
    desired = desired_vhost_state(topology, clients)
    await apply_desired_state(management, desired)
    before = await management.export_definitions()
    again = await apply_desired_state(management, desired)
    assert again.changes == () and not again.changed and again.imported_items == 0
    assert Definitions.from_api(await management.export_definitions()) == Definitions.from_api(before)


async def test_drift_is_repaired_exactly_and_reported(
    broker: LocalBroker,
    management: RabbitMQManagementClient,
    topology: VHostTopology,
    clients: list[ClientAccess],
    unique: str,
) -> None:
    desired = desired_vhost_state(topology, clients)
    await apply_desired_state(management, desired)
    samu, sdis, platform = clients
    # Behind the operator's back, with plain HTTP calls:
    async with httpx.AsyncClient(
        base_url=broker.management_url, auth=(broker.admin_user, broker.admin_password)
    ) as http:
        vhost = topology.vhost
        (await http.delete(f"/api/queues/{vhost}/fr.health.samu76B.ack")).raise_for_status()
        (await http.delete(f"/api/permissions/{vhost}/{sdis.username}")).raise_for_status()
        (
            await http.put(
                f"/api/permissions/{vhost}/{samu.username}", json={"configure": ".*", "write": ".*", "read": ".*"}
            )
        ).raise_for_status()
        (
            await http.put(f"/api/users/{platform.username}", json={"password": "sneaky", "tags": "administrator"})
        ).raise_for_status()
    result = await apply_desired_state(management, desired)
    assert {c.describe() for c in result.changes} == {
        f"repaired queue fr.health.samu76B.ack in vhost {vhost}",
        f"repaired binding distribution -> queue fr.health.samu76B.ack (key 'fr.health.samu76B.ack') in vhost {vhost}",
        f"repaired permission of {sdis.username} in vhost {vhost}",
        f"updated permission of {samu.username} in vhost {vhost} (configure, write, read differ)",
        f"updated user {platform.username} (tags, password_hash differ)",
    }
    assert result.converged
    assert (
        await _broker_state(management, desired, unique)
        == desired.with_management_access(management.username).definitions
    )
    assert (await apply_desired_state(management, desired)).changes == ()


async def test_deleted_user_comes_back_with_its_access(
    management: RabbitMQManagementClient, topology: VHostTopology, clients: list[ClientAccess], unique: str
) -> None:
    desired = desired_vhost_state(topology, clients)
    await apply_desired_state(management, desired)
    await management.delete_user(clients[2].username)
    result = await apply_desired_state(management, desired)
    assert {c.action for c in result.changes} == {ChangeAction.REPAIRED}
    assert {c.item.kind for c in result.changes} == {ItemKind.USER, ItemKind.PERMISSION, ItemKind.TOPIC_PERMISSION}
    assert (
        await _broker_state(management, desired, unique)
        == desired.with_management_access(management.username).definitions
    )


async def test_legacy_quorum_vhost_is_exact_too(
    management: RabbitMQManagementClient, clients: list[ClientAccess], unique: str
) -> None:
    topology = VHostTopology(
        f"15-smur-{unique}_v1.4",
        profile="legacy",
        queue_type=QueueType.QUORUM,
        dispatcher_username=f"dispatcher-{unique}",  # type: ignore[arg-type]
    )
    desired = desired_vhost_state(topology, clients[:2])
    try:
        result = await apply_desired_state(management, desired)
        assert result.converged
        assert (
            await _broker_state(management, desired, unique)
            == desired.with_management_access(management.username).definitions
        )
        assert (await apply_desired_state(management, desired)).changes == ()
    finally:
        await management.delete_vhost(topology.vhost)
        for username in [topology.dispatcher_username, *(c.username for c in clients[:2])]:
            await management.delete_user(username)


async def test_switching_queue_type_is_reported_as_conflicts_not_applied(
    management: RabbitMQManagementClient, topology: VHostTopology, clients: list[ClientAccess]
) -> None:
    await apply_desired_state(management, desired_vhost_state(topology, clients[:1]))
    quorum = VHostTopology(
        topology.vhost,
        queue_type=QueueType.QUORUM,
        message_ttl_ms=60_000,
        dispatcher_username=topology.dispatcher_username,
    )
    result = await apply_desired_state(management, desired_vhost_state(quorum, clients[:1]))
    assert len(result.of(ChangeAction.CONFLICT)) == 5 and not result.converged
    assert result.of(ChangeAction.UNRESOLVED) == ()
    export = Definitions.from_api(await management.export_definitions(topology.vhost), vhost=topology.vhost)
    assert all(dict(q.arguments) == {"x-queue-version": 2} for q in export.items(ItemKind.QUEUE))  # type: ignore[union-attr]
