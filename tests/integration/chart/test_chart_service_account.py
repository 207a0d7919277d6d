"""The operator under the chart's ServiceAccount (its token, RBAC authorization on) makes a hub Ready - the chart's
RBAC is sufficient - and a verb taken away from the installed Role is reported, not fatal.

The chart is installed in the test namespace (the operator namespace: CA Secret, Lease) watching a second
namespace (the hub environment: Roles there only, the chart's broker Secret); see chart_release.py for how the
operator runs with the installed Deployment's environment.
"""

from __future__ import annotations

import base64
import os
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hub_devenv.controlplane import LocalControlPlane
from hub_devenv.rabbitmq import LocalBroker
from hub_operator.builders.workloads import dispatcher_workload_name, preferences_config_map_name

from tests.helpers.hub_env import HubEnv
from tests.integration.chart.chart_release import (
    ChartRelease,
    base_values,
    operator_as_chart_service_account,
    role_rules,
    set_role_rules,
    stop_operator,
    without_verb,
)
from tests.integration.operator.operator_manifests import SmallHub

pytestmark = [pytest.mark.cluster, pytest.mark.broker]


@dataclass
class ChartHub:
    release: ChartRelease
    env: HubEnv
    watched: str


@pytest.fixture
def chart_hub(cluster: LocalControlPlane, broker: LocalBroker, namespace: str, tmp_path: Path) -> Iterator[ChartHub]:
    watched = f"{namespace[:50]}-hub"
    cluster.kubectl("create", "namespace", watched)
    release = ChartRelease(cluster, f"hub-{os.urandom(3).hex()}", namespace, tmp_path / "values.yaml")
    env: HubEnv | None = None
    try:
        release.install(base_values(watched, broker))
        release.wait_for_crds()
        env = operator_as_chart_service_account(release, broker, watched, tmp_path)
        yield ChartHub(release, env, watched)
    finally:
        if env is not None:
            stop_operator(env)
        release.uninstall()
        cluster.kubectl("delete", "namespace", watched, "--wait=false", check=False)


def _ready_hub(env: HubEnv, hub: SmallHub) -> None:
    env.wait_condition("perimeter", hub.perimeter)
    env.wait_condition("vhostversion", hub.vhost_version, reason="ScaledToZero")


def test_the_chart_rbac_is_enough_for_a_hub_to_become_ready(chart_hub: ChartHub) -> None:
    env, release = chart_hub.env, chart_hub.release
    hub = SmallHub()
    env.apply(*hub.base(), hub.client("samua"))
    _ready_hub(env, hub)
    env.wait_condition("hubclient", "samua")

    # The client certificate comes from the chart's CA (operator namespace), its Secret is in the hub namespace.
    client = env.get("hubclient", "samua") or {}
    issued = env.secret_data(client["status"]["certificate"]["secretName"])
    chart_ca = release.get("secret", "hub-operator-ca")
    assert chart_ca is not None
    assert issued["ca.crt"] == base64.b64decode(chart_ca["data"]["tls.crt"])
    # The broker Secret the chart created was used, and the dispatcher workload was applied in the hub namespace.
    assert env.rabbit("GET", "permissions", hub.vhost, client["status"]["username"]) is not None
    name = dispatcher_workload_name(hub.vhost_version)
    assert (env.get("deployment", name) or {}).get("spec", {}).get("replicas") == 0
    assert env.get("service", name) is not None
    assert env.get("configmap", preferences_config_map_name(hub.vhost_version)) is not None
    # The Lease is in the operator namespace, held under the identity it was started with.
    lease = release.get("lease", "hub-operator")
    assert lease is not None and lease["spec"]["holderIdentity"] == env.operator.identity
    log = env.operator.log_text()
    # 403 as a status, not as the milliseconds of a log timestamp (",403"), which once failed this test.
    refused = "Forbidden" in log or re.search(r"(?<![\d,.:])403(?!\d)", log) is not None
    assert not refused, "the chart's RBAC lacks a permission the operator used"


def test_a_verb_removed_from_the_chart_role_is_reported_and_the_operator_recovers(chart_hub: ChartHub) -> None:
    env, release, watched = chart_hub.env, chart_hub.release, chart_hub.watched
    hub = SmallHub()
    env.apply(*hub.base())
    _ready_hub(env, hub)

    granted = role_rules(release, watched)
    set_role_rules(release, watched, without_verb(granted, "", "secrets", "create"))
    env.apply(hub.client("samub"))

    def forbidden_event() -> dict | None:
        return next((e for e in env.events("samub") if 'cannot create resource "secrets"' in e.get("message", "")),
                    None)

    event = env.wait_for(forbidden_event, timeout=60, what="an Event naming the forbidden verb and resource")
    assert event["type"] in ("Warning", "Error")
    assert f'User "system:serviceaccount:{release.namespace}:{release.fullname}"' in event["message"]
    assert 'cannot create resource "secrets" in API group "" in the namespace' in env.operator.log_text()
    # Not a crash: the process is alive and answers, and the rest of the hub stays Ready.
    assert env.operator.process is not None and env.operator.process.poll() is None
    with urllib.request.urlopen(env.operator.health_url, timeout=5) as response:
        assert response.status == 200
    assert env.condition("vhostversion", hub.vhost_version)["status"] == "True"
    assert env.condition("hubclient", "samub").get("status") != "True"

    # Given the verb back, the operator finishes the job on its own (certificate check timer, 5 s here).
    set_role_rules(release, watched, granted)
    env.wait_condition("hubclient", "samub", timeout=90)
