"""The Kubernetes permissions the operator needs: an explicit allow-list, the source of the chart's RBAC.

Two parts: what kopf itself does (watching the hub's kinds and the dispatcher Deployments, finalizers and
progress annotations, Events) and what :mod:`hub_operator.clients.kubernetes` does.  A unit test replays every
method of the Kubernetes client against a recording transport and fails when one needs something missing here;
the integration tests run the operator under a Role rendered from this list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from hub_operator.api.base import GROUP

#: Field manager and RBAC subject naming share this.
OPERATOR_NAME: Final = "hub-operator"


@dataclass(frozen=True)
class Rule:
    """One (apiGroup, resource, verbs) entry of a (Cluster)Role, with the reason it is needed."""

    api_group: str
    resource: str
    verbs: tuple[str, ...]
    why: str

    def allows(self, api_group: str, resource: str, verb: str) -> bool:
        return self.api_group == api_group and self.resource == resource and verb in self.verbs


RULES: Final[tuple[Rule, ...]] = (
    # -- kopf -------------------------------------------------------------------------------------------------
    Rule(GROUP, "perimeters", ("get", "list", "watch", "patch"), "kopf: watch, finalizers, progress annotations"),
    Rule(GROUP, "vhostversions", ("get", "list", "watch", "patch"), "kopf: watch, finalizers, progress annotations"),
    Rule(GROUP, "hubclients", ("get", "list", "watch", "patch"), "kopf: watch, finalizers, progress annotations"),
    Rule("apps", "deployments", ("get", "list", "watch", "patch", "create"),
         "kopf watches dispatcher readiness; the operator server-side-applies the dispatcher Deployments"),
    Rule("", "events", ("create", "patch"), "kopf and the operator report on the custom resources"),
    # -- hub_operator.clients.kubernetes ------------------------------------------------------------------------
    Rule(GROUP, "perimeters/status", ("patch",), "status of Perimeters"),
    Rule(GROUP, "vhostversions/status", ("patch",), "status of VHostVersions"),
    Rule(GROUP, "hubclients/status", ("patch",), "status of HubClients"),
    Rule("", "secrets", ("get", "create", "update"),
         "broker connection Secrets (read), operator CA, client and dispatcher certificate Secrets"),
    Rule("", "configmaps", ("get", "patch", "create"),
         "model-bundle ConfigMaps (read), client preferences of the dispatchers (server-side apply)"),
    Rule("", "services", ("patch", "create"), "dispatcher metrics Services (server-side apply)"),
    Rule("policy", "poddisruptionbudgets", ("patch", "create", "delete"),
         "dispatcher PodDisruptionBudgets (server-side apply; deleted when one dispatcher is left)"),
    Rule("cert-manager.io", "certificates", ("get", "patch", "create"),
         "HubClients in certManager mode (server-side apply)"),
    Rule("coordination.k8s.io", "leases", ("get", "create", "update"),
         "leader election: one active operator (in the operator namespace)"),
)


def allowed(api_group: str, resource: str, verb: str, rules: Iterable[Rule] = RULES) -> bool:
    return any(rule.allows(api_group, resource, verb) for rule in rules)


_CORE = re.compile(r"^/api/(?P<version>[^/]+)/(?P<rest>.*)$")
_GROUPED = re.compile(r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/(?P<rest>.*)$")


def request_access(method: str, path: str, query: Mapping[str, str] | None = None) -> tuple[str, str, str]:
    """The (apiGroup, resource[/subresource], verb) an API request is authorised as.

    ``PATCH .../deployments/x`` -> ``("apps", "deployments", "patch")``; a GET of a collection is ``list``, or
    ``watch`` with ``watch=true``.
    """
    path = path.split("?", 1)[0]
    match = _CORE.match(path) or _GROUPED.match(path)
    if match is None:
        raise ValueError(f"not a resource path: {path}")
    group = match.groupdict().get("group") or ""
    segments = [segment for segment in match.group("rest").split("/") if segment]
    if len(segments) >= 2 and segments[0] == "namespaces":
        segments = segments[2:]
    if not segments:
        raise ValueError(f"not a resource path: {path}")
    resource, name, subresource = segments[0], None, None
    if len(segments) >= 2:
        name = segments[1]
    if len(segments) >= 3:
        subresource = segments[2]
    verb = {
        "GET": "get" if name else ("watch" if (query or {}).get("watch") in ("true", "1") else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }[method.upper()]
    return group, f"{resource}/{subresource}" if subresource else resource, verb


def cluster_role(name: str = OPERATOR_NAME, rules: Iterable[Rule] = RULES) -> dict[str, Any]:
    """A ClusterRole with these rules (bind it with a RoleBinding per watched namespace, or a ClusterRoleBinding)."""
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for rule in rules:
        grouped.setdefault((rule.api_group, tuple(sorted(rule.verbs))), []).append(rule.resource)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": OPERATOR_NAME}},
        "rules": [
            {"apiGroups": [group], "resources": sorted(resources), "verbs": list(verbs)}
            for (group, verbs), resources in sorted(grouped.items())
        ],
    }
