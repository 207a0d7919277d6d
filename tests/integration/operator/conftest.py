"""The operator as a process against the real API server and the real broker, one per test namespace.

``hub_env`` installs the CRDs, creates in the test namespace the broker Secret (from the ``broker`` fixture) and
the operator CA Secret (the broker's own CA, which the broker trusts), grants an identity of its own exactly the
RBAC of ``hub_operator.rbac`` and starts ``hub-operator`` under it, watching only that namespace.  Its log is
printed when a test fails.  At the end the operator stops and what it created on the shared broker is removed.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml
from hub_devenv.controlplane import LocalControlPlane
from hub_devenv.processes import free_ports
from hub_devenv.rabbitmq import ClientCredentials, LocalBroker
from hub_operator import rbac
from hub_operator.certificates import MANAGED_BY

from tests.integration.api.hub_crds import install_crds

REPO = Path(__file__).resolve().parents[3]
_CRDS_INSTALLED = False


class OperatorProcess:
    """``python -m hub_operator.main`` with its own kubeconfig, settings and log file."""

    def __init__(self, kubeconfig: Path, namespace: str, log_path: Path, env: Mapping[str, str]) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log_path = log_path
        self.metrics_port, self.health_port = free_ports(2)
        self.env = dict(env)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/healthz"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> None:
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HUB_OPERATOR_")},
            "HUB_OPERATOR_KUBECONFIG": str(self.kubeconfig),
            "HUB_OPERATOR_NAMESPACES": self.namespace,
            "HUB_OPERATOR_NAMESPACE": self.namespace,
            "HUB_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "HUB_OPERATOR_HEALTH_PORT": str(self.health_port),
            "HUB_OPERATOR_IDENTITY": f"operator-{self.namespace}",
            **self.env,
        }
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts + 1} =====\n".encode())
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hub_operator.main"], env=environment, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO,
            )
        self.starts += 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"hub-operator exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.health_url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"hub-operator did not become live in 60 s:\n{self.log_tail()}")

    def stop(self, *, kill: bool = False, timeout: float = 40) -> int | None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            raise AssertionError(f"hub-operator did not stop within {timeout} s of SIGTERM:\n{self.log_tail()}") from None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 150) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


@dataclass
class HubEnv:
    cluster: LocalControlPlane
    broker: LocalBroker
    namespace: str
    operator: OperatorProcess
    workdir: Path
    created_usernames: set[str] = field(default_factory=set)

    # -- Kubernetes -------------------------------------------------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.namespace, *args, input=input, check=check)

    def apply(self, *manifests: Mapping[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([dict(m) for m in manifests]))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        result = self.kubectl("get", kind, name, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def items(self, kind: str, *selector: str) -> list[dict[str, Any]]:
        return json.loads(self.kubectl("get", kind, *selector, "-o", "json").stdout)["items"]

    def condition(self, kind: str, name: str, condition_type: str = "Ready") -> dict[str, Any]:
        body = self.get(kind, name) or {}
        return next((c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == condition_type), {})

    def wait_for(self, predicate: Callable[[], Any], *, timeout: float = 60, what: str = "condition",
                 interval: float = 0.25) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            if self.operator.process is not None and self.operator.process.poll() is not None:
                raise AssertionError(f"hub-operator exited with {self.operator.process.returncode}")
            time.sleep(interval)

    def wait_condition(self, kind: str, name: str, condition_type: str = "Ready", status: str = "True",
                       reason: str | None = None, timeout: float = 60) -> dict[str, Any]:
        def met() -> dict[str, Any] | None:
            condition = self.condition(kind, name, condition_type)
            ok = condition.get("status") == status and (reason is None or condition.get("reason") == reason)
            return condition if ok else None

        try:
            return self.wait_for(met, timeout=timeout, what=f"{kind} {name} {condition_type}={status}")
        except AssertionError:
            raise AssertionError(f"{kind} {name}: {condition_type} is {self.condition(kind, name, condition_type)} "
                                 f"after {timeout} s, wanted {status} {reason or ''}") from None

    def events(self, name: str, reason: str | None = None) -> list[dict[str, Any]]:
        found = self.items("events", f"--field-selector=involvedObject.name={name}")
        return [e for e in found if reason is None or e.get("reason") == reason]

    def secret_data(self, name: str) -> dict[str, bytes]:
        secret = self.get("secret", name) or {}
        return {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}

    def credentials(self, hubclient: str) -> ClientCredentials:
        """The certificate the operator issued for a HubClient, as files a client would use."""
        body = self.get("hubclient", hubclient) or {}
        secret_name = body["status"]["certificate"]["secretName"]
        data = self.secret_data(secret_name)
        folder = self.workdir / "clients" / f"{hubclient}-{time.monotonic_ns()}"
        folder.mkdir(parents=True)
        (folder / "tls.crt").write_bytes(data["tls.crt"])
        (folder / "tls.key").write_bytes(data["tls.key"])
        (folder / "tls.key").chmod(0o600)
        from hub_operator import pki

        return ClientCredentials(pki.common_name(pki.load_cert(data["tls.crt"])), folder / "tls.crt",
                                 folder / "tls.key", self.broker.ca_pem_path,
                                 pki.IssuedCertificate(data["tls.crt"], data["tls.key"], data["ca.crt"]))

    # -- RabbitMQ management ------------------------------------------------------------------------------------
    def rabbit(self, method: str, *segments: str, body: Any = None, params: Mapping[str, str] | None = None) -> Any:
        path = "/api/" + "/".join(quote(s, safe="") for s in segments)
        response = httpx.request(method, self.broker.management_url + path, json=body, params=params,
                                 auth=(self.broker.admin_user, self.broker.admin_password), timeout=15)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json() if response.content else None

    def definitions(self) -> dict[str, Any]:
        return self.rabbit("GET", "definitions")


def _rbac(cluster: LocalControlPlane, namespace: str, user: str) -> None:
    role = rbac.cluster_role(f"hub-operator-{namespace}")
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "hub-operator", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([role, binding]))


def broker_secret(broker: LocalBroker, namespace: str, name: str = "hub-broker") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
        "stringData": {
            "managementUrl": broker.management_url, "username": broker.admin_user, "password": broker.admin_password,
            "amqpsHost": broker.host, "amqpsPort": str(broker.amqps_port), "ca.crt": broker.ca_pem_path.read_text(),
        },
    }


def _cleanup_broker(env: HubEnv) -> None:
    """Remove what this namespace left on the shared broker (vhosts it claimed, its users)."""
    try:
        vhosts = env.rabbit("GET", "vhosts") or []
    except httpx.HTTPError:
        return  # broker down (a fault test failed half-way): nothing to clean
    for vhost in vhosts:
        if f"namespace {env.namespace}" in (vhost.get("description") or ""):
            env.rabbit("DELETE", "vhosts", vhost["name"])
            env.rabbit("DELETE", "users", f"dispatcher.{vhost['name']}")
    for username in env.created_usernames:
        env.rabbit("DELETE", "users", username)


def _release_objects(cluster: LocalControlPlane, namespace: str) -> None:
    """With the operator gone, drop its finalizers so that the namespace can be deleted."""
    from kubernetes import client as k8s

    api = k8s.CustomObjectsApi(cluster.api_client())
    for plural in ("hubclients", "vhostversions", "perimeters"):
        for item in api.list_namespaced_custom_object("hubsante.io", "v1alpha1", namespace, plural)["items"]:
            if item["metadata"].get("finalizers"):
                api.patch_namespaced_custom_object(
                    "hubsante.io", "v1alpha1", namespace, plural, item["metadata"]["name"],
                    {"metadata": {"finalizers": None}}, _content_type="application/merge-patch+json",
                )


@pytest.fixture
def operator_settings() -> dict[str, str]:
    """Extra HUB_OPERATOR_* variables for this test's operator (override in a test module)."""
    return {}


