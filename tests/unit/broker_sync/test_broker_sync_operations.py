"""Explicit operations: revoke_client, remove_client, remove_vhost (the only paths that delete)."""

from __future__ import annotations

import asyncio

import pytest
from hub_operator.broker_sync import RemovalResult, apply_desired_state, remove_client, remove_vhost, revoke_client
from hub_operator.builders.broker import ClientAccess, VHostTopology, desired_vhost_state
from hub_operator.builders.broker_definitions import BindingDef, QueueDef, UserDef, VHostDef
from hub_operator.clients.broker_api import BrokerUnreachable
from hub_operator.clients.fake_rabbitmq import FakeConnectionRefused, FakeRabbitMQ

V15 = VHostTopology("15-15_v1.5")
SMUR = VHostTopology("15-smur_v1.4", profile="legacy")  # type: ignore[arg-type]
SAMU050 = ClientAccess("fr.health.samu050", ("fr.health.samu050",))
SDIS50 = ClientAccess("fr.fire.nexsis.sdis50", ("fr.fire.nexsis.sdis50",))


@pytest.fixture
async def fake() -> FakeRabbitMQ:
    broker = FakeRabbitMQ()
    desired = desired_vhost_state(V15, [SAMU050, SDIS50]).merge(desired_vhost_state(SMUR, [SAMU050]))
    await apply_desired_state(broker, desired)
    broker.reset_call_log()
    return broker


async def test_revoke_removes_access_in_the_given_vhosts_and_closes_connections(fake: FakeRabbitMQ) -> None:
    in_15 = fake.open_connection(SAMU050.username, V15.vhost)
    in_smur = fake.open_connection(SAMU050.username, SMUR.vhost)
    result = await revoke_client(fake, SAMU050.username, [V15.vhost], reason="suspended by the hub")
    assert result.permissions_removed == (V15.vhost,) and result.topic_permissions_removed == (V15.vhost,)
    assert [c.name for c in result.closed_connections] == [in_15]
    assert fake.closed[-1][1] == "suspended by the hub"
    assert in_smur in fake.connections  # other vhosts untouched
    with pytest.raises(FakeConnectionRefused):
        fake.open_connection(SAMU050.username, V15.vhost)
    again = await revoke_client(fake, SAMU050.username, [V15.vhost])
    assert again.permissions_removed == () and again.closed_connections == ()  # idempotent


async def test_remove_client_retaining_queues_unbinds_them(fake: FakeRabbitMQ) -> None:
    fake.set_queue_depth(V15.vhost, "fr.health.samu050.message", ready=3)
    connection = fake.open_connection(SAMU050.username, V15.vhost)
    result = await remove_client(fake, SAMU050, [V15, SMUR], delete_queues=False)
    assert UserDef("fr.health.samu050", frozenset({"hub-operator"})) in result.removed
    assert BindingDef(V15.vhost, "distribution", "fr.health.samu050.ack", "fr.health.samu050.ack") in result.removed
    assert (
        BindingDef(SMUR.vhost, "distribution", "fr.health.samu050.in.ack", "fr.health.samu050.in.ack") in result.removed
    )
    assert {q.name for q in result.retained if isinstance(q, QueueDef)} == {
        "fr.health.samu050.message",
        "fr.health.samu050.ack",
        "fr.health.samu050.info",
        "fr.health.samu050.in.message",
        "fr.health.samu050.in.ack",
        "fr.health.samu050.in.info",
    }
    assert fake.depths[(V15.vhost, "fr.health.samu050.message")].ready == 3
    assert [c.name for c in result.closed_connections] == [connection]
    assert SAMU050.username not in fake.users
    assert not any(k[0] == V15.vhost and k[3].startswith("fr.health.samu050") for k in fake.bindings)
    assert (V15.vhost, SDIS50.username) in fake.permissions  # others untouched


async def test_remove_client_deleting_queues(fake: FakeRabbitMQ) -> None:
    result = await remove_client(fake, SAMU050, [V15], delete_queues=True)
    assert {q.name for q in result.removed if isinstance(q, QueueDef)} == {
        "fr.health.samu050.message",
        "fr.health.samu050.ack",
        "fr.health.samu050.info",
    }
    assert not any(v == V15.vhost and q.startswith("fr.health.samu050") for v, q in fake.queues)
    assert (SMUR.vhost, "fr.health.samu050.in.message") in fake.queues  # not a listed vhost


async def test_remove_client_keeps_ids_another_client_still_serves(fake: FakeRabbitMQ) -> None:
    result = await remove_client(fake, SAMU050, [V15], delete_queues=True, keep_client_ids=["fr.health.samu050"])
    assert [item.describe() for item in result.removed] == ["user fr.health.samu050"]
    assert (V15.vhost, "fr.health.samu050.message") in fake.queues


