"""The definitions of a large vhost are built and compared without repeated work.

A vhost of 800 clients holds some 6,000 items, planned on every run (each onboarding, each drift interval).  The
system scale test (tests/system/test_scale_operator.py) profiled the operator at 1,000 clients: most of a vhost
run went to comparing each new item with itself, re-hashing the queue arguments every queue shares and sorting
the same immutable collection again at every iteration.  These tests pin the fixes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hub_operator.builders.broker import ClientAccess, VHostTopology, desired_vhost_state
from hub_operator.builders.broker_definitions import (
    ConflictingDefinitions,
    Definitions,
    FrozenMapping,
    ItemKind,
    QueueDef,
)

VHOST = "15-gps_v1.0"
CLIENTS = 800


def _clients(count: int = CLIENTS) -> list[ClientAccess]:
    return [ClientAccess(f"samu{i:03d}-tracker.hub.test", (f"fr.health.samu{i:03d}.tracker1",)) for i in range(count)]


@pytest.fixture
def queue_comparisons(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the comparisons of two queue definitions."""
    calls = [0]
    original = QueueDef.__eq__

    def counting(self: QueueDef, other: object) -> bool:
        calls[0] += 1
        return original(self, other)

    monkeypatch.setattr(QueueDef, "__eq__", counting)
    yield calls


def test_collecting_distinct_items_compares_none_of_them(queue_comparisons: list[int]) -> None:
    state = desired_vhost_state(VHostTopology(VHOST), _clients())
    assert len(state.definitions.section(ItemKind.QUEUE)) == 2 + 3 * CLIENTS
    assert queue_comparisons[0] == 0


def test_a_duplicate_is_still_compared_and_a_conflict_still_refused() -> None:
    queue = QueueDef(VHOST, "dispatch", arguments={"x-queue-version": 2})
    assert len(Definitions.of([queue, QueueDef(VHOST, "dispatch", arguments={"x-queue-version": 2})])) == 1
    with pytest.raises(ConflictingDefinitions):
        Definitions.of([queue, QueueDef(VHOST, "dispatch", arguments={"x-queue-type": "quorum"})])


def test_rewrapped_arguments_keep_their_hash_and_equality() -> None:
    shared = FrozenMapping({"x-queue-version": 2})
    expected = hash(shared)
    rewrapped = FrozenMapping(shared)  # what every item's __post_init__ does with its arguments
    assert rewrapped._hash == expected  # noqa: SLF001 - the cached hash is the point
    assert hash(rewrapped) == expected and rewrapped == shared == {"x-queue-version": 2}


def test_the_order_of_a_collection_is_computed_once_and_stays_the_same() -> None:
    definitions = desired_vhost_state(VHostTopology(VHOST), _clients(50)).definitions
    queues = definitions.items(ItemKind.QUEUE)
    assert definitions.items(ItemKind.QUEUE) is queues
    assert [q.key for q in queues] == sorted((q.key for q in queues), key=repr)
    assert list(definitions) == [item for kind in ItemKind for item in definitions.items(kind)]
    assert definitions.to_api()["queues"] == [q.to_api() for q in queues]


def test_merging_keeps_every_item_and_refuses_conflicts_across_collections() -> None:
    first = desired_vhost_state(VHostTopology(VHOST), _clients(10)).definitions
    second = desired_vhost_state(VHostTopology("15-smur_v1.6"), _clients(10)).definitions
    merged = first.merge(second)
    shared_users = first.usernames & second.usernames  # users are global: the clients and the default dispatcher
    assert len(shared_users) == 11
    assert len(merged) == len(first) + len(second) - len(shared_users)
    assert set(merged) == set(first) | set(second)
    altered = Definitions.of([QueueDef(VHOST, "dispatch", arguments={"x-queue-type": "quorum"})])
    with pytest.raises(ConflictingDefinitions):
        first.merge(altered)


def test_adding_the_management_permission_does_not_revisit_the_vhost(queue_comparisons: list[int]) -> None:
    state = desired_vhost_state(VHostTopology(VHOST), _clients())
    with_access = state.with_management_access("hub-admin")
    assert len(with_access.definitions) == len(state.definitions) + 1
    assert queue_comparisons[0] == 0
