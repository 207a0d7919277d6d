"""Desired broker definitions of a vhost and its clients (HUBSANTE.md §3), exact to the regex."""

from __future__ import annotations

import re

import pytest
from hub_dispatcher.protocol import ProtocolProfile
from hub_operator.builders.broker import (
    DEFAULT_MESSAGE_TTL_MS,
    MANAGED_USER_TAG,
    ClientAccess,
    InvalidBrokerSpec,
    Owner,
    QueueType,
    VHostTopology,
    desired_vhost_state,
)
from hub_operator.builders.broker_definitions import (
    BindingDef,
    ConflictingDefinitions,
    Definitions,
    ExchangeDef,
    ItemKind,
    PermissionDef,
    PolicyDef,
    QueueDef,
    TopicPermissionDef,
    UserDef,
    VHostDef,
)

VHOST = "15-15_v1.5"
SAMU050 = ClientAccess("fr.health.samu050", ("fr.health.samu050",))
REGIONAL = ClientAccess("platform.example.org", ("fr.health.samu76B", "fr.health.samu76A"))


def _by_kind(definitions: Definitions, kind: ItemKind) -> list:
    return list(definitions.items(kind))


def test_vhost_topology_current_profile_classic_queues() -> None:
    state = desired_vhost_state(VHostTopology(VHOST, message_ttl_ms=60_000))
    d = state.definitions
    classic = {"x-queue-version": 2}
    assert _by_kind(d, ItemKind.VHOST) == [VHostDef(VHOST)]
    assert set(_by_kind(d, ItemKind.EXCHANGE)) == {
        ExchangeDef(VHOST, "hubsante", "topic"),
        ExchangeDef(VHOST, "distribution", "direct"),
        ExchangeDef(VHOST, "distribution.dlx", "fanout"),
    }
    assert sorted(
        (q.name, dict(q.arguments), q.durable, q.auto_delete)
        for q in _by_kind(d, ItemKind.QUEUE)  # type: ignore[union-attr]
    ) == [("dispatch", classic, True, False), ("dispatch.dlq", classic, True, False)]
    assert set(_by_kind(d, ItemKind.BINDING)) == {
        BindingDef(VHOST, "hubsante", "dispatch", "#"),
        BindingDef(VHOST, "distribution.dlx", "dispatch.dlq", ""),
    }
    (policy,) = _by_kind(d, ItemKind.POLICY)
    assert policy == PolicyDef(
        VHOST,
        "hubsante-client-queues",
        r"^fr\..+\.(message|ack|info)$",
        {"message-ttl": 60_000, "dead-letter-exchange": "distribution.dlx"},  # type: ignore[arg-type]
        apply_to="queues",
    )
    assert _by_kind(d, ItemKind.USER) == [UserDef("dispatcher", frozenset({MANAGED_USER_TAG}), "")]
    assert _by_kind(d, ItemKind.PERMISSION) == [
        PermissionDef("dispatcher", VHOST, configure="^$", write="^distribution$", read=r"^dispatch(\.dlq)?$")
    ]
    assert _by_kind(d, ItemKind.TOPIC_PERMISSION) == []


def test_legacy_profile_binds_dispatch_on_out_keys_and_polices_in_queues() -> None:
    d = desired_vhost_state(VHostTopology(VHOST, profile="legacy"), [SAMU050]).definitions  # type: ignore[arg-type]
    assert BindingDef(VHOST, "hubsante", "dispatch", "#.out.*") in d
    (policy,) = _by_kind(d, ItemKind.POLICY)
    assert policy.pattern == r"^fr\..+\.in\.(message|ack|info)$"  # type: ignore[union-attr]
    assert {q.name for q in _by_kind(d, ItemKind.QUEUE)} >= {
        "fr.health.samu050.in.message",
        "fr.health.samu050.in.ack",
        "fr.health.samu050.in.info",
    }
    assert d.get(ItemKind.PERMISSION, (VHOST, SAMU050.username)) == PermissionDef(
        SAMU050.username, VHOST, "^$", "^hubsante$", r"^(fr\.health\.samu050)\.in\.(message|ack|info)$"
    )
    assert d.get(ItemKind.TOPIC_PERMISSION, (VHOST, SAMU050.username, "hubsante")) == TopicPermissionDef(
        SAMU050.username, VHOST, "hubsante", r"^(fr\.health\.samu050)\.out\.(message|ack|info)$", "^$"
    )


def test_quorum_queues_carry_the_queue_type_everywhere() -> None:
    d = desired_vhost_state(VHostTopology(VHOST, queue_type=QueueType.QUORUM), [SAMU050]).definitions
    queues = _by_kind(d, ItemKind.QUEUE)
    assert len(queues) == 5
    assert all(dict(q.arguments) == {"x-queue-type": "quorum"} and q.durable for q in queues)  # type: ignore[union-attr]


