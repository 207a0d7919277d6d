"""examples/ applied to a real API server: everything Ready, and the broker holds exactly what HUBSANTE.md §3 says.

The expected broker content is computed here from the example manifests read as plain YAML and from the
protocol contract (hub_dispatcher.protocol), not from the operator's builders, and compared with the whole
definitions export of the example vhosts (not a sample).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from hub_devenv.certmanager import CertManagerEmulator, install_crd
from hub_devenv.hub_resources import EXAMPLES_DIR
from hub_devenv.kubelet import KubeletEmulator
from hub_devenv.rabbitmq import LocalBroker
from hub_dispatcher import protocol

from tests.integration.operator.conftest import HubEnv

pytestmark = [pytest.mark.cluster, pytest.mark.broker, pytest.mark.slow]

KINDS = ("perimeters", "vhostversions", "hubclients")
TTL_MS = {"24h": 86_400_000, "12h": 43_200_000, "15m": 900_000, "6h": 21_600_000}


def _examples() -> list[dict[str, Any]]:
    documents = []
    for name in ("10-perimeters.yaml", "20-vhostversions.yaml", "30-hubclients.yaml"):
        documents += [d for d in yaml.safe_load_all((EXAMPLES_DIR / name).read_text()) if d]
    return documents


def expected_broker_state(documents: list[dict[str, Any]], admin: str) -> dict[str, set[tuple[Any, ...]]]:
    """Every vhost, exchange, queue, policy, binding, user, permission and topic permission the examples imply."""
    perimeters = {d["metadata"]["name"]: d["spec"] for d in documents if d["kind"] == "Perimeter"}
    vhost_versions = {d["metadata"]["name"]: d["spec"] for d in documents if d["kind"] == "VHostVersion"}
    clients = [d["spec"] for d in documents if d["kind"] == "HubClient"]
    expected: dict[str, set[tuple[Any, ...]]] = {k: set() for k in (
        "vhosts", "exchanges", "queues", "bindings", "policies", "users", "permissions", "topic_permissions")}
    for spec in vhost_versions.values():
        vhost = f"{spec['perimeterRef']['name']}_v{spec['version']}"
        wire = protocol.for_profile(spec.get("profile", "current"))
        queue_type = spec.get("queueType", "classic")
        ttl = spec.get("messageTTL") or perimeters[spec["perimeterRef"]["name"]].get("messageTTL", "24h")
        dispatcher = f"dispatcher.{vhost}"
        expected["vhosts"].add((vhost,))
        expected["exchanges"] |= {(vhost, "hubsante", "topic"), (vhost, "distribution", "direct"),
                                  (vhost, "distribution.dlx", "fanout")}
        expected["queues"] |= {(vhost, "dispatch", queue_type), (vhost, "dispatch.dlq", queue_type)}
        expected["bindings"] |= {(vhost, "hubsante", "dispatch", wire.dispatch_binding_key),
                                 (vhost, "distribution.dlx", "dispatch.dlq", "")}
        expected["policies"].add((vhost, protocol.CLIENT_QUEUE_POLICY, wire.client_queue_policy_pattern,
                                  TTL_MS[ttl], "distribution.dlx"))
        expected["users"].add((dispatcher,))
        expected["permissions"] |= {(vhost, dispatcher, "^$", "^distribution$", r"^dispatch(\.dlq)?$"),
                                    (vhost, admin, ".*", ".*", ".*")}
        for client in clients:
            name = next(n for n, s in vhost_versions.items() if s is spec)
            if name not in client["vhostVersions"]:
                continue
            ids = [client["clientId"], *client.get("additionalClientIds", [])]
            username = (client.get("certificate") or {}).get("commonName") or client["clientId"]
            alternation = "(" + "|".join(re.escape(i) for i in sorted(ids)) + ")"
            expected["users"].add((username,))
            if wire.profile is protocol.ProtocolProfile.LEGACY:
                read = "^" + alternation + r"\.in\.(message|ack|info)$"
                topic = "^" + alternation + r"\.out\.(message|ack|info)$"
            else:
                read = "^" + alternation + r"\.(message|ack|info)$"
                topic = "^" + alternation + "$"
            expected["permissions"].add((vhost, username, "^$", "^hubsante$", read))
            expected["topic_permissions"].add((vhost, username, "hubsante", topic, "^$"))
            for client_id in ids:
                for kind in ("message", "ack", "info"):
                    queue = f"{client_id}.in.{kind}" if wire.profile is protocol.ProtocolProfile.LEGACY else f"{client_id}.{kind}"
                    expected["queues"].add((vhost, queue, queue_type))
                    expected["bindings"].add((vhost, "distribution", queue, queue))
    return expected


def actual_broker_state(export: dict[str, Any], vhosts: set[str]) -> dict[str, set[tuple[Any, ...]]]:
    def ours(entry: dict[str, Any]) -> bool:
        return entry.get("vhost") in vhosts

    permissions = [p for p in export["permissions"] if ours(p)]
    topic_permissions = [p for p in export["topic_permissions"] if ours(p)]
    users_with_access = {p["user"] for p in permissions + topic_permissions}
    return {
        "vhosts": {(v["name"],) for v in export["vhosts"] if v["name"] in vhosts},
        "exchanges": {(e["vhost"], e["name"], e["type"]) for e in export["exchanges"] if ours(e)},
        "queues": {(q["vhost"], q["name"], (q.get("arguments") or {}).get("x-queue-type", "classic"))
                   for q in export["queues"] if ours(q)},
        "bindings": {(b["vhost"], b["source"], b["destination"], b["routing_key"]) for b in export["bindings"] if ours(b)},
        "policies": {(p["vhost"], p["name"], p["pattern"], p["definition"].get("message-ttl"),
                      p["definition"].get("dead-letter-exchange")) for p in export["policies"] if ours(p)},
        # Users of the hub: every operator-managed user with access here (the management admin is not managed).
        "users": {(u["name"],) for u in export["users"]
                  if u["name"] in users_with_access and "hub-operator" in (u.get("tags") or [])},
        "permissions": {(p["vhost"], p["user"], p["configure"], p["write"], p["read"]) for p in permissions},
        "topic_permissions": {(p["vhost"], p["user"], p["exchange"], p["write"], p["read"]) for p in topic_permissions},
    }


def test_examples_become_ready_and_the_broker_holds_exactly_the_expected_definitions(
    hub_env: HubEnv, broker: LocalBroker
) -> None:
    install_crd(hub_env.cluster)
    documents = _examples()
    example_vhosts = {f"{d['spec']['perimeterRef']['name']}_v{d['spec']['version']}"
                      for d in documents if d["kind"] == "VHostVersion"}
    taken = {v["name"] for v in hub_env.rabbit("GET", "vhosts")} & example_vhosts
    assert not taken, f"the example vhosts {taken} already exist on the shared broker"
    api = hub_env.cluster.api_client()
    issuers = {"hub-sandbox-ca": broker.ca}
    with KubeletEmulator(api, hub_env.namespace), CertManagerEmulator(api, hub_env.namespace, issuers):
        hub_env.apply(*documents)
        for document in documents:
            kind, name = document["kind"].lower(), document["metadata"]["name"]
            hub_env.wait_condition(kind, name, timeout=90)

    statuses = {(d["kind"], d["metadata"]["name"]): (hub_env.get(d["kind"].lower(), d["metadata"]["name"]) or {})["status"]
                for d in documents}
    assert statuses[("HubClient", "fr.health.samu050")]["readyVhosts"] == 3
    assert statuses[("HubClient", "fr.health.samu076")]["certificate"]["commonName"] == "fr.health.samu076"
    assert statuses[("HubClient", "normandie-regional")]["clientIds"] == ["fr.health.samu014", "fr.health.samu061"]
    assert statuses[("VHostVersion", "15-nexsis-v1.8")]["messageTTL"] == "6h"
    assert statuses[("Perimeter", "15-15")]["vhosts"] == ["15-15_v1.5", "15-15_v2.0"]
    assert hub_env.condition("hubclient", "fr.health.samu050", "VHostDeprecated")["status"] == "True"

    expected = expected_broker_state(documents, broker.admin_user)
    actual = actual_broker_state(hub_env.definitions(), example_vhosts)
    for section in expected:
        missing, extra = expected[section] - actual[section], actual[section] - expected[section]
        assert not missing and not extra, f"{section}: missing {sorted(missing)}, unexpected {sorted(extra)}"
    # A multi-id identity gets alternations (HUBSANTE.md §3), spelled out once literally:
    assert ("15-15_v2.0", "regulation.normandie.example.fr", "hubsante", r"^(fr\.health\.samu014|fr\.health\.samu061)$",
            "^$") in actual["topic_permissions"]
    assert "Forbidden" not in hub_env.operator.log_text()
