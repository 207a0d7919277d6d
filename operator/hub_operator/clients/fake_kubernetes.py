"""An in-memory stand-in for :class:`~.kubernetes.KubernetesClient`, for unit tests of the reconcilers.

It keeps the behaviour the operator relies on: ``resourceVersion`` optimistic concurrency on replace (409),
409 on creating an existing object, server-side apply creating or updating (``generation`` moves when the
spec changes), status merge-patches, Events recorded, and 404 for cert-manager's kind unless enabled.
Test controls: ``unavailable`` (every call fails as if the API server were down), ``cert_manager_installed``,
``calls`` (method names, in order).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .kubernetes import (
    CERTIFICATES,
    CONFIG_MAPS,
    DEPLOYMENTS,
    HUB_RESOURCES,
    LEASES,
    POD_DISRUPTION_BUDGETS,
    SECRETS,
    SERVICES,
    KubernetesConflict,
    KubernetesNotFound,
    KubernetesUnavailable,
    ObjectReference,
    Resource,
)


@dataclass
class RecordedEvent:
    involved: ObjectReference
    type: str
    reason: str
    message: str


@dataclass
class FakeKubernetes:
    unavailable: bool = False
    cert_manager_installed: bool = False
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    statuses: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[RecordedEvent] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    field_manager: str = "hub-operator"
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    # -- helpers --------------------------------------------------------------------------------------------
    def _call(self, name: str, resource: Resource) -> None:
        self.calls.append(name)
        if self.unavailable:
            raise KubernetesUnavailable(0, "ConnectError", "simulated outage", "GET", resource.path(None))

    def _stamp(self, body: dict[str, Any]) -> dict[str, Any]:
        body.setdefault("metadata", {})["resourceVersion"] = str(next(self._versions))
        return body

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((resource.plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def put(self, resource: Resource, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store an object directly (test set-up)."""
        stored = self._stamp(copy.deepcopy(dict(body)))
        metadata = stored["metadata"]
        self.objects[(resource.plural, metadata.get("namespace", ""), metadata["name"])] = stored
        return copy.deepcopy(stored)

    def of_kind(self, resource: Resource, namespace: str | None = None) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (plural, ns, _), o in sorted(self.objects.items())
                if plural == resource.plural and (namespace is None or ns == namespace)]

    def _create(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if (resource.plural, namespace, name) in self.objects:
            raise KubernetesConflict(409, "AlreadyExists", f"{resource.plural} {name!r} already exists", "POST",
                                     resource.path(namespace))
        stored = copy.deepcopy(dict(body))
        stored["metadata"] = {**stored.get("metadata", {}), "namespace": namespace}
        stored["metadata"].setdefault("generation", 1)
        stored["metadata"].setdefault("uid", f"uid-{name}")
        return self.put(resource, stored)

    def _replace(self, resource: Resource, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        current = self.objects.get((resource.plural, namespace, name))
        if current is None:
            raise KubernetesNotFound(404, "NotFound", f"{name} not found", "PUT", resource.path(namespace, name))
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
            raise KubernetesConflict(409, "Conflict", "the object has been modified", "PUT",
                                     resource.path(namespace, name))
        stored = copy.deepcopy(dict(body))
        stored["metadata"] = {**current["metadata"], **stored.get("metadata", {})}
        return self.put(resource, stored)

    def _apply(self, resource: Resource, body: Mapping[str, Any]) -> dict[str, Any]:
        metadata = body["metadata"]
        key = (resource.plural, metadata.get("namespace", ""), metadata["name"])
        current = self.objects.get(key)
        stored = copy.deepcopy(dict(body))
        if current is None:
            stored["metadata"] = {**stored["metadata"], "generation": 1, "uid": f"uid-{metadata['name']}"}
        else:
            changed = current.get("spec") != stored.get("spec")
            generation = current["metadata"].get("generation", 1) + (1 if changed else 0)
            stored["metadata"] = {**current["metadata"], **stored["metadata"], "generation": generation}
            if "status" in current:
                stored["status"] = current["status"]
        return self.put(resource, stored)

    def set_status(self, resource: Resource, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """What another controller would write (e.g. a Deployment's readyReplicas)."""
        self.objects[(resource.plural, namespace, name)]["status"] = copy.deepcopy(dict(status))

    # -- the KubernetesClient surface -------------------------------------------------------------------------
    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("get_secret", SECRETS)
        return self.get(SECRETS, namespace, name)

    async def create_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call("create_secret", SECRETS)
        return self._create(SECRETS, namespace, body)

    async def replace_secret(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call("replace_secret", SECRETS)
        return self._replace(SECRETS, namespace, name, body)

    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("get_config_map", CONFIG_MAPS)
        return self.get(CONFIG_MAPS, namespace, name)

    async def apply_config_map(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call("apply_config_map", CONFIG_MAPS)
        return self._apply(CONFIG_MAPS, body)

    async def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("get_deployment", DEPLOYMENTS)
        return self.get(DEPLOYMENTS, namespace, name)

    async def apply_deployment(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call("apply_deployment", DEPLOYMENTS)
        return self._apply(DEPLOYMENTS, body)

    async def apply_service(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call("apply_service", SERVICES)
        return self._apply(SERVICES, body)

    async def apply_pod_disruption_budget(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call("apply_pod_disruption_budget", POD_DISRUPTION_BUDGETS)
        return self._apply(POD_DISRUPTION_BUDGETS, body)

    async def delete_pod_disruption_budget(self, namespace: str, name: str) -> bool:
        self._call("delete_pod_disruption_budget", POD_DISRUPTION_BUDGETS)
        return self.objects.pop((POD_DISRUPTION_BUDGETS.plural, namespace, name), None) is not None

    async def get_certificate(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("get_certificate", CERTIFICATES)
        self._require_cert_manager("GET", namespace)
        return self.get(CERTIFICATES, namespace, name)

    async def apply_certificate(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call("apply_certificate", CERTIFICATES)
        self._require_cert_manager("PATCH", body["metadata"].get("namespace", ""))
        return self._apply(CERTIFICATES, body)

    def _require_cert_manager(self, method: str, namespace: str) -> None:
        if not self.cert_manager_installed:
            raise KubernetesNotFound(404, "NotFound", "the server could not find the requested resource", method,
                                     CERTIFICATES.path(namespace))

    async def patch_status(self, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        self._call("patch_status", HUB_RESOURCES[plural])
        key = (plural, namespace, name)
        if key not in self.objects:
            raise KubernetesNotFound(404, "NotFound", f"{plural} {name} not found", "PATCH",
                                     HUB_RESOURCES[plural].path(namespace, name, "status"))
        merged = {**self.statuses.get(key, {}), **copy.deepcopy(dict(status))}
        self.statuses[key] = {k: v for k, v in merged.items() if v is not None}
        self.objects[key]["status"] = copy.deepcopy(self.statuses[key])
        return copy.deepcopy(self.objects[key])

    async def create_event(
        self, involved: ObjectReference, *, type: str, reason: str, message: str, component: str = "hub-operator"
    ) -> dict[str, Any]:
        self._call("create_event", SECRETS)
        self.events.append(RecordedEvent(involved, type, reason, message))
        return {}

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("get_lease", LEASES)
        return self.get(LEASES, namespace, name)

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call("create_lease", LEASES)
        return self._create(LEASES, namespace, body)

    async def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call("replace_lease", LEASES)
        return self._replace(LEASES, namespace, name, body)

    def connection_info(self) -> Any:  # pragma: no cover - kopf is not run against the fake
        raise NotImplementedError

    def close(self) -> None:
        return None

    # -- what tests look at -----------------------------------------------------------------------------------
    def events_for(self, name: str, reason: str | None = None) -> list[RecordedEvent]:
        return [e for e in self.events if e.involved.name == name and (reason is None or e.reason == reason)]
