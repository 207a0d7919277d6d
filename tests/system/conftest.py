"""One realistic hub for the whole system-test session, built the way production builds it.

* the operator runs as a process under its RBAC-limited identity (:func:`tests.helpers.hub_env.running_hub_env`)
  and watches one namespace holding three Perimeters, three VHostVersions and two HubClients;
* the dispatcher pods the operator's Deployments create run as real ``hub-dispatcher`` processes on the local
  node (:class:`hub_devenv.localnode.LocalNode`): their certificate comes from the dispatcher Secret the operator
  issued, their settings from the Deployment, their client preferences from the operator's ConfigMap;
* the clients use the certificates the operator issued into their Secrets.

The cast:

=====================  =====================================================================================
``15-15_v1.5``         SAMU to SAMU, models 1.1, protocol ``current``, one dispatcher
``15-nexsis_v1.8``     SAMU to fire brigades, models 1.1, protocol ``legacy`` (routing keys ``<id>.out.<kind>``,
                       queues ``<id>.in.<kind>``), one dispatcher
``15-smur_v1.4``       SAMU to mobile units, no dispatcher: only B is granted (A's ungranted vhost)
A                      ``fr.health.samu050`` (SAMU 50), on 15-15_v1.5 and 15-nexsis_v1.8
B                      ``fr.health.samu076`` (SAMU 76), on all three
=====================  =====================================================================================
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pytest
from hub_devenv.controlplane import LocalControlPlane
from hub_devenv.localnode import LocalNode
from hub_devenv.paths import models_root
from hub_devenv.rabbitmq import ClientCredentials, LocalBroker
from hub_dispatcher.protocol import QueueKind, VHostProtocol, for_profile, vhost_name
from hub_operator.builders.workloads import dispatcher_workload_name

from tests.helpers.hub_env import HubEnv, running_hub_env
from tests.helpers.hubsante_models import bundle_dir
from tests.integration.dispatcher.hubclient import HubTestClient
from tests.integration.dispatcher.messages import case_message
from tests.integration.operator.operator_manifests import hub_client, perimeter, vhost_version

A_CLIENT_ID = "fr.health.samu050"
B_CLIENT_ID = "fr.health.samu076"
#: A SAMU B trusts, whose identity A claims in spoofed messages (no client of the hub needs to hold this id).
IMPERSONATED_CLIENT_ID = "fr.health.samu014"
MODELS_VERSION = "1.1"
#: How long the whole environment may take to become Ready (control plane, broker, operator, dispatchers).
READY_TIMEOUT = 180.0
_MEASUREMENTS = pytest.StashKey[list[str]]()


@pytest.fixture
def measure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Records a measured figure: printed at once (``-s``) and repeated in the run's summary."""
    lines = request.config.stash.setdefault(_MEASUREMENTS, [])

    def record(line: str) -> None:
        lines.append(f"{request.node.name}: {line}")
        print(f"[measure] {line}")

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash.get(_MEASUREMENTS, [])
    if lines:
        terminalreporter.section("measured figures")
        for line in lines:
            terminalreporter.write_line(line)


@dataclass(frozen=True)
class SystemVHost:
    """One vhost of the session's hub, as the tests address it."""

    perimeter: str
    version: str
    profile: str
    allowed_use_cases: tuple[str, ...]
    dispatchers: int
    case_use_case: str
    """The use case (model name) of a typical message on this vhost: a new case."""

    @property
    def name(self) -> str:
        return vhost_name(self.perimeter, self.version)

    @property
    def vhost_version(self) -> str:
        """The VHostVersion object's name (``15-15-v1.5``)."""
        return f"{self.perimeter}-v{self.version}"

    @property
    def protocol(self) -> VHostProtocol:
        return for_profile(self.profile)

    @property
    def bundle_dir(self) -> Path:
        return bundle_dir(MODELS_VERSION)

    def queue(self, client_id: str, kind: QueueKind = QueueKind.MESSAGE) -> str:
        return self.protocol.client_queue(client_id, kind)

    def routing_key(self, client_id: str) -> str:
        return self.protocol.publish_routing_key(client_id)

    def case_message(self, sender: str, recipient: str, **overrides: Any) -> dict[str, Any]:
        """A well-formed new-case message (JSON) from ``sender`` to ``recipient``, valid on this vhost."""
        return case_message(self.bundle_dir, use_case=self.case_use_case, sender=sender, recipient=recipient,
                            **overrides)

    def manifests(self) -> list[dict[str, Any]]:
        return [
            perimeter(self.perimeter, allowedUseCases=list(self.allowed_use_cases),
                      dispatcher={"replicas": self.dispatchers}),
            vhost_version(self.perimeter, self.version, models={"version": MODELS_VERSION}, profile=self.profile),
        ]


