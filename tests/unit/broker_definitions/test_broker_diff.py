"""diff(desired, actual): missing, altered (update vs conflict), extra — and never an implied deletion."""

from __future__ import annotations

import dataclasses

from hub_operator.builders.broker import ClientAccess, VHostTopology, desired_vhost_state
from hub_operator.builders.broker_definitions import (
    BindingDef,
    Definitions,
    ExchangeDef,
    ItemKind,
    PermissionDef,
    QueueDef,
)
from hub_operator.builders.broker_diff import diff
from hypothesis import given, settings
from hypothesis import strategies as st

VHOST = "15-15_v1.5"
CLIENTS = [
    ClientAccess("fr.health.samu050", ("fr.health.samu050",)),
    ClientAccess("fr.fire.nexsis.sdis50", ("fr.fire.nexsis.sdis50",)),
    ClientAccess("platform.example.org", ("fr.health.samu76A", "fr.health.samu76B")),
]
DESIRED = desired_vhost_state(VHostTopology(VHOST), CLIENTS).definitions


def _without(definitions: Definitions, *unwanted: object) -> Definitions:
    return Definitions.of(item for item in definitions if item not in unwanted)


def _replace(definitions: Definitions, old: object, new: object) -> Definitions:
    return Definitions.of(new if item == old else item for item in definitions)  # type: ignore[misc]


def test_identical_states_are_in_sync_and_import_nothing() -> None:
    result = diff(DESIRED, DESIRED)
    assert result.in_sync and not result.extra and len(result.to_import()) == 0


def test_from_empty_everything_is_missing_and_imported() -> None:
    result = diff(DESIRED, Definitions.of([]))
    assert set(result.missing) == set(DESIRED) and result.to_import() == DESIRED


def test_altered_permission_is_an_update() -> None:
    permission = DESIRED.get(ItemKind.PERMISSION, (VHOST, "fr.health.samu050"))
    widened = dataclasses.replace(permission, read=".*")  # type: ignore[type-var]
    result = diff(DESIRED, _replace(DESIRED, permission, widened))
    assert not result.missing and not result.extra and not result.conflicts
    (update,) = result.updates
    assert update.desired == permission and update.actual == widened and update.changed_fields == ("read",)
    assert result.to_import() == Definitions.of([permission])


def test_missing_binding_is_missing_only() -> None:
    binding = BindingDef(VHOST, "distribution", "fr.health.samu76B.ack", "fr.health.samu76B.ack")
    assert binding in DESIRED
    result = diff(DESIRED, _without(DESIRED, binding))
    assert result.missing == (binding,) and not result.altered and not result.extra


def test_rebound_with_another_key_is_one_missing_and_one_extra_binding() -> None:
    binding = BindingDef(VHOST, "hubsante", "dispatch", "#")
    snooping = BindingDef(VHOST, "hubsante", "dispatch", "fr.health.#")
    result = diff(DESIRED, _replace(DESIRED, binding, snooping))
    assert result.missing == (binding,) and result.extra == (snooping,) and not result.altered


def test_deleted_user_takes_its_permissions_with_it() -> None:
    user = DESIRED.get(ItemKind.USER, ("platform.example.org",))
    permission = DESIRED.get(ItemKind.PERMISSION, (VHOST, "platform.example.org"))
    topic = DESIRED.get(ItemKind.TOPIC_PERMISSION, (VHOST, "platform.example.org", "hubsante"))
    result = diff(DESIRED, _without(DESIRED, user, permission, topic))
    assert set(result.missing) == {user, permission, topic}
    assert result.to_import() == Definitions.of([user, permission, topic])  # type: ignore[list-item]


def test_altered_queue_or_exchange_is_a_conflict_an_import_cannot_fix() -> None:
    queue = DESIRED.get(ItemKind.QUEUE, (VHOST, "fr.health.samu050.message"))
    quorum = dataclasses.replace(queue, arguments={"x-queue-type": "quorum"})  # type: ignore[type-var]
    exchange = ExchangeDef(VHOST, "hubsante", "topic")
    direct = dataclasses.replace(exchange, type="direct")
    result = diff(DESIRED, _replace(_replace(DESIRED, queue, quorum), exchange, direct))
    assert {c.desired for c in result.conflicts} == {queue, exchange}
    assert not result.updates and not result.in_sync
    assert len(result.to_import()) == 0  # importing would be a silent no-op on the broker


def test_extra_queues_are_reported_never_imported_nor_deleted() -> None:
    retained = QueueDef(VHOST, "fr.health.samu999.message")
    foreign = PermissionDef("somebody", VHOST, ".*", ".*", ".*")
    result = diff(DESIRED, DESIRED.merge(Definitions.of([retained, foreign])))
    assert result.in_sync
    assert set(result.extra) == {retained, foreign}
    assert result.extra_of(ItemKind.QUEUE) == (retained,)
    assert len(result.to_import()) == 0


def test_applying_the_import_converges_and_a_rerun_changes_nothing() -> None:
    permission = DESIRED.get(ItemKind.PERMISSION, (VHOST, "fr.health.samu050"))
    drifted = _replace(
        _without(DESIRED, *DESIRED.items(ItemKind.BINDING)[:3]), permission, dataclasses.replace(permission, write=".*")
    )  # type: ignore[type-var]
    first = diff(DESIRED, drifted)
    # An import adds or overwrites by identity: model it as "imported items win".
    repaired = Definitions.of(
        [item for item in drifted if (item.kind, item.key) not in {(i.kind, i.key) for i in first.to_import()}]
        + list(first.to_import())
    )
    assert repaired == DESIRED
    assert diff(DESIRED, repaired).in_sync and len(diff(DESIRED, repaired).to_import()) == 0


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=len(DESIRED) - 1)))
def test_any_subset_missing_is_exactly_what_gets_imported(removed_indexes: set[int]) -> None:
    items = DESIRED.items()
    removed = {items[i] for i in removed_indexes}
    actual = Definitions.of(item for item in items if item not in removed)
    result = diff(DESIRED, actual)
    assert set(result.missing) == removed
    assert not result.extra and not result.altered
    assert set(result.to_import()) == removed
