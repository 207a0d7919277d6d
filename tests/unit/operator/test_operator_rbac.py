"""Every Kubernetes call the operator makes is in the RBAC allow-list (hub_operator.rbac).

Each public method of KubernetesClient runs against a recording transport (no server); the (group, resource,
verb) of every request must be allowed.  A new method without a sample call below fails the test too, so the
allow-list cannot fall behind the client.
"""

from __future__ import annotations

import inspect
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hub_operator import rbac
from hub_operator.clients.kubernetes import KubernetesClient, ObjectReference
from kubernetes import client as k8s

OBJECT = {"apiVersion": "v1", "kind": "X", "metadata": {"name": "x", "namespace": "ns"}}
CALLS: dict[str, tuple[Any, ...]] = {
    "get_secret": ("ns", "x"),
    "create_secret": ("ns", OBJECT),
    "replace_secret": ("ns", "x", OBJECT),
    "get_config_map": ("ns", "x"),
    "apply_config_map": (OBJECT,),
    "get_deployment": ("ns", "x"),
    "apply_deployment": (OBJECT,),
    "apply_service": (OBJECT,),
    "apply_pod_disruption_budget": (OBJECT,),
    "delete_pod_disruption_budget": ("ns", "x"),
    "get_certificate": ("ns", "x"),
    "apply_certificate": (OBJECT,),
    "patch_status": None,  # one call per hub kind, below
    "create_event": (ObjectReference("hubsante.io/v1alpha1", "HubClient", "ns", "x", "uid"),),
    "get_lease": ("ns", "x"),
    "create_lease": ("ns", OBJECT),
    "replace_lease": ("ns", "x", OBJECT),
}
NOT_API_CALLS = {"close", "connection_info"}


class _Response:
    status = 200
    reason = "OK"

    def read(self) -> bytes:
        return b"{}"


class RecordingApiClient(k8s.ApiClient):
    def __init__(self) -> None:
        configuration = k8s.Configuration()
        configuration.host = "https://kubernetes.test"
        super().__init__(configuration)
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def call_api(self, method: str, url: str, header_params: Any = None, body: Any = None,  # type: ignore[override]
                 post_params: Any = None, _request_timeout: Any = None) -> _Response:
        parts = urlsplit(url)
        self.requests.append((method, parts.path, dict(parse_qsl(parts.query))))
        json.dumps(body)  # what would be sent must be JSON
        return _Response()


@pytest.fixture
def recorded() -> list[tuple[str, str, dict[str, str]]]:
    import asyncio

    api = RecordingApiClient()
    kube = KubernetesClient(api, threads=1)
    public = {name for name, member in inspect.getmembers(KubernetesClient, inspect.iscoroutinefunction)
              if not name.startswith("_")}
    untested = public - set(CALLS)
    assert not untested, f"add a sample call for {sorted(untested)} (and its RBAC rule)"

    async def run_all() -> None:
        for name, args in CALLS.items():
            if name == "patch_status":
                for plural in ("perimeters", "vhostversions", "hubclients"):
                    await kube.patch_status(plural, "ns", "x", {"conditions": []})
            elif name == "create_event":
                await kube.create_event(*args, type="Normal", reason="Test", message="m")
            else:
                await getattr(kube, name)(*args)

    asyncio.run(run_all())
    kube.close()
    return api.requests


def test_every_call_is_allowed(recorded: list[tuple[str, str, dict[str, str]]]) -> None:
    denied = [(method, path, rbac.request_access(method, path, query)) for method, path, query in recorded
              if not rbac.allowed(*rbac.request_access(method, path, query))]
    assert not denied, f"calls missing from hub_operator.rbac.RULES: {denied}"


def test_server_side_apply_names_its_field_manager(recorded: list[tuple[str, str, dict[str, str]]]) -> None:
    applies = [query for method, _, query in recorded if method == "PATCH" and "force" in query]
    assert applies and all(query["fieldManager"] == "hub-operator" for query in applies)


def test_request_access_mapping() -> None:
    assert rbac.request_access("GET", "/api/v1/namespaces/ns/secrets/x") == ("", "secrets", "get")
    assert rbac.request_access("GET", "/apis/apps/v1/namespaces/ns/deployments", {"watch": "true"}) == (
        "apps", "deployments", "watch")
    assert rbac.request_access("PATCH", "/apis/hubsante.io/v1alpha1/namespaces/ns/hubclients/x/status") == (
        "hubsante.io", "hubclients/status", "patch")
    assert rbac.request_access("GET", "/apis/hubsante.io/v1alpha1/hubclients") == ("hubsante.io", "hubclients", "list")


def test_cluster_role_renders_every_rule() -> None:
    role = rbac.cluster_role()
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    for rule in rbac.RULES:
        assert {(rule.api_group, rule.resource, verb) for verb in rule.verbs} <= granted
    assert not any("*" in verb for rule in role["rules"] for verb in rule["verbs"])
