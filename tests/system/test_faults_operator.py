"""The operator is SIGKILLed while it onboards 100 clients, then restarted (as its Deployment would): it must
converge to exactly the declared state.

Converged means: every HubClient Ready with its status up to date; exactly one certificate Secret per client;
on the broker exactly one user, the three queues, the bindings and the permissions of each client — nothing
twice, nothing missing, nothing else; no Warning Event and no handler failure in the operator's log.

The operator runs as a process under its RBAC identity on the session's control plane and broker, in a
namespace of this test (killing it disturbs nobody else).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from time import monotonic
from typing import Any

import pytest
from hub_devenv.controlplane import LocalControlPlane
from hub_devenv.rabbitmq import LocalBroker
from hub_dispatcher import protocol
from kubernetes import client as k8s

from tests.helpers.hub_env import HubEnv, running_hub_env
from tests.integration.operator.operator_manifests import SmallHub

pytestmark = [pytest.mark.cluster, pytest.mark.broker, pytest.mark.slow]

#: The issue's size; HUB_FAULT_CLIENTS makes a quicker local run possible.
CLIENTS = int(os.environ.get("HUB_FAULT_CLIENTS", "100"))
#: The kill comes once this many certificates are issued: the onboarding is under way, far from done.
KILL_AFTER_CERTIFICATES = max(1, CLIENTS // 5)
#: Deadlines for failure only (the machine is shared and slow at times): never measured figures.
CONVERGE_TIMEOUT = 300.0
CERTIFICATE_LABEL = "hubsante.io/certificate-of"


@pytest.fixture
def hub_env(cluster: LocalControlPlane, broker: LocalBroker, namespace: str, tmp_path: Path) -> Iterator[HubEnv]:
    with running_hub_env(cluster, broker, namespace, tmp_path, {}) as env:
        yield env


def ready_clients(env: HubEnv) -> int:
    return sum(1 for client in env.items("hubclients") if _is_ready(client))


def _is_ready(body: dict[str, Any]) -> bool:
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def certificates_issued(core: k8s.CoreV1Api, namespace: str) -> int:
    """Certificate Secrets in the namespace, read through the API directly: polled fast enough (unlike kubectl)
    to kill the operator early in the onboarding."""
    return len(core.list_namespaced_secret(namespace, label_selector=CERTIFICATE_LABEL).items)


def test_an_operator_killed_while_onboarding_100_clients_converges_after_a_restart(
    hub_env: HubEnv, measure: Callable[[str], None]
) -> None:
    hub = SmallHub()
    hub_env.apply(*hub.base())
    hub_env.wait_condition("vhostversion", hub.vhost_version)
    labels = [f"c{index:03d}" for index in range(CLIENTS)]
    applied_at = monotonic()
    # kubectl applies the 100 objects one by one (seconds): the operator works on the first ones meanwhile, and
    # is killed in the middle of that, as when Argo CD syncs a batch of onboardings.
    with ThreadPoolExecutor(max_workers=1) as background:
        applying = background.submit(hub_env.apply, *[hub.client(label) for label in labels])
        core = k8s.CoreV1Api(hub_env.cluster.api_client())
        hub_env.wait_for(lambda: certificates_issued(core, hub_env.namespace) >= KILL_AFTER_CERTIFICATES,
                         interval=0.02, timeout=CONVERGE_TIMEOUT,
                         what=f"the first {KILL_AFTER_CERTIFICATES} certificates")
        hub_env.operator.stop(kill=True)  # SIGKILL: no clean-up, handlers cut anywhere
        killed_at = monotonic()
        certificates_at_kill = certificates_issued(core, hub_env.namespace)
        applying.result()
    ready_at_kill = ready_clients(hub_env)
    assert ready_at_kill < CLIENTS, "the onboarding finished before the kill: nothing was interrupted"
    hub_env.operator.start()
    restarted_at = monotonic()
    hub_env.wait_for(lambda: ready_clients(hub_env) == CLIENTS, timeout=CONVERGE_TIMEOUT, interval=0.5,
                     what=f"all {CLIENTS} clients Ready after the restart")
    converged_at = monotonic()

    client_ids = {hub.client_id(label) for label in labels}
    assert_exactly_one_certificate_per_client(hub_env, labels)
    assert_broker_holds_exactly(hub_env, hub.vhost, client_ids)
    assert_no_errors(hub_env)
    measure(f"operator SIGKILL {killed_at - applied_at:.1f} s into applying {CLIENTS} clients "
            f"({certificates_at_kill} certificates issued, {ready_at_kill} Ready): all Ready {converged_at - restarted_at:.1f} s after the restart "
            f"(restart included: {converged_at - killed_at:.1f} s after the kill)")


def assert_exactly_one_certificate_per_client(env: HubEnv, labels: list[str]) -> None:
    secrets = env.items("secrets", "-l", CERTIFICATE_LABEL)
    owners = Counter(secret["metadata"]["labels"][CERTIFICATE_LABEL] for secret in secrets)
    per_client = {owner: count for owner, count in owners.items() if owner.startswith("hubclient.")}
    assert per_client == {f"hubclient.{label}": 1 for label in labels}
    named = {client["metadata"]["name"]: client["status"]["certificate"]["secretName"]
             for client in env.items("hubclients")}
    existing = {secret["metadata"]["name"] for secret in secrets}
    assert {name: secret for name, secret in named.items() if secret not in existing} == {}


def assert_broker_holds_exactly(env: HubEnv, vhost: str, client_ids: set[str]) -> None:
    """Each client once with exactly its access, the vhost's own objects, and nothing else."""
    wire = protocol.CURRENT
    queues = [q["name"] for q in env.rabbit("GET", "queues", vhost)]
    assert sorted(queues) == sorted({protocol.DISPATCH_QUEUE, protocol.DEAD_LETTER_QUEUE}
                                    | {q for client_id in client_ids for q in wire.client_queues(client_id)})
    bindings = [(b["destination"], b["routing_key"]) for b in env.rabbit("GET", "bindings", vhost)
                if b["source"] == protocol.DISTRIBUTION_EXCHANGE]
    assert len(bindings) == len(set(bindings)) == 3 * len(client_ids)
    users = {user["name"] for user in env.rabbit("GET", "users")}
    assert client_ids <= users
    permissions = {p["user"]: p for p in env.rabbit("GET", "vhosts", vhost, "permissions")}
    assert set(permissions) == {*client_ids, f"dispatcher.{vhost}", env.broker.admin_user}
    topic_permissions = {p["user"]: p for p in env.rabbit("GET", "vhosts", vhost, "topic-permissions")}
    for client_id in client_ids:
        expected, topic = wire.client_permission([client_id]), wire.client_topic_permission([client_id])
        granted = permissions[client_id]
        assert (granted["configure"], granted["write"], granted["read"]) == (
            expected.configure, expected.write, expected.read), client_id
        assert (topic_permissions[client_id]["exchange"], topic_permissions[client_id]["write"]) == (
            topic.exchange, topic.write), client_id


def assert_no_errors(env: HubEnv) -> None:
    warnings = [f"{e['involvedObject']['name']}: {e['reason']}: {e['message']}" for e in env.items("events")
                if e.get("type") == "Warning"]
    assert warnings == []
    log = env.operator.log_text()
    assert "Traceback" not in log and not re.search(r"failed permanently|Handler .* failed with an exception", log), \
        log[-3000:]
    for client in env.items("hubclients"):
        assert client["status"]["observedGeneration"] == client["metadata"]["generation"], client["metadata"]["name"]
