"""The operator as a process against the real API server and the real broker, watching one namespace.

``running_hub_env`` installs the CRDs, creates in the namespace the broker Secret (from the ``broker`` fixture) and
the operator CA Secret (the broker's own CA, which the broker trusts), grants an identity of its own exactly the
RBAC of ``hub_operator.rbac`` and starts ``hub-operator`` under it, watching only that namespace.  On exit the
operator stops (its log is printed), its finalizers are dropped and what it created on the shared broker is
removed.  The operator integration tests use it per test (``hub_env``), the system tests once per session.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import httpx
import yaml
from hub_devenv.controlplane import LocalControlPlane
from hub_devenv.hub_resources import broker_secret, grant_operator_access, install_crds, operator_ca_secret
from hub_devenv.operator_process import OperatorProcess
from hub_devenv.rabbitmq import ClientCredentials, LocalBroker
from hub_operator import pki

#: Settings every test operator runs with (a test adds or overrides its own).
TEST_OPERATOR_SETTINGS = {
    "HUB_OPERATOR_CA_AUTOGENERATE": "false",
    "HUB_OPERATOR_CERTIFICATE_CHECK_INTERVAL": "5s",
    "HUB_OPERATOR_DELETION_RETRY_MAX_DELAY": "4s",
}
_CRDS_INSTALLED_ON: set[str] = set()


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
        return self.credentials_from_secret(body["status"]["certificate"]["secretName"])

    def credentials_from_secret(self, secret_name: str) -> ClientCredentials:
        """A certificate Secret (``tls.crt``, ``tls.key``, ``ca.crt``) as files, e.g. a dispatcher's."""
        data = self.secret_data(secret_name)
        folder = self.workdir / "clients" / f"{secret_name}-{time.monotonic_ns()}"
        folder.mkdir(parents=True)
        (folder / "tls.crt").write_bytes(data["tls.crt"])
        (folder / "tls.key").write_bytes(data["tls.key"])
        (folder / "tls.key").chmod(0o600)
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


def cleanup_broker(env: HubEnv) -> None:
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


def release_objects(cluster: LocalControlPlane, namespace: str) -> None:
    """With the operator gone, drop its finalizers so that the namespace can be deleted."""
    from kubernetes import client as k8s

    api = k8s.CustomObjectsApi(cluster.api_client())
    for plural in ("hubclients", "vhostversions", "perimeters"):
        listing = api.list_namespaced_custom_object("hubsante.io", "v1alpha1", namespace, plural)
        for item in cast(dict[str, Any], listing)["items"]:
            if item["metadata"].get("finalizers"):
                api.patch_namespaced_custom_object(
                    "hubsante.io", "v1alpha1", namespace, plural, item["metadata"]["name"],
                    {"metadata": {"finalizers": None}}, _content_type="application/merge-patch+json",
                )


@contextlib.contextmanager
def running_hub_env(
    cluster: LocalControlPlane, broker: LocalBroker, namespace: str, workdir: Path, settings: Mapping[str, str]
) -> Iterator[HubEnv]:
    """The operator watching ``namespace`` (which must exist), with ``settings`` over the test defaults."""
    if cluster.server not in _CRDS_INSTALLED_ON:
        install_crds(cluster)
        _CRDS_INSTALLED_ON.add(cluster.server)
    user = f"hub-operator-{namespace}"
    grant_operator_access(cluster, user, [namespace], role_name=user)
    kubeconfig = cluster.write_kubeconfig(workdir / "operator.kubeconfig", user)
    secrets = [broker_secret(broker, namespace), operator_ca_secret(broker, namespace)]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(secrets))
    operator = OperatorProcess(kubeconfig, namespace, workdir / "hub-operator.log",
                               {**TEST_OPERATOR_SETTINGS, **settings})
    env = HubEnv(cluster, broker, namespace, operator, workdir)
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
        release_objects(cluster, namespace)
        cleanup_broker(env)


def unique_suffix() -> str:
    return os.urandom(3).hex()