async def test_remove_vhost_delete_drops_everything(fake: FakeRabbitMQ) -> None:
    connection = fake.open_connection(SDIS50.username, V15.vhost)
    result = await remove_vhost(fake, V15.vhost, delete=True)
    assert result.removed == (VHostDef(V15.vhost),) and [c.name for c in result.closed_connections] == [connection]
    assert V15.vhost not in fake.vhosts and not any(v == V15.vhost for v, _ in fake.queues)
    assert (await remove_vhost(fake, V15.vhost, delete=True)).removed == ()


async def test_remove_vhost_retain_keeps_data_and_revokes_managed_access(fake: FakeRabbitMQ) -> None:
    fake.set_queue_depth(V15.vhost, "fr.fire.nexsis.sdis50.ack", ready=2)
    connection = fake.open_connection(SDIS50.username, V15.vhost)
    result = await remove_vhost(fake, V15.vhost, delete=False)
    assert {(type(i).__name__, i.user) for i in result.removed} == {  # type: ignore[union-attr]
        ("PermissionDef", "dispatcher"),
        ("PermissionDef", SAMU050.username),
        ("PermissionDef", SDIS50.username),
        ("TopicPermissionDef", SAMU050.username),
        ("TopicPermissionDef", SDIS50.username),
    }
    assert [c.name for c in result.closed_connections] == [connection]
    assert fake.depths[(V15.vhost, "fr.fire.nexsis.sdis50.ack")].ready == 2
    assert (V15.vhost, fake.username) in fake.permissions  # the operator can still delete it later
    assert (SMUR.vhost, SAMU050.username) in fake.permissions


async def test_remove_vhost_retain_of_an_absent_vhost_is_a_no_op(fake: FakeRabbitMQ) -> None:
    assert await remove_vhost(fake, "ghost_v1.0", delete=False) == RemovalResult()
    assert fake.write_calls == []


@pytest.mark.parametrize(
    "operation",
    [
        lambda broker: revoke_client(broker, SAMU050.username, [V15.vhost]),
        lambda broker: remove_client(broker, SAMU050, [V15], delete_queues=False),
        lambda broker: remove_vhost(broker, V15.vhost, delete=True),
        lambda broker: remove_vhost(broker, V15.vhost, delete=False),
    ],
)
async def test_explicit_operations_fail_fast_when_the_broker_is_down(fake: FakeRabbitMQ, operation) -> None:
    fake.reachable = False
    with pytest.raises(BrokerUnreachable):
        await operation(fake)


async def test_revoke_closes_a_connection_too_young_for_the_statistics(fake: FakeRabbitMQ) -> None:
    young = fake.open_connection(SDIS50.username, V15.vhost, in_stats=False)
    result = await revoke_client(fake, SDIS50.username, [V15.vhost])
    assert [c.name for c in result.closed_connections] == [young] and young not in fake.connections
    assert "close_user_connections" in fake.write_calls  # all its connections: one immediate call


async def test_partial_revoke_retries_a_young_connection_until_it_can_be_named(fake: FakeRabbitMQ) -> None:
    young = fake.open_connection(SAMU050.username, V15.vhost, in_stats=False)
    kept = fake.open_connection(SAMU050.username, SMUR.vhost)
    asyncio.get_running_loop().call_later(0.3, fake.publish_stats)
    result = await revoke_client(fake, SAMU050.username, [V15.vhost], settle_seconds=5)
    assert [c.name for c in result.closed_connections] == [young]
    assert kept in fake.connections and "close_user_connections" not in fake.write_calls


async def test_partial_revoke_gives_up_after_the_settle_time(fake: FakeRabbitMQ) -> None:
    young = fake.open_connection(SAMU050.username, V15.vhost, in_stats=False)
    fake.open_connection(SAMU050.username, SMUR.vhost)
    result = await revoke_client(fake, SAMU050.username, [V15.vhost], settle_seconds=0.3)
    assert result.closed_connections == () and young in fake.connections  # the next apply's sweep gets it
    fake.publish_stats()
    swept = await apply_desired_state(
        fake,
        desired_vhost_state(V15, [ClientAccess(SAMU050.username, SAMU050.client_ids, suspended=True), SDIS50]),
    )
    assert [c.name for c in swept.closed_connections] == [young]


async def test_suspension_through_apply_closes_a_young_connection(fake: FakeRabbitMQ) -> None:
    young = fake.open_connection(SDIS50.username, V15.vhost, in_stats=False)
    suspended = ClientAccess(SDIS50.username, SDIS50.client_ids, suspended=True)
    result = await apply_desired_state(
        fake, desired_vhost_state(V15, [SAMU050, suspended]).merge(desired_vhost_state(SMUR, [SAMU050]))
    )
    assert [c.name for c in result.closed_connections] == [young]
