"""The normalised form: every spelling of the same broker state compares equal, bad documents are refused."""

from __future__ import annotations

import pytest
from hub_operator.builders.broker import ClientAccess, VHostTopology, desired_vhost_state
from hub_operator.builders.broker_definitions import (
    BindingDef,
    ConflictingDefinitions,
    Definitions,
    FrozenMapping,
    InvalidDefinitions,
    ItemKind,
    PermissionDef,
    QueueDef,
    UserDef,
)

VHOST = "15-nexsis_v1.8"

# Shapes copied from a RabbitMQ 3.10.8 export of the same state, global then per vhost.
GLOBAL_EXPORT = {
    "rabbit_version": "3.10.8",
    "rabbitmq_version": "3.10.8",
    "users": [
        {
            "name": "u1",
            "password_hash": "",
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": ["hub-operator"],
            "limits": {},
        }
    ],
    "vhosts": [{"name": VHOST}],
    "permissions": [{"user": "u1", "vhost": VHOST, "configure": "^$", "write": "^hubsante$", "read": "^x$"}],
    "topic_permissions": [],
    "parameters": [],
    "global_parameters": [{"name": "internal_cluster_id", "value": "rabbitmq-cluster-id-x"}],
    "policies": [
        {
            "vhost": VHOST,
            "name": "p",
            "pattern": "^fr",
            "apply-to": "queues",
            "definition": {"message-ttl": 1000, "dead-letter-exchange": "distribution.dlx"},
            "priority": 0,
        }
    ],
    "queues": [
        {"name": "dispatch", "vhost": VHOST, "durable": True, "auto_delete": False, "arguments": {"x-queue-version": 2}}
    ],
    "exchanges": [
        {
            "name": "hubsante",
            "vhost": VHOST,
            "type": "topic",
            "durable": True,
            "auto_delete": False,
            "internal": False,
            "arguments": {},
        }
    ],
    "bindings": [
        {
            "source": "hubsante",
            "vhost": VHOST,
            "destination": "dispatch",
            "destination_type": "queue",
            "routing_key": "#",
            "arguments": {},
        }
    ],
}


def _per_vhost(document: dict) -> dict:
    strip = lambda entries: [{k: v for k, v in e.items() if k != "vhost"} for e in entries]  # noqa: E731
    return {
        "rabbit_version": "3.10.8",
        **{s: strip(document[s]) for s in ("policies", "queues", "exchanges", "bindings")},
    }


def test_a_per_vhost_export_reads_like_the_global_one() -> None:
    whole = Definitions.from_api(GLOBAL_EXPORT)
    vhost_only = Definitions.from_api(_per_vhost(GLOBAL_EXPORT), vhost=VHOST)
    topology_kinds = (ItemKind.POLICY, ItemKind.QUEUE, ItemKind.EXCHANGE, ItemKind.BINDING)
    for kind in topology_kinds:
        assert dict(vhost_only.section(kind)) == dict(whole.section(kind)) != {}
    assert vhost_only == Definitions.of(item for item in whole if item.kind in topology_kinds)


def test_spellings_of_the_same_state_are_equal() -> None:
    reordered = {
        **GLOBAL_EXPORT,
        "users": [{"name": "u1", "password_hash": "", "tags": "hub-operator"}],  # HTTP API spells tags as a string
        "policies": [
            {
                "vhost": VHOST,
                "name": "p",
                "pattern": "^fr",
                "apply-to": "queues",
                "definition": {"dead-letter-exchange": "distribution.dlx", "message-ttl": 1000},
            }  # priority defaults to 0
        ],
        "exchanges": [{"name": "hubsante", "vhost": VHOST, "type": "topic"}],  # defaults
    }
    assert Definitions.from_api(reordered) == Definitions.from_api(GLOBAL_EXPORT)


def test_builtin_exchanges_and_default_bindings_are_not_definitions() -> None:
    document = {
        "exchanges": [
            {"name": "amq.topic", "vhost": VHOST, "type": "topic"},
            {"name": "", "vhost": VHOST, "type": "direct"},
        ],
        "bindings": [{"source": "", "vhost": VHOST, "destination": "q", "routing_key": "q"}],
    }
    assert len(Definitions.from_api(document)) == 0