@pytest.fixture
def hub_env(
    cluster: LocalControlPlane, broker: LocalBroker, namespace: str, tmp_path: Path, operator_settings: dict[str, str]
) -> Iterator[HubEnv]:
    global _CRDS_INSTALLED
    if not _CRDS_INSTALLED:
        install_crds(cluster)
        _CRDS_INSTALLED = True
    user = f"hub-operator-{namespace}"
    _rbac(cluster, namespace, user)
    kubeconfig = cluster.write_kubeconfig(tmp_path / "operator.kubeconfig", user)
    ca = broker.ca
    secrets = [
        broker_secret(broker, namespace),
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
         "metadata": {"name": "hub-operator-ca", "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
         "stringData": {"tls.crt": ca.cert_pem.decode(), "tls.key": ca.key_pem.decode()}},
    ]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(secrets))
    settings = {
        "HUB_OPERATOR_CA_AUTOGENERATE": "false",
        "HUB_OPERATOR_CERTIFICATE_CHECK_INTERVAL": "5s",
        "HUB_OPERATOR_DELETION_RETRY_MAX_DELAY": "4s",
        **operator_settings,
    }
    operator = OperatorProcess(kubeconfig, namespace, tmp_path / "hub-operator.log", settings)
    env = HubEnv(cluster, broker, namespace, operator, tmp_path)
    operator.start()
    try:
        yield env
    finally:
        for client in json.loads(cluster.kubectl("-n", namespace, "get", "hubclients", "-o", "json",
                                                 check=False).stdout or '{"items": []}')["items"]:
            username = (client.get("status") or {}).get("username")
            if username:
                env.created_usernames.add(username)
        operator.stop()
        print(f"\n----- hub-operator log ({operator.log_path}) -----\n{operator.log_tail(200)}")
        _release_objects(cluster, namespace)
        _cleanup_broker(env)


def unique_suffix() -> str:
    return os.urandom(3).hex()