SAMU_SAMU = SystemVHost("15-15", "1.5", "current", dispatchers=1, case_use_case="RS-EDA", allowed_use_cases=(
    "createCaseHealth", "createCaseHealthUpdate", "reference", "emsi", "resourcesInfo", "resourcesEngagement",
    "resourcesStatus", "resourcesRequest", "resourcesResponse", "documentLink", "appointment", "technical",
    "technicalNoreq", "customContent", "info", "error"))
SAMU_FIRE = SystemVHost("15-nexsis", "1.8", "legacy", dispatchers=1, case_use_case="RC-EDA", allowed_use_cases=(
    "createCase", "reference", "emsi", "resourcesInfoCisu", "geoPositionsUpdate", "technical", "technicalNoreq",
    "info", "error"))
SAMU_SMUR = SystemVHost("15-smur", "1.4", "current", dispatchers=0, case_use_case="RS-EDA", allowed_use_cases=(
    "createCaseHealth", "createCaseHealthUpdate", "reference", "rpis", "interventionReport", "technical", "error"))
#: The vhosts with a dispatcher, where messages flow.
DISPATCHED_VHOSTS = (SAMU_SAMU, SAMU_FIRE)
A_VHOSTS = (SAMU_SAMU, SAMU_FIRE)
B_VHOSTS = (SAMU_SAMU, SAMU_FIRE, SAMU_SMUR)


def hub_manifests() -> list[dict[str, Any]]:
    documents = [document for vhost in B_VHOSTS for document in vhost.manifests()]
    documents.append(hub_client(A_CLIENT_ID, A_CLIENT_ID, [v.vhost_version for v in A_VHOSTS],
                                preferences={"format": "json", "editor": "Editeur-A"}))
    documents.append(hub_client(B_CLIENT_ID, B_CLIENT_ID, [v.vhost_version for v in B_VHOSTS],
                                preferences={"format": "json", "editor": "Editeur-B"}))
    return documents


@dataclass
class SystemHub:
    env: HubEnv
    a: ClientCredentials
    b: ClientCredentials
    dispatcher_credentials: dict[str, ClientCredentials]
    """By vhost name: the certificate the operator issued for that vhost's dispatchers."""

    @property
    def broker(self) -> LocalBroker:
        return self.env.broker

    def connect(self, credentials: ClientCredentials | None, vhost: SystemVHost | str) -> pika.BlockingConnection:
        name = vhost if isinstance(vhost, str) else vhost.name
        return pika.BlockingConnection(self.broker.pika_parameters(credentials, name, heartbeat=0))

    def client(self, credentials: ClientCredentials, vhost: SystemVHost) -> HubTestClient:
        """A connected hub client (confirms, ``mandatory``); use it with ``with``."""
        return HubTestClient(self.broker, credentials, vhost.name)


@contextlib.contextmanager
def running_local_node(env: HubEnv, root: Path) -> Iterator[LocalNode]:
    """The local node running the namespace's dispatcher pods, in a thread; it drains them on exit."""
    node = LocalNode(env.cluster.api_client(), env.namespace, root, models_root())
    stop = threading.Event()
    thread = threading.Thread(target=node.run, args=(stop,), name=f"local-node-{env.namespace}", daemon=True)
    thread.start()
    try:
        yield node
    finally:
        stop.set()
        thread.join(timeout=120)


@pytest.fixture(scope="session")
def system_hub(
    cluster: LocalControlPlane, broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SystemHub]:
    namespace = f"hub-system-{os.urandom(3).hex()}"
    workdir = tmp_path_factory.mktemp("system-hub")
    cluster.kubectl("create", "namespace", namespace)
    try:
        with running_hub_env(cluster, broker, namespace, workdir, {}) as env, \
                running_local_node(env, workdir / "node"):
            documents = hub_manifests()
            env.apply(*documents)
            for document in documents:
                env.wait_condition(document["kind"].lower(), document["metadata"]["name"], timeout=READY_TIMEOUT)
            dispatcher_credentials = {
                vhost.name: env.credentials_from_secret(_dispatcher_secret(env, vhost)) for vhost in DISPATCHED_VHOSTS
            }
            yield SystemHub(env, env.credentials(A_CLIENT_ID), env.credentials(B_CLIENT_ID), dispatcher_credentials)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _dispatcher_secret(env: HubEnv, vhost: SystemVHost) -> str:
    """The certificate Secret the operator mounts into the vhost's dispatcher pods."""
    deployment = env.get("deployment", dispatcher_workload_name(vhost.vhost_version))
    assert deployment is not None, f"no dispatcher Deployment for {vhost.vhost_version}"
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    return next(volume["secret"]["secretName"] for volume in volumes if volume["name"] == "tls")
