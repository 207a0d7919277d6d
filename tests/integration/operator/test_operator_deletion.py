"""Deletion: HubClients with retain and delete; a VHostVersion deleted while the broker is down."""

from __future__ import annotations

import time
import urllib.request

import pytest
from hub_devenv.rabbitmq import LocalBroker

from tests.integration.operator.conftest import HubEnv
from tests.integration.operator.operator_manifests import SmallHub, perimeter

pytestmark = [pytest.mark.cluster, pytest.mark.broker]


@pytest.fixture
def operator_settings() -> dict[str, str]:
    return {"HUB_OPERATOR_DRIFT_INTERVAL": "3s"}


def _queues(hub_env: HubEnv, vhost: str, client_id: str) -> set[str]:
    return {q["name"] for q in hub_env.rabbit("GET", "queues", vhost) or [] if q["name"].startswith(client_id + ".")}


def test_deleting_clients_with_retain_and_delete(hub_env: HubEnv) -> None:
    hub = SmallHub()
    hub_env.apply(*hub.base(), hub.client("keeper"), hub.client("leaver", deletionPolicy="delete"), hub.client("stays"))
    for name in ("keeper", "leaver", "stays"):
        hub_env.wait_condition("hubclient", name)
    keeper, leaver = hub.client_id("keeper"), hub.client_id("leaver")
    owner = (hub_env.get("secret", "keeper-tls") or {})["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("HubClient", "keeper")  # garbage-collected with its client
    hub_env.kubectl("delete", "hubclient", "keeper", "leaver", "--timeout=30s")
    for client_id in (keeper, leaver):
        assert hub_env.rabbit("GET", "users", client_id) is None
        assert hub_env.rabbit("GET", "permissions", hub.vhost, client_id) is None
    assert _queues(hub_env, hub.vhost, keeper) == {f"{keeper}.message", f"{keeper}.ack", f"{keeper}.info"}
    assert not hub_env.rabbit("GET", "bindings", hub.vhost, "e", "distribution", "q", f"{keeper}.message")
    assert _queues(hub_env, hub.vhost, leaver) == set()
    time.sleep(4)  # a drift pass later, nothing came back and the remaining client is untouched
    assert hub_env.rabbit("GET", "users", keeper) is None and _queues(hub_env, hub.vhost, leaver) == set()
    assert hub_env.condition("hubclient", "stays")["status"] == "True"


def test_a_vhost_deleted_while_the_broker_is_down_waits_then_completes(hub_env: HubEnv, broker: LocalBroker) -> None:
    hub = SmallHub()
    hub_env.apply(*hub.base(), hub.client("samua"))
    hub_env.kubectl("patch", "vhostversion", hub.vhost_version, "--type=merge", "-p",
                    '{"spec":{"deletionPolicy":"delete"}}')
    hub_env.wait_condition("hubclient", "samua")
    hub_env.wait_condition("vhostversion", hub.vhost_version)
    broker.stop(kill=True)
    try:
        started = time.monotonic()
        result = hub_env.kubectl("delete", "vhostversion", hub.vhost_version, "--wait=false")
        assert result.returncode == 0 and time.monotonic() - started < 10  # nothing hangs
        ready = hub_env.wait_condition("vhostversion", hub.vhost_version, status="False", reason="BrokerUnreachable",
                                       timeout=30)
        assert "deletion waiting" in ready["message"] and "hubsante.io/skip-broker-cleanup=true" in ready["message"]
        assert hub_env.get("vhostversion", hub.vhost_version) is not None
        # The operator keeps serving everything else meanwhile.
        other = perimeter(f"{hub.perimeter}-other")
        hub_env.apply(other)
        hub_env.wait_condition("perimeter", other["metadata"]["name"], timeout=20)
        with urllib.request.urlopen(hub_env.operator.health_url, timeout=5) as response:
            assert response.status == 200
    finally:
        broker.start()
    hub_env.wait_for(lambda: hub_env.get("vhostversion", hub.vhost_version) is None, timeout=60,
                     what="the deletion to complete once the broker is back")
    assert hub_env.rabbit("GET", "vhosts", hub.vhost) is None
    assert hub_env.rabbit("GET", "users", f"dispatcher.{hub.vhost}") is None
    hub_env.wait_condition("hubclient", "samua", status="False", reason="VHostVersionNotFound", timeout=20)
