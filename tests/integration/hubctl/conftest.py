"""A hub environment for hubctl against the real API server and the real broker.

One namespace holds what the operator would have made of it: a Perimeter, a current and a legacy VHostVersion,
HubClients with statuses patched in as the operator writes them, their certificate Secrets (issued by the
broker's CA) and the broker Secret.  The vhosts are provisioned on the broker through the operator's builders.
Names carry a random suffix: the broker is shared by the whole test session.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from hub_devenv.controlplane import LocalControlPlane
from hub_devenv.paths import models_root
from hub_devenv.rabbitmq import ClientCredentials, LocalBroker
from hub_operator.cli.main import app
from tests.helpers.topology import ProvisionedVHost, deprovision_vhost, provision_vhost_blocking
from hub_devenv.hub_resources import install_crds

KEYSTORE_PASSWORD = b"changeit-in-tests"
T = "2025-03-01T10:00:00Z"


@dataclass
class HubctlEnvironment:
    cluster: LocalControlPlane
    broker: LocalBroker
    namespace: str
    perimeter: str
    current: ProvisionedVHost
    legacy: ProvisionedVHost
    sender: str
    recipient: str
    legacy_sender: str
    intruder: str
    """Listed on the current vhost in Kubernetes, with a certificate, but never provisioned on the broker."""
    dispatcher: ClientCredentials
    workdir: Path

    @property
    def current_version(self) -> str:
        return f"{self.perimeter}-v2.0"

    def cli_options(self) -> list[str]:
        return ["--kubeconfig", str(self.cluster.kubeconfig), "-n", self.namespace]

    def hubctl(self, *arguments: str) -> Result:
        """hubctl in-process, against this environment's API server (options appended to the command)."""
        return CliRunner().invoke(app, [*arguments, *self.cli_options()],
                                  env={"COLUMNS": "250", "NO_COLOR": "1", "HUBSANTE_MODELS_DIR": str(models_root())})

    def hubctl_process(self, *arguments: str) -> subprocess.Popen[str]:
        """hubctl as a separate process (to run ``listen`` while ``send`` runs in the test)."""
        env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "HUBSANTE_MODELS_DIR": str(models_root())}
        return subprocess.Popen([sys.executable, "-m", "hub_operator.cli.main", *arguments, *self.cli_options()],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)


def _apply(cluster: LocalControlPlane, namespace: str, documents: Sequence[dict[str, Any]]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(documents))


