"""apply_desired_state against the in-memory broker: bulk, idempotent, repairs drift, revokes stray access."""

from __future__ import annotations

import pytest
from hub_operator.broker_sync import ChangeAction, apply_desired_state, plan_sync
from hub_operator.builders.broker import (
    ClientAccess,
    DesiredState,
    Owner,
    QueueType,
    VHostTopology,
    desired_vhost_state,
)
from hub_operator.builders.broker_definitions import (
    BindingDef,
    Definitions,
    ExchangeDef,
    ItemKind,
    PermissionDef,
    QueueDef,
    VHostDef,
)
from hub_operator.clients.broker_api import BrokerRejected, BrokerUnreachable
from hub_operator.clients.fake_rabbitmq import FakeConnectionRefused, FakeRabbitMQ

VHOST = "15-15_v1.5"
TOPOLOGY = VHostTopology(VHOST, message_ttl_ms=60_000)
SAMU050 = ClientAccess("fr.health.samu050", ("fr.health.samu050",))
SDIS50 = ClientAccess("fr.fire.nexsis.sdis50", ("fr.fire.nexsis.sdis50",))
REGIONAL = ClientAccess("platform.example.org", ("fr.health.samu76A", "fr.health.samu76B"))
CLIENTS = [SAMU050, SDIS50, REGIONAL]


def _state(*clients: ClientAccess, topology: VHostTopology = TOPOLOGY) -> DesiredState:
    return desired_vhost_state(topology, clients)


async def _actual(fake: FakeRabbitMQ, desired: DesiredState) -> Definitions:
    expected = desired.with_management_access(fake.username)
    return Definitions.from_api(await fake.export_definitions()).restricted_to(expected.vhosts, expected.usernames)


def _described(result, action: ChangeAction) -> set[str]:
    return {change.item.describe() for change in result.of(action)}


@pytest.fixture
async def provisioned() -> FakeRabbitMQ:
    fake = FakeRabbitMQ()
    await apply_desired_state(fake, _state(*CLIENTS))
    fake.reset_call_log()
    return fake


async def test_from_empty_one_import_creates_exactly_the_desired_state() -> None:
    fake = FakeRabbitMQ()
    desired = _state(*CLIENTS)
    result = await apply_desired_state(fake, desired)
    assert fake.write_calls == ["import_definitions"]
    expected = desired.with_management_access(fake.username).definitions
    assert await _actual(fake, desired) == expected
    assert {c.item for c in result.of(ChangeAction.CREATED)} == set(expected)
    assert expected.get(ItemKind.PERMISSION, (VHOST, fake.username)) is not None  # the operator's own access
    assert result.changed and result.converged and not result.drift
    assert result.imported_items == len(expected)


async def test_a_rerun_only_reads(provisioned: FakeRabbitMQ) -> None:
    result = await apply_desired_state(provisioned, _state(*CLIENTS))
    assert provisioned.write_calls == []
    assert result.changes == () and not result.changed and result.converged and result.imported_items == 0


async def test_deleted_queue_and_permission_are_repaired_and_reported(provisioned: FakeRabbitMQ) -> None:
    await provisioned.delete_queue(VHOST, "fr.health.samu76B.ack")
    await provisioned.delete_permission(VHOST, SDIS50.username)
    provisioned.reset_call_log()
    result = await apply_desired_state(provisioned, _state(*CLIENTS))
    assert _described(result, ChangeAction.REPAIRED) == {
        "queue fr.health.samu76B.ack in vhost 15-15_v1.5",
        "binding distribution -> queue fr.health.samu76B.ack (key 'fr.health.samu76B.ack') in vhost 15-15_v1.5",
        "permission of fr.fire.nexsis.sdis50 in vhost 15-15_v1.5",
    }
    assert len(result.changes) == 3 and result.drift == result.changes
    assert {owner for c in result.changes for owner in c.owners} == {
        Owner.client(REGIONAL.username),
        Owner.client(SDIS50.username),
    }
    assert provisioned.write_calls == ["import_definitions"]
    assert await _actual(provisioned, _state(*CLIENTS)) == _state(*CLIENTS).with_management_access("admin").definitions


async def test_altered_permission_is_updated(provisioned: FakeRabbitMQ) -> None:
    await provisioned.import_definitions(
        {"permissions": [{"user": SAMU050.username, "vhost": VHOST, "configure": ".*", "write": ".*", "read": ".*"}]}
    )
    result = await apply_desired_state(provisioned, _state(*CLIENTS))
    (change,) = result.changes
    assert change.action is ChangeAction.UPDATED and change.previous.read == ".*"  # type: ignore[union-attr]
    assert provisioned.permissions[(VHOST, SAMU050.username)]["read"] == r"^(fr\.health\.samu050)\.(message|ack|info)$"