def test_single_id_client_queues_bindings_and_exact_regexes() -> None:
    d = desired_vhost_state(VHostTopology(VHOST), [SAMU050]).definitions
    queues = {f"fr.health.samu050.{kind}" for kind in ("message", "ack", "info")}
    assert {q.name for q in _by_kind(d, ItemKind.QUEUE)} == queues | {"dispatch", "dispatch.dlq"}
    assert {b for b in _by_kind(d, ItemKind.BINDING) if b.source == "distribution"} == {  # type: ignore[union-attr]
        BindingDef(VHOST, "distribution", queue, queue) for queue in queues
    }
    assert d.get(ItemKind.USER, ("fr.health.samu050",)) == UserDef("fr.health.samu050", frozenset({MANAGED_USER_TAG}))
    assert d.get(ItemKind.PERMISSION, (VHOST, "fr.health.samu050")) == PermissionDef(
        "fr.health.samu050", VHOST, "^$", "^hubsante$", r"^(fr\.health\.samu050)\.(message|ack|info)$"
    )
    assert d.get(ItemKind.TOPIC_PERMISSION, (VHOST, "fr.health.samu050", "hubsante")) == TopicPermissionDef(
        "fr.health.samu050", VHOST, "hubsante", r"^(fr\.health\.samu050)$", "^$"
    )


def test_multi_id_client_gets_alternations_and_queues_for_every_id() -> None:
    d = desired_vhost_state(VHostTopology(VHOST), [REGIONAL]).definitions
    permission = d.get(ItemKind.PERMISSION, (VHOST, REGIONAL.username))
    topic = d.get(ItemKind.TOPIC_PERMISSION, (VHOST, REGIONAL.username, "hubsante"))
    assert permission == PermissionDef(
        REGIONAL.username,
        VHOST,
        "^$",
        "^hubsante$",
        r"^(fr\.health\.samu76A|fr\.health\.samu76B)\.(message|ack|info)$",
    )
    assert topic.write == r"^(fr\.health\.samu76A|fr\.health\.samu76B)$"  # type: ignore[union-attr]
    read = re.compile(permission.read)  # type: ignore[union-attr]
    write = re.compile(topic.write)  # type: ignore[union-attr]
    # The regexes grant exactly the client's own names, not look-alikes (dots are escaped, both ends anchored).
    assert read.match("fr.health.samu76A.ack") and read.match("fr.health.samu76B.info")
    assert not read.match("fr.health.samu76AX.ack") and not read.match("frXhealth.samu76A.ack")
    assert not read.match("dispatch") and not read.match("fr.health.samu76A.ack.x")
    assert write.match("fr.health.samu76B") and not write.match("fr.health.samu76")
    assert not write.match("fr.health.samu76A.out.message")
    assert len([q for q in _by_kind(d, ItemKind.QUEUE) if q.name.startswith("fr.")]) == 6  # type: ignore[union-attr]


def test_suspended_client_keeps_user_queues_and_bindings_but_has_no_permissions() -> None:
    active = desired_vhost_state(VHostTopology(VHOST), [SAMU050]).definitions
    suspended = desired_vhost_state(
        VHostTopology(VHOST), [ClientAccess(SAMU050.username, SAMU050.client_ids, suspended=True)]
    ).definitions
    removed = {(item.kind, item.key) for item in active} - {(item.kind, item.key) for item in suspended}
    assert removed == {
        (ItemKind.PERMISSION, (VHOST, SAMU050.username)),
        (ItemKind.TOPIC_PERMISSION, (VHOST, SAMU050.username, "hubsante")),
    }
    assert set(suspended) <= set(active)


def test_client_queue_policy_matches_client_queues_only() -> None:
    for profile in ProtocolProfile:
        d = desired_vhost_state(VHostTopology(VHOST, profile=profile), [SAMU050, REGIONAL]).definitions
        (policy,) = _by_kind(d, ItemKind.POLICY)
        pattern = re.compile(policy.pattern)  # type: ignore[union-attr]
        matched = {q.name for q in _by_kind(d, ItemKind.QUEUE) if pattern.match(q.name)}  # type: ignore[union-attr]
        assert matched == {q.name for q in _by_kind(d, ItemKind.QUEUE)} - {"dispatch", "dispatch.dlq"}


def test_the_import_body_is_the_management_api_format() -> None:
    body = desired_vhost_state(VHostTopology(VHOST, message_ttl_ms=1000), [SAMU050]).definitions.to_api()
    assert set(body) == {
        "users",
        "vhosts",
        "permissions",
        "topic_permissions",
        "policies",
        "queues",
        "exchanges",
        "bindings",
    }
    assert {"name": "fr.health.samu050", "password_hash": "", "tags": [MANAGED_USER_TAG]} in body["users"]
    assert body["vhosts"] == [{"name": VHOST}]
    assert {
        "vhost": VHOST,
        "name": "hubsante-client-queues",
        "pattern": r"^fr\..+\.(message|ack|info)$",
        "apply-to": "queues",
        "definition": {"dead-letter-exchange": "distribution.dlx", "message-ttl": 1000},
        "priority": 0,
    } in body["policies"]
    assert {
        "vhost": VHOST,
        "name": "dispatch",
        "durable": True,
        "auto_delete": False,
        "arguments": {"x-queue-version": 2},
    } in body["queues"]
    assert (
        Definitions.from_api(body)
        == desired_vhost_state(VHostTopology(VHOST, message_ttl_ms=1000), [SAMU050]).definitions
    )


