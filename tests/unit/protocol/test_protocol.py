"""The vhost wire protocol: names, keys and permission regexes for both profiles."""

from __future__ import annotations

import re

import pytest

from hub_dispatcher import protocol
from hub_dispatcher.protocol import CURRENT, LEGACY, QueueKind


@pytest.mark.parametrize(
    "client_id",
    ["fr.health.samu050", "fr.health.samu76A", "fr.fire.nexsis.sdis50", "fr.health.test.editor-x", "fr.health.hub"],
)
def test_valid_client_ids(client_id: str) -> None:
    assert protocol.is_valid_client_id(client_id)


@pytest.mark.parametrize(
    "client_id",
    ["", "health.samu050", "fr.health", "fr..samu", "fr.health.samu 050", "fr.health.samu050.", "de.health.x",
     "fr.health.a.b.c.d.e.f", "fr.health.sam*"],
)
def test_invalid_client_ids(client_id: str) -> None:
    assert not protocol.is_valid_client_id(client_id)


def test_health_actor_needs_the_exact_prefix() -> None:
    assert protocol.is_health_actor("fr.health.samu050")
    assert not protocol.is_health_actor("fr.healthcare.x")
    assert not protocol.is_health_actor("fr.fire.nexsis.sdis50")


def test_vhost_name_has_no_leading_slash() -> None:
    assert protocol.vhost_name("15-15", "1.5") == "15-15_v1.5"


def test_current_profile_queues_and_keys() -> None:
    assert CURRENT.client_queues("fr.health.samu050") == [
        "fr.health.samu050.message",
        "fr.health.samu050.ack",
        "fr.health.samu050.info",
    ]
    assert CURRENT.publish_routing_key("fr.health.samu050") == "fr.health.samu050"
    assert CURRENT.sender_from_routing_key("fr.health.samu050") == "fr.health.samu050"
    assert CURRENT.dispatch_binding_key == "#"
    assert CURRENT.queue_for_distribution_kind("fr.x.y", "Ack") == "fr.x.y.ack"
    assert CURRENT.queue_for_distribution_kind("fr.x.y", "Error") == "fr.x.y.info"
    assert CURRENT.queue_for_distribution_kind("fr.x.y", "Report") == "fr.x.y.message"


def test_legacy_profile_queues_and_keys() -> None:
    assert LEGACY.client_queue("fr.health.samu050", QueueKind.MESSAGE) == "fr.health.samu050.in.message"
    assert LEGACY.publish_routing_key("fr.fire.nexsis.sdis50") == "fr.fire.nexsis.sdis50.out.message"
    assert LEGACY.sender_from_routing_key("fr.fire.nexsis.sdis50.out.ack") == "fr.fire.nexsis.sdis50"
    # A key that does not follow the legacy grammar is returned whole, so sender consistency fails on it.
    assert LEGACY.sender_from_routing_key("fr.fire.nexsis.sdis50.out.bogus") == "fr.fire.nexsis.sdis50.out.bogus"
    assert LEGACY.dispatch_binding_key == "#.out.*"


def test_client_permission_is_anchored_escaped_and_alternates_ids() -> None:
    permission = CURRENT.client_permission(["fr.health.samu76B", "fr.health.samu76A"])
    assert permission.configure == "^$"
    assert permission.write == "^hubsante$"
    assert permission.read == r"^(fr\.health\.samu76A|fr\.health\.samu76B)\.(message|ack|info)$"
    read = re.compile(permission.read)
    assert read.match("fr.health.samu76A.message")
    assert read.match("fr.health.samu76B.info")
    assert not read.match("fr.health.samu76C.message")
    assert not read.match("frXhealthXsamu76A.message"), "dots must be escaped"
    assert not read.match("fr.health.samu76A.message.extra")


def test_topic_permission_restricts_publishing_to_own_ids() -> None:
    topic = CURRENT.client_topic_permission(["fr.health.samu050"])
    assert topic.exchange == "hubsante"
    write = re.compile(topic.write)
    assert write.match("fr.health.samu050")
    assert not write.match("fr.health.samu0501")
    assert not write.match("fr.health.samu076")
    legacy = re.compile(LEGACY.client_topic_permission(["fr.health.samu050"]).write)
    assert legacy.match("fr.health.samu050.out.message")
    assert not legacy.match("fr.health.samu076.out.message")
    assert not legacy.match("fr.health.samu050.in.message")


def test_client_permission_needs_an_id() -> None:
    with pytest.raises(ValueError, match="at least one client id"):
        CURRENT.client_permission([])


def test_policy_pattern_matches_client_queues_only() -> None:
    for profile in (CURRENT, LEGACY):
        pattern = re.compile(profile.client_queue_policy_pattern)
        for queue in profile.client_queues("fr.health.samu050"):
            assert pattern.match(queue), queue
        assert not pattern.match(protocol.DISPATCH_QUEUE)
        assert not pattern.match(protocol.DEAD_LETTER_QUEUE)


def test_dispatcher_permission_is_least_privilege() -> None:
    permission = CURRENT.dispatcher_permission
    read = re.compile(permission.read)
    assert read.match("dispatch") and read.match("dispatch.dlq")
    assert not read.match("fr.health.samu050.message")
    assert permission.write == "^distribution$"
    assert permission.configure == "^$"