async def test_deleted_user_is_repaired_with_its_permissions(provisioned: FakeRabbitMQ) -> None:
    await provisioned.delete_user(REGIONAL.username)
    result = await apply_desired_state(provisioned, _state(*CLIENTS))
    assert _described(result, ChangeAction.REPAIRED) == {
        "user platform.example.org",
        "permission of platform.example.org in vhost 15-15_v1.5",
        "topic permission of platform.example.org on exchange hubsante in vhost 15-15_v1.5",
    }


async def test_a_new_client_is_created_not_repaired(provisioned: FakeRabbitMQ) -> None:
    newcomer = ClientAccess("fr.health.samu051", ("fr.health.samu051",))
    result = await apply_desired_state(provisioned, _state(*CLIENTS, newcomer))
    assert result.of(ChangeAction.REPAIRED) == ()
    assert len(result.of(ChangeAction.CREATED)) == 1 + 3 + 3 + 2  # user, queues, bindings, permissions
    assert {o for c in result.changes for o in c.owners} == {Owner.client(newcomer.username)}


async def test_suspension_revokes_access_and_closes_connections(provisioned: FakeRabbitMQ) -> None:
    connection = provisioned.open_connection(SAMU050.username, VHOST)
    other = provisioned.open_connection(SDIS50.username, VHOST)
    suspended = ClientAccess(SAMU050.username, SAMU050.client_ids, suspended=True)
    result = await apply_desired_state(provisioned, _state(suspended, SDIS50, REGIONAL))
    assert {c.action for c in result.changes} == {ChangeAction.REVOKED}
    assert _described(result, ChangeAction.REVOKED) == {
        "permission of fr.health.samu050 in vhost 15-15_v1.5",
        "topic permission of fr.health.samu050 on exchange hubsante in vhost 15-15_v1.5",
    }
    assert [c.name for c in result.closed_connections] == [connection]
    assert other in provisioned.connections and connection not in provisioned.connections
    assert (VHOST, "fr.health.samu050.message") in provisioned.queues  # queues (and messages) stay
    with pytest.raises(FakeConnectionRefused, match="no access"):
        provisioned.open_connection(SAMU050.username, VHOST)


async def test_a_dropped_client_loses_access_and_bindings_but_keeps_its_queues(provisioned: FakeRabbitMQ) -> None:
    connection = provisioned.open_connection(REGIONAL.username, VHOST)
    result = await apply_desired_state(provisioned, _state(SAMU050, SDIS50))
    assert len(result.of(ChangeAction.REVOKED)) == 2
    assert len(result.of(ChangeAction.UNBOUND)) == 6
    assert {c.item.name for c in result.of(ChangeAction.UNMANAGED)} == {  # type: ignore[union-attr]
        f"fr.health.samu76{s}.{k}" for s in "AB" for k in ("message", "ack", "info")
    }
    assert all(isinstance(c.item, QueueDef) for c in result.of(ChangeAction.UNMANAGED))
    assert "delete_queue" not in provisioned.write_calls
    assert [c.name for c in result.closed_connections] == [connection]
    assert REGIONAL.username in provisioned.users  # users are deleted explicitly (remove_client)


async def test_altered_exchange_is_recreated_with_its_bindings(provisioned: FakeRabbitMQ) -> None:
    await provisioned.delete_exchange(VHOST, "distribution")
    await provisioned.import_definitions(
        {"exchanges": [{"vhost": VHOST, "name": "distribution", "type": "fanout", "durable": True}]}
    )
    result = await apply_desired_state(provisioned, _state(*CLIENTS))
    (recreated,) = result.of(ChangeAction.RECREATED)
    assert recreated.item == ExchangeDef(VHOST, "distribution", "direct")
    assert len(result.of(ChangeAction.REPAIRED)) == 12  # the bindings the foreign exchange lacked
    assert result.converged
    assert await _actual(provisioned, _state(*CLIENTS)) == _state(*CLIENTS).with_management_access("admin").definitions


async def test_altered_queue_is_a_conflict_left_alone(provisioned: FakeRabbitMQ) -> None:
    provisioned.set_queue_depth(VHOST, "dispatch", ready=7)
    result = await apply_desired_state(
        provisioned, _state(*CLIENTS, topology=VHostTopology(VHOST, queue_type=QueueType.QUORUM))
    )
    conflicts = result.of(ChangeAction.CONFLICT)
    assert len(conflicts) == 2 + 3 * 4 and not result.converged
    assert conflicts[0].describe().endswith("(arguments differ)")
    assert "delete_queue" not in provisioned.write_calls
    assert provisioned.depths[(VHOST, "dispatch")].ready == 7


async def test_foreign_binding_on_a_hub_exchange_is_unbound(provisioned: FakeRabbitMQ) -> None:
    await provisioned.import_definitions(
        {
            "bindings": [
                {
                    "vhost": VHOST,
                    "source": "hubsante",
                    "destination": "fr.health.samu050.message",
                    "destination_type": "queue",
                    "routing_key": "#",
                }
            ]
        }
    )
    result = await apply_desired_state(provisioned, _state(*CLIENTS))
    (unbound,) = result.of(ChangeAction.UNBOUND)
    assert unbound.item == BindingDef(VHOST, "hubsante", "fr.health.samu050.message", "#")
    assert not any(k[1] == "hubsante" and k[3] == "fr.health.samu050.message" for k in provisioned.bindings)


