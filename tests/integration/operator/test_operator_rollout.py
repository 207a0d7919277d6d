"""Perimeter changes (TTL, allow-list, replicas) reach every VHostVersion of the perimeter."""

from __future__ import annotations

import json

import pytest
from hub_dispatcher import protocol

from hub_devenv.kubelet import KubeletEmulator
from tests.integration.operator.conftest import HubEnv
from tests.integration.operator.operator_manifests import SmallHub, vhost_version

pytestmark = [pytest.mark.cluster, pytest.mark.broker]


def _env(deployment: dict[str, object]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    return {e["name"]: e["value"] for e in container["env"]}


def _with_replicas(deployment: dict[str, object] | None, replicas: int) -> dict[str, object] | None:
    return deployment if deployment and deployment["spec"]["replicas"] == replicas else None  # type: ignore[index]


def test_a_perimeter_change_rolls_out_to_its_vhosts(hub_env: HubEnv) -> None:
    hub = SmallHub()
    second = vhost_version(hub.perimeter, "2.0")
    with KubeletEmulator(hub_env.cluster.api_client(), hub_env.namespace):
        hub_env.apply(*hub.base(dispatcher={"replicas": 1}), second, hub.client("samua"))
        for name in (hub.vhost_version, second["metadata"]["name"]):
            hub_env.wait_condition("vhostversion", name, reason="Ready", timeout=60)
        hub_env.kubectl("patch", "perimeter", hub.perimeter, "--type=merge", "-p", json.dumps(
            {"spec": {"messageTTL": "2h", "allowedUseCases": ["createCase", "reference"], "dispatcher": {"replicas": 2}}}))
        for vhost, name in ((hub.vhost, hub.vhost_version), (f"{hub.perimeter}_v2.0", second["metadata"]["name"])):
            hub_env.wait_for(lambda v=vhost: (hub_env.rabbit("GET", "policies", v, protocol.CLIENT_QUEUE_POLICY) or {})
                             .get("definition", {}).get("message-ttl") == 7_200_000, timeout=20, what=f"TTL on {vhost}")
            workload = f"dispatcher-{name.replace('.', '-')}"
            deployment = hub_env.wait_for(lambda w=workload: _with_replicas(hub_env.get("deployment", w), 2),
                                          timeout=20, what=f"2 replicas of {workload}")
            env = _env(deployment)
            assert env["HUB_DISPATCHER_ALLOWED_USE_CASES"] == "createCase,reference"
            assert env["HUB_DISPATCHER_DEFAULT_TTL_MS"] == "7200000"
            hub_env.wait_for(lambda n=name: (hub_env.get("vhostversion", n) or {}).get("status", {})
                             .get("dispatcher", {}).get("readyReplicas") == 2, timeout=30, what=f"2 ready in {name}")
            assert (hub_env.get("vhostversion", name) or {})["status"]["messageTTL"] == "2h"