def test_owners_say_which_client_or_vhost_an_item_exists_for() -> None:
    state = desired_vhost_state(VHostTopology(VHOST), [SAMU050, REGIONAL])
    queue = QueueDef(VHOST, "fr.health.samu76A.message", arguments={"x-queue-version": 2})  # type: ignore[arg-type]
    assert state.owners_of(queue) == {Owner.client(REGIONAL.username)}
    assert state.owners_of(ExchangeDef(VHOST, "hubsante", "topic")) == {Owner.vhost(VHOST)}
    assert state.owners_of(UserDef("dispatcher", frozenset({MANAGED_USER_TAG}))) == {Owner.vhost(VHOST)}


def test_two_certificates_may_serve_the_same_client_id() -> None:
    backup = ClientAccess("backup.example.org", ("fr.health.samu050",))
    state = desired_vhost_state(VHostTopology(VHOST), [SAMU050, backup])
    queue = state.definitions.get(ItemKind.QUEUE, (VHOST, "fr.health.samu050.ack"))
    assert state.owners_of(queue) == {Owner.client(SAMU050.username), Owner.client(backup.username)}  # type: ignore[arg-type]


def test_merging_vhosts_shares_the_dispatcher_user() -> None:
    first = desired_vhost_state(VHostTopology("15-15_v1.5"), [SAMU050])
    second = desired_vhost_state(VHostTopology("15-smur_v1.4"), [SAMU050])
    merged = first.merge(second)
    assert merged.vhosts == {"15-15_v1.5", "15-smur_v1.4"}
    assert merged.usernames == {"dispatcher", SAMU050.username}
    dispatcher = merged.definitions.get(ItemKind.USER, ("dispatcher",))
    assert merged.owners_of(dispatcher) == {Owner.vhost("15-15_v1.5"), Owner.vhost("15-smur_v1.4")}  # type: ignore[arg-type]


def test_management_access_adds_full_permission_in_every_vhost() -> None:
    state = desired_vhost_state(VHostTopology(VHOST)).with_management_access("hub-admin")
    assert state.definitions.get(ItemKind.PERMISSION, (VHOST, "hub-admin")) == PermissionDef(
        "hub-admin", VHOST, ".*", ".*", ".*"
    )
    assert "hub-admin" not in state.usernames  # the operator never redefines its own user


def test_client_ids_are_normalised() -> None:
    access = ClientAccess("cn", ("fr.health.samu76B", "fr.health.samu76A", "fr.health.samu76B"))
    assert access.client_ids == ("fr.health.samu76A", "fr.health.samu76B")


@pytest.mark.parametrize(
    ("username", "client_ids", "message"),
    [
        ("", ("fr.health.samu050",), "username"),
        ("cn", (), "no client id"),
        ("cn", "fr.health.samu050", "sequence"),
        ("cn", ("fr.health.samu050", "health.samu050"), "invalid client id"),
        ("cn", ("fr.health.samu050.",), "invalid client id"),
        ("cn", ("fr.health.samu 050",), "invalid client id"),
        ("cn", ("fr.health.hub",), "hub's own id"),
    ],
)
def test_invalid_client_access_is_refused(username: str, client_ids: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidBrokerSpec, match=message):
        ClientAccess(username, client_ids)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vhost": ""}, "invalid vhost"),
        ({"vhost": "/"}, "invalid vhost"),
        ({"vhost": "/15-15_v1.5"}, "invalid vhost"),
        ({"vhost": VHOST, "message_ttl_ms": 0}, "TTL"),
        ({"vhost": VHOST, "message_ttl_ms": -5}, "TTL"),
        ({"vhost": VHOST, "message_ttl_ms": True}, "TTL"),
        ({"vhost": VHOST, "message_ttl_ms": 1.5}, "TTL"),
        ({"vhost": VHOST, "profile": "newest"}, "newest"),
        ({"vhost": VHOST, "queue_type": "stream"}, "stream"),
        ({"vhost": VHOST, "dispatcher_username": " "}, "dispatcher username"),
    ],
)
def test_invalid_topology_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidBrokerSpec, match=message):
        VHostTopology(**kwargs)


def test_one_username_with_two_different_id_sets_conflicts() -> None:
    other = ClientAccess(SAMU050.username, ("fr.health.samu051",))
    with pytest.raises(ConflictingDefinitions, match=r"permission of fr\.health\.samu050"):
        desired_vhost_state(VHostTopology(VHOST), [SAMU050, other])


def test_a_client_named_like_the_dispatcher_conflicts() -> None:
    impostor = ClientAccess("dispatcher", ("fr.health.samu050",))
    with pytest.raises(ConflictingDefinitions, match="permission of dispatcher"):
        desired_vhost_state(VHostTopology(VHOST), [impostor])


def test_default_ttl_is_a_day() -> None:
    (policy,) = desired_vhost_state(VHostTopology(VHOST)).definitions.items(ItemKind.POLICY)
    assert policy.definition["message-ttl"] == DEFAULT_MESSAGE_TTL_MS == 86_400_000  # type: ignore[union-attr]