def test_differences_that_matter_are_not_normalised_away() -> None:
    base = Definitions.from_api(GLOBAL_EXPORT)
    for section, change in [
        ("users", {"password_hash": "abc"}),
        ("users", {"tags": ["administrator"]}),
        ("permissions", {"read": ".*"}),
        ("policies", {"definition": {"message-ttl": 1001, "dead-letter-exchange": "distribution.dlx"}}),
        ("queues", {"arguments": {"x-queue-type": "quorum"}}),
        ("exchanges", {"type": "direct"}),
    ]:
        altered = {**GLOBAL_EXPORT, section: [{**GLOBAL_EXPORT[section][0], **change}]}
        assert Definitions.from_api(altered) != base, (section, change)


def test_round_trip_through_the_api_format() -> None:
    desired = desired_vhost_state(
        VHostTopology(VHOST, profile="legacy", queue_type="quorum"),  # type: ignore[arg-type]
        [ClientAccess("cn.example", ("fr.fire.nexsis.sdis50", "fr.fire.nexsis.sdis14"))],
    ).definitions
    assert Definitions.from_api(desired.to_api()) == desired


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "must be an object"),
        ({"queues": {"name": "q"}}, "must be a list"),
        ({"queues": ["q"]}, "queue entry must be an object"),
        ({"queues": [{"vhost": VHOST}]}, "queue entry without 'name'"),
        ({"queues": [{"name": "q"}]}, "without a vhost"),
        ({"permissions": [{"user": "u", "vhost": VHOST, "write": "", "read": ""}]}, "without 'configure'"),
        ({"users": [{"name": "u", "tags": 7}]}, "tags"),
        ({"policies": [{"vhost": VHOST, "name": "p", "pattern": "x", "definition": [1]}]}, "definition"),
    ],
)
def test_malformed_documents_are_refused(document: object, message: str) -> None:
    with pytest.raises(InvalidDefinitions, match=message):
        Definitions.from_api(document)  # type: ignore[arg-type]


def test_identical_duplicates_merge_and_conflicting_ones_raise() -> None:
    queue = QueueDef(VHOST, "q")
    assert len(Definitions.of([queue, QueueDef(VHOST, "q")])) == 1
    with pytest.raises(ConflictingDefinitions, match="queue q in vhost"):
        Definitions.of([queue, QueueDef(VHOST, "q", arguments={"x-queue-type": "quorum"})])  # type: ignore[arg-type]


def test_bindings_differing_only_by_key_are_two_bindings() -> None:
    definitions = Definitions.of([BindingDef(VHOST, "x", "q", "a"), BindingDef(VHOST, "x", "q", "b")])
    assert len(definitions.section(ItemKind.BINDING)) == 2


def test_frozen_mapping_is_order_insensitive_hashable_and_thaws_back() -> None:
    a = FrozenMapping({"b": [1, {"c": 2}], "a": 1})
    b = FrozenMapping({"a": 1, "b": [1, {"c": 2}]})
    assert a == b and hash(a) == hash(b) and a == {"a": 1, "b": [1, {"c": 2}]}
    assert a.thaw() == {"a": 1, "b": [1, {"c": 2}]}
    assert FrozenMapping({"a": 1}) != FrozenMapping({"a": 2})


def test_restricted_to_keeps_the_vhost_and_the_named_users() -> None:
    other = Definitions.of(
        [QueueDef("elsewhere", "q"), UserDef("stranger"), PermissionDef("u1", "elsewhere", "", "", "")]
    )
    both = Definitions.from_api(GLOBAL_EXPORT).merge(other)
    scoped = both.restricted_to([VHOST], users=["u1"])
    assert scoped == Definitions.from_api(GLOBAL_EXPORT)
    assert {item.kind for item in both.restricted_to([VHOST], users=())} == {
        ItemKind.VHOST,
        ItemKind.PERMISSION,
        ItemKind.POLICY,
        ItemKind.QUEUE,
        ItemKind.EXCHANGE,
        ItemKind.BINDING,
    }