async def test_unmanaged_users_keep_their_access_and_connections(provisioned: FakeRabbitMQ) -> None:
    await provisioned.import_definitions(
        {
            "users": [{"name": "ops", "password_hash": "", "tags": ""}],
            "permissions": [{"user": "ops", "vhost": VHOST, "configure": "", "write": "", "read": ".*"}],
        }
    )
    connection = provisioned.open_connection("ops", VHOST)
    result = await apply_desired_state(provisioned, _state(*CLIENTS))
    (change,) = result.changes
    assert change.action is ChangeAction.UNMANAGED and change.item == PermissionDef("ops", VHOST, "", "", ".*")
    assert result.closed_connections == () and connection in provisioned.connections


async def test_connection_of_a_deleted_user_is_closed(provisioned: FakeRabbitMQ) -> None:
    connection = provisioned.open_connection(REGIONAL.username, VHOST)
    await provisioned.delete_user(REGIONAL.username)  # an open connection survives this on a real broker
    result = await apply_desired_state(provisioned, _state(SAMU050, SDIS50))
    assert [c.name for c in result.closed_connections] == [connection]


async def test_operator_permission_removed_behind_its_back_is_repaired(provisioned: FakeRabbitMQ) -> None:
    await provisioned.delete_permission(VHOST, provisioned.username)
    result = await apply_desired_state(provisioned, _state(*CLIENTS))
    assert _described(result, ChangeAction.REPAIRED) == {"permission of admin in vhost 15-15_v1.5"}


async def test_an_item_the_import_skipped_is_reported_unresolved() -> None:
    fake = FakeRabbitMQ()
    orphan = BindingDef(VHOST, "distribution", "no-such-queue", "no-such-queue")
    desired = DesiredState.build(
        [(Owner.vhost(VHOST), [VHostDef(VHOST), ExchangeDef(VHOST, "distribution", "direct"), orphan])]
    )
    result = await apply_desired_state(fake, desired)
    (unresolved,) = result.of(ChangeAction.UNRESOLVED)
    assert unresolved.item == orphan and not result.converged


async def test_two_vhosts_in_one_apply_share_users_and_one_import() -> None:
    fake = FakeRabbitMQ()
    desired = _state(SAMU050).merge(_state(SAMU050, topology=VHostTopology("15-smur_v1.4")))
    result = await apply_desired_state(fake, desired)
    assert fake.write_calls == ["import_definitions"] and result.vhosts == ("15-15_v1.5", "15-smur_v1.4")
    fake.reset_call_log()
    # Joining a second vhost later is a creation there, although the user already exists.
    fresh = FakeRabbitMQ()
    await apply_desired_state(fresh, _state(SAMU050))
    joined = await apply_desired_state(fresh, desired)
    assert joined.of(ChangeAction.REPAIRED) == ()


async def test_outage_raises_broker_unreachable_and_writes_nothing() -> None:
    fake = FakeRabbitMQ(reachable=False)
    with pytest.raises(BrokerUnreachable, match="simulated outage"):
        await apply_desired_state(fake, _state(*CLIENTS))
    fake.reachable = True
    assert fake.write_calls == [] and VHOST not in fake.vhosts


def test_planning_is_pure_and_matches_the_apply() -> None:
    desired = _state(*CLIENTS).with_management_access("admin")
    plan = plan_sync(desired, Definitions.of([]))
    assert plan.to_import == desired.definitions and plan.to_revoke == () and plan.to_unbind == ()
    assert plan.users_with_access == {VHOST: frozenset({"admin", "dispatcher", *(c.username for c in CLIENTS)})}


async def test_an_import_that_lost_a_user_creation_race_is_sent_again() -> None:
    # RabbitMQ 3.10 answers 400 user_already_exists when two imports create the same user at once (a new client on
    # two vhosts, both vhost runs importing it): the import is idempotent, so it is sent again.
    fake = FakeRabbitMQ()
    fake.fail_next["import_definitions"] = BrokerRejected(
        400, "user_already_exists fr.health.samu050", "/api/definitions", "POST")
    desired = _state(*CLIENTS)
    result = await apply_desired_state(fake, desired)
    assert fake.write_calls == ["import_definitions", "import_definitions"]
    assert result.converged
    assert await _actual(fake, desired) == desired.with_management_access(fake.username).definitions


async def test_any_other_rejected_import_fails_the_apply_at_once() -> None:
    fake = FakeRabbitMQ()
    fake.fail_next["import_definitions"] = BrokerRejected(400, "Validation failed", "/api/definitions", "POST")
    with pytest.raises(BrokerRejected, match="Validation failed"):
        await apply_desired_state(fake, _state(*CLIENTS))
    assert fake.write_calls == ["import_definitions"]
