"""Drift repair: broker objects deleted or altered behind the operator's back come back within 30 s."""

from __future__ import annotations

import time

import pytest

from tests.integration.operator.conftest import HubEnv
from tests.integration.operator.operator_manifests import SmallHub

pytestmark = [pytest.mark.cluster, pytest.mark.broker]

#: The issue's deadline.
DEADLINE = 30.0


def test_a_deleted_queue_and_permission_are_restored_and_reported(hub_env: HubEnv) -> None:
    hub = SmallHub()
    hub_env.apply(*hub.base(), hub.client("samua"))
    hub_env.wait_condition("hubclient", "samua")
    username = client_id = hub.client_id("samua")
    queue = f"{client_id}.message"
    assert hub_env.rabbit("GET", "permissions", hub.vhost, username) is not None

    hub_env.rabbit("DELETE", "queues", hub.vhost, queue)
    hub_env.rabbit("DELETE", "permissions", hub.vhost, username)
    hub_env.rabbit("PUT", "policies", hub.vhost, "hubsante-client-queues",  # altered, not deleted
                   body={"pattern": ".*", "definition": {"message-ttl": 1}, "apply-to": "queues"})
    started = time.monotonic()
    hub_env.wait_for(lambda: hub_env.rabbit("GET", "queues", hub.vhost, queue)
                     and hub_env.rabbit("GET", "permissions", hub.vhost, username),
                     timeout=DEADLINE, what="queue and permission restored")
    restored_after = time.monotonic() - started
    bindings = hub_env.rabbit("GET", "bindings", hub.vhost, "e", "distribution", "q", queue)
    assert [b["routing_key"] for b in bindings] == [queue]
    hub_env.wait_for(lambda: (hub_env.rabbit("GET", "policies", hub.vhost, "hubsante-client-queues") or {})
                     .get("pattern", "").startswith("^fr"), timeout=DEADLINE, what="policy corrected")

    events = hub_env.wait_for(lambda: hub_env.events("samua", "DriftRepaired"), timeout=10, what="an Event")
    assert queue in events[0]["message"] and "permission" in " ".join(e["message"] for e in events)
    assert events[0]["type"] == "Warning"
    condition = hub_env.wait_condition("hubclient", "samua", "AccessProvisioned", reason="DriftRepaired", timeout=10)
    assert queue in condition["message"]
    vhost_condition = hub_env.wait_condition("vhostversion", hub.vhost_version, "BrokerProvisioned",
                                             reason="DriftRepaired", timeout=10)
    assert "policy" in vhost_condition["message"]
    print(f"\n[measure] queue and permission restored {restored_after:.1f} s after their deletion")