def _patch_status(cluster: LocalControlPlane, namespace: str, kind: str, name: str, status: dict[str, Any]) -> None:
    cluster.kubectl("patch", "-n", namespace, kind, name, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": status}))


def _ready(generation: int = 1, status: str = "True", reason: str = "Ready", message: str = "") -> dict[str, Any]:
    return {"type": "Ready", "status": status, "reason": reason, "message": message, "lastTransitionTime": T,
            "observedGeneration": generation}


def _secret(name: str, data: dict[str, bytes]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
            "data": {key: base64.b64encode(value).decode() for key, value in data.items()}}


def _certificate_secret(broker: LocalBroker, name: str, cn: str) -> tuple[dict[str, Any], dt.datetime]:
    credentials = broker.mint_client_cert(cn)
    data = {"tls.crt": credentials.cert_path.read_bytes(), "tls.key": credentials.key_path.read_bytes(),
            "ca.crt": broker.ca_pem_path.read_bytes(), "keystore.p12": credentials.issued.pkcs12(KEYSTORE_PASSWORD),
            "keystore.password": KEYSTORE_PASSWORD}
    return _secret(name, data), credentials.issued.not_after


@pytest.fixture(scope="module")
def hubctl_env(cluster: LocalControlPlane, broker: LocalBroker,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubctlEnvironment]:
    unique = os.urandom(3).hex()
    namespace, perimeter, legacy_perimeter = f"hubctl-{unique}", f"hubctl-{unique}", f"hubctlx-{unique}"
    sender, recipient = f"fr.health.a{unique}", f"fr.health.b{unique}"
    legacy_sender, intruder = f"fr.fire.nexsis.c{unique}", f"fr.health.x{unique}"
    install_crds(cluster)
    cluster.kubectl("create", "namespace", namespace)
    current = provision_vhost_blocking(broker, f"{perimeter}_v2.0", clients=[(sender, [sender]), (recipient, [recipient])],
                                       dispatcher_cn=f"dispatcher.{unique}")
    legacy = provision_vhost_blocking(broker, f"{legacy_perimeter}_v1.8", "legacy",
                                      clients=[(legacy_sender, [legacy_sender]), (sender, [sender])],
                                      dispatcher_cn=f"dispatcher.{unique}")
    broker_data = {"managementUrl": broker.management_url.encode(), "username": broker.admin_user.encode(),
                   "password": broker.admin_password.encode(), "amqpsHost": broker.host.encode(),
                   "amqpsPort": str(broker.amqps_port).encode(), "ca.crt": broker.ca_pem_path.read_bytes()}
    documents: list[dict[str, Any]] = [_secret("hub-broker", broker_data)]
    for name in (perimeter, legacy_perimeter):
        documents.append({"apiVersion": "hubsante.io/v1alpha1", "kind": "Perimeter", "metadata": {"name": name},
                          "spec": {"description": "hubctl integration test", "messageTTL": "1h"}})
    vhost_versions = [(perimeter, "2.0", "3.4.1", "current"), (legacy_perimeter, "1.8", "1.1", "legacy")]
    for name, version, models, profile in vhost_versions:
        documents.append({"apiVersion": "hubsante.io/v1alpha1", "kind": "VHostVersion",
                          "metadata": {"name": f"{name}-v{version}"},
                          "spec": {"perimeterRef": {"name": name}, "version": version, "profile": profile,
                                   "models": {"version": models}}})
    clients = [(sender, [f"{perimeter}-v2.0", f"{legacy_perimeter}-v1.8"]), (recipient, [f"{perimeter}-v2.0"]),
               (legacy_sender, [f"{legacy_perimeter}-v1.8"]), (intruder, [f"{perimeter}-v2.0"])]
    expiry: dict[str, dt.datetime] = {}
    for client_id, vhosts in clients:
        documents.append({"apiVersion": "hubsante.io/v1alpha1", "kind": "HubClient", "metadata": {"name": client_id},
                          "spec": {"clientId": client_id, "vhostVersions": vhosts}})
        secret, expiry[client_id] = _certificate_secret(broker, f"{client_id}-tls", client_id)
        documents.append(secret)
    _apply(cluster, namespace, documents)
    # Statuses as the operator writes them.
    _patch_status(cluster, namespace, "perimeter", perimeter, {"observedGeneration": 1, "conditions": [_ready()],
                                                              "useCases": "all", "vhosts": [current.vhost]})
    _patch_status(cluster, namespace, "vhostversion", f"{perimeter}-v2.0", {
        "observedGeneration": 1, "conditions": [_ready()], "vhost": current.vhost, "clients": 2,
        "dispatcher": {"replicas": 1, "readyReplicas": 1}})
    _patch_status(cluster, namespace, "vhostversion", f"{legacy_perimeter}-v1.8", {
        "observedGeneration": 1, "conditions": [_ready(status="False", reason="DispatcherNotReady",
                                                       message="0/1 dispatcher(s) ready")],
        "vhost": legacy.vhost, "dispatcher": {"replicas": 1, "readyReplicas": 0}})
    for client_id, vhosts in clients:
        provisioned = client_id != intruder
        _patch_status(cluster, namespace, "hubclient", client_id, {
            "observedGeneration": 1,
            "conditions": [_ready() if provisioned else _ready(status="False", reason="Pending", message="queued")],
            "username": client_id, "clientIds": [client_id],
            "certificate": {"secretName": f"{client_id}-tls", "commonName": client_id,
                            "notAfter": expiry[client_id].isoformat(), "serial": "01"},
            "vhosts": [{"vhostVersion": v, "vhost": v.replace("-v", "_v"),
                        "state": "Provisioned" if provisioned else "Pending"} for v in vhosts],
            "readyVhosts": len(vhosts) if provisioned else 0})
    environment = HubctlEnvironment(cluster, broker, namespace, perimeter, current, legacy, sender, recipient,
                                    legacy_sender, intruder, broker.mint_client_cert(current.dispatcher_cn),
                                    tmp_path_factory.mktemp("hubctl"))
    yield environment
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    for vhost in (current, legacy):
        asyncio.run(deprovision_vhost(broker, vhost))
