"""A release of charts/hub-operator on the local API server, and the operator run as the chart's ServiceAccount.

There is no kubelet, so the chart's Deployment never gets a running pod: :func:`operator_as_chart_service_account`
runs ``hub-operator`` as a local process instead, with exactly what the pod would have - the environment of the
installed Deployment's container and a token of the chart's ServiceAccount (``kubectl create token``), against
the API server with RBAC authorization on.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hub_devenv.controlplane import LocalControlPlane
from hub_devenv.operator_process import OperatorProcess
from hub_devenv.rabbitmq import LocalBroker
from hub_operator.api.crdgen import KINDS

from tests.helpers.hub_env import HubEnv, cleanup_broker, release_objects
from tests.unit.chart.chart_support import CHART

#: Settings the pod would get from the chart but a local process must not take: its ports are free ones.
LOCAL_PROCESS_OWN = ("HUB_OPERATOR_METRICS_PORT", "HUB_OPERATOR_HEALTH_PORT")


@dataclass
class ChartRelease:
    cluster: LocalControlPlane
    name: str
    namespace: str
    values_path: Path

    def install(self, values: Mapping[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
        self.values_path.write_text(yaml.safe_dump(dict(values)))
        return self.cluster.helm("install", self.name, str(CHART), "--namespace", self.namespace,
                                 "--values", str(self.values_path), *extra)

    def upgrade(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cluster.helm("upgrade", self.name, str(CHART), "--namespace", self.namespace,
                                 "--values", str(self.values_path), *extra)

    def uninstall(self) -> None:
        self.cluster.helm("uninstall", self.name, "--namespace", self.namespace, check=False)

    @property
    def fullname(self) -> str:
        return f"{self.name}-hub-operator" if "hub-operator" not in self.name else self.name

    def get(self, kind: str, name: str, namespace: str | None = None, *, cluster_scoped: bool = False
            ) -> dict[str, Any] | None:
        scope = [] if cluster_scoped else ["-n", namespace or self.namespace]
        result = self.cluster.kubectl(*scope, "get", kind, name, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def wait_for_crds(self) -> None:
        for info in KINDS:
            self.cluster.kubectl("wait", "--for=condition=Established", f"crd/{info.crd_name}", "--timeout=60s")

    def service_account_token(self) -> str:
        return self.cluster.kubectl("-n", self.namespace, "create", "token", self.fullname,
                                    "--duration=1h").stdout.strip()

    def operator_environment(self) -> dict[str, str]:
        """The literal environment of the installed operator container (the downward-API variables left out)."""
        deployment = self.get("deployment", self.fullname)
        assert deployment is not None, f"Deployment {self.fullname} is not installed"
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def base_values(watched: str, broker: LocalBroker) -> dict[str, Any]:
    """Values for one watched namespace with the chart's broker Secret pointing at the test broker."""
    return {
        "watchNamespaces": [watched],
        "broker": {
            "create": True, "managementUrl": broker.management_url, "username": broker.admin_user,
            "password": broker.admin_password, "amqpsHost": broker.host, "amqpsPort": broker.amqps_port,
            "caCrt": broker.ca_pem_path.read_text(),
        },
        # Quick retries and renewal checks, so that a recovered permission shows within seconds.
        "operator": {"certificateCheckInterval": "5s", "deletionRetryMaxDelay": "4s", "logFormat": "text"},
    }


def operator_as_chart_service_account(release: ChartRelease, broker: LocalBroker, watched: str,
                                      workdir: Path) -> HubEnv:
    """Start ``hub-operator`` with the installed Deployment's settings and the ServiceAccount's token."""
    kubeconfig = release.cluster.write_kubeconfig(
        workdir / "chart-service-account.kubeconfig", f"system:serviceaccount:{release.namespace}:{release.fullname}",
        token=release.service_account_token(),
    )
    environment = {name: value for name, value in release.operator_environment().items()
                   if name not in LOCAL_PROCESS_OWN}
    assert environment["HUB_OPERATOR_NAMESPACES"] == watched
    assert environment["HUB_OPERATOR_NAMESPACE"] == release.namespace
    operator = OperatorProcess(kubeconfig, watched, workdir / "hub-operator.log", environment,
                               operator_namespace=release.namespace, identity=f"chart-{release.name}")
    env = HubEnv(release.cluster, broker, watched, operator, workdir)
    operator.start()
    return env


def stop_operator(env: HubEnv) -> None:
    """Stop it, print its log, drop its finalizers and remove what it left on the shared broker."""
    for client in json.loads(env.kubectl("get", "hubclients", "-o", "json", check=False).stdout
                             or '{"items": []}')["items"]:
        username = (client.get("status") or {}).get("username")
        if username:
            env.created_usernames.add(username)
    env.operator.stop()
    print(f"\n----- hub-operator log ({env.operator.log_path}) -----\n{env.operator.log_tail(200)}")
    release_objects(env.cluster, env.namespace)
    cleanup_broker(env)


def role_rules(release: ChartRelease, namespace: str) -> list[dict[str, Any]]:
    role = release.get("role", release.fullname, namespace)
    assert role is not None, f"Role {release.fullname} missing in {namespace}"
    return role["rules"]


def set_role_rules(release: ChartRelease, namespace: str, rules: list[dict[str, Any]]) -> None:
    release.cluster.kubectl("-n", namespace, "patch", "role", release.fullname, "--type=merge",
                            "-p", json.dumps({"rules": rules}))


def without_verb(rules: list[dict[str, Any]], api_group: str, resource: str, verb: str) -> list[dict[str, Any]]:
    """The rules with ``verb`` taken away from ``resource`` (other resources of the same rule keep it)."""
    changed: list[dict[str, Any]] = []
    for rule in rules:
        if api_group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]:
            others = [r for r in rule["resources"] if r != resource]
            if others:
                changed.append({**rule, "resources": others})
            changed.append({**rule, "resources": [resource], "verbs": [v for v in rule["verbs"] if v != verb]})
        else:
            changed.append(rule)
    assert changed != rules, f"no rule grants {verb} on {resource}"
    return changed
