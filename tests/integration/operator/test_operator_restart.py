"""An operator killed in the middle of onboarding 50 clients converges after a restart: no duplicates, no errors."""

from __future__ import annotations

import re
import time

import pytest
from hub_dispatcher import protocol

from tests.integration.operator.conftest import HubEnv
from tests.integration.operator.operator_manifests import SmallHub

pytestmark = [pytest.mark.cluster, pytest.mark.broker, pytest.mark.slow]

CLIENTS = 50


def _ready(hub_env: HubEnv) -> int:
    return sum(1 for c in hub_env.items("hubclients")
               if any(x["type"] == "Ready" and x["status"] == "True" for x in (c.get("status") or {}).get("conditions", [])))


def test_restart_mid_way_through_fifty_clients(hub_env: HubEnv) -> None:
    hub = SmallHub()
    hub_env.apply(*hub.base())
    hub_env.wait_condition("vhostversion", hub.vhost_version)
    clients = [hub.client(f"c{i:02d}") for i in range(CLIENTS)]
    hub_env.apply(*clients)
    # Kill (SIGKILL: no clean-up at all) as soon as the onboarding is visibly under way.
    hub_env.wait_for(lambda: len(hub_env.items("secrets", "-l", "hubsante.io/certificate-of")) >= 5,
                     timeout=60, interval=0.05, what="the first certificates")
    hub_env.operator.stop(kill=True)
    ready_at_kill = _ready(hub_env)
    assert ready_at_kill < CLIENTS, "the onboarding finished before the kill: nothing was interrupted"
    hub_env.operator.start()
    started = time.monotonic()
    hub_env.wait_for(lambda: _ready(hub_env) == CLIENTS, timeout=120, what="all 50 clients Ready")
    print(f"\n[measure] {ready_at_kill}/{CLIENTS} Ready when killed; all Ready {time.monotonic() - started:.1f} s "
          "after the restart")

    # Exactly one certificate Secret per client, each the one its status names.
    secrets = hub_env.items("secrets", "-l", "hubsante.io/certificate-of")
    by_owner: dict[str, list[str]] = {}
    for secret in secrets:
        by_owner.setdefault(secret["metadata"]["labels"]["hubsante.io/certificate-of"], []).append(
            secret["metadata"]["name"])
    assert all(len(names) == 1 for names in by_owner.values()), by_owner
    assert len([o for o in by_owner if o.startswith("hubclient.")]) == CLIENTS
    # The broker holds each client exactly once, with exactly its own access.
    wire = protocol.CURRENT
    ids = [hub.client_id(f"c{i:02d}") for i in range(CLIENTS)]
    queues = {q["name"] for q in hub_env.rabbit("GET", "queues", hub.vhost)}
    assert queues == {"dispatch", "dispatch.dlq"} | {q for i in ids for q in wire.client_queues(i)}
    permissions = {p["user"]: p for p in hub_env.rabbit("GET", "vhosts", hub.vhost, "permissions")}
    assert set(permissions) == {*ids, f"dispatcher.{hub.vhost}", hub_env.broker.admin_user}
    for client_id in ids:
        assert permissions[client_id]["read"] == wire.client_permission([client_id]).read
    bindings = [b for b in hub_env.rabbit("GET", "bindings", hub.vhost) if b["source"] == "distribution"]
    assert len(bindings) == len({(b["destination"], b["routing_key"]) for b in bindings}) == 3 * CLIENTS
    # No errors: nothing failed for good, no traceback, and every status is clean.
    log = hub_env.operator.log_text()
    assert "Traceback" not in log and not re.search(r"failed permanently|Handler .* failed with an exception", log), log[-3000:]
    assert all(c["status"]["observedGeneration"] == c["metadata"]["generation"] for c in hub_env.items("hubclients"))
