"""An operator wired to in-memory fakes (Kubernetes, RabbitMQ, kopf's indexes) for reconcile unit tests."""

from __future__ import annotations

import copy
import datetime as dt
import functools
import itertools
from collections.abc import Mapping
from typing import Any

import yaml
from hub_operator import pki
from hub_operator.api.base import API_VERSION
from hub_operator.certificates import encode_data
from hub_operator.clients.fake_kubernetes import FakeKubernetes
from hub_operator.clients.fake_rabbitmq import FakeRabbitMQ
from hub_operator.clients.kubernetes import HUB_RESOURCES, SECRETS
from hub_operator.context import OperatorContext
from hub_operator.inventory import (
    ClientRecord,
    MemoryInventory,
    PerimeterRecord,
    VHostVersionRecord,
)
from hub_operator.settings import OperatorSettings

from hub_devenv.hub_resources import EXAMPLES_DIR

NAMESPACE = "sandbox"
OPERATOR_NAMESPACE = "hub-system"
PLURALS = {"Perimeter": "perimeters", "VHostVersion": "vhostversions", "HubClient": "hubclients"}
RECORDS = {"Perimeter": PerimeterRecord, "VHostVersion": VHostVersionRecord, "HubClient": ClientRecord}


@functools.cache
def shared_ca() -> pki.CertificateAuthority:
    return pki.CertificateAuthority.generate("unit-test CA")


class Clock:
    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def example_manifests(*files: str) -> list[dict[str, Any]]:
    names = files or ("10-perimeters.yaml", "20-vhostversions.yaml", "30-hubclients.yaml")
    return [doc for name in names for doc in yaml.safe_load_all((EXAMPLES_DIR / name).read_text()) if doc]


class Hub:
    """The operator's reconcilers over fakes; ``apply`` / ``delete`` play the API server and kopf's indexes."""

    def __init__(self, namespace: str = NAMESPACE, **settings: Any) -> None:
        self.namespace = namespace
        self.kube = FakeKubernetes()
        self.broker = FakeRabbitMQ(username="hub-admin")
        self.inventory = MemoryInventory()
        self.clock = Clock()
        defaults: dict[str, Any] = {
            "namespaces": (namespace,), "operator_namespace": OPERATOR_NAMESPACE, "identity": "unit-test",
            "drift_interval": 10.0,
        }
        self.settings = OperatorSettings(**{**defaults, **settings})
        self.context = OperatorContext(self.settings, self.kube, broker_factory=lambda _: self.broker,  # type: ignore[arg-type,return-value]
                                       inventory=self.inventory, now=self.clock)
        self._uids = itertools.count(1)
        self._created = itertools.count(1)
        self.put_broker_secret(namespace)
        ca = shared_ca()
        self.kube.put(SECRETS, {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": self.settings.ca_secret_name, "namespace": OPERATOR_NAMESPACE},
            "data": encode_data({"tls.crt": ca.cert_pem, "tls.key": ca.key_pem}),
        })

    def put_broker_secret(self, namespace: str, name: str = "hub-broker", **overrides: str) -> None:
        data = {"managementUrl": "http://rabbitmq.test:15672", "username": "hub-admin", "password": "secret",
                "amqpsHost": "rabbitmq.test", "amqpsPort": "5671", "ca.crt": shared_ca().cert_pem.decode(), **overrides}
        self.kube.put(SECRETS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                                "data": encode_data({k: v.encode() for k, v in data.items()})})

    # -- the API server and kopf's indexes --------------------------------------------------------------------
    def apply(self, manifest: Mapping[str, Any], namespace: str | None = None) -> Any:
        kind = manifest["kind"]
        plural = PLURALS[kind]
        namespace = namespace or self.namespace
        name = manifest["metadata"]["name"]
        existing = self.kube.get(HUB_RESOURCES[plural], namespace, name)
        body = copy.deepcopy(dict(manifest))
        body.setdefault("apiVersion", API_VERSION)
        if existing is None:
            order = next(self._created)
            body["metadata"] = {**body["metadata"], "namespace": namespace, "uid": f"uid-{next(self._uids)}",
                                "generation": 1,
                                "creationTimestamp": f"2025-01-01T{order // 3600:02d}:{order // 60 % 60:02d}:"
                                                     f"{order % 60:02d}Z"}
        else:
            changed = existing.get("spec") != body.get("spec")
            body["metadata"] = {**existing["metadata"], **body["metadata"],
                                "generation": existing["metadata"]["generation"] + (1 if changed else 0)}
            if "status" in existing:
                body["status"] = existing["status"]
        stored = self.kube.put(HUB_RESOURCES[plural], body)
        record = RECORDS[kind].from_body(stored)
        self.inventory.put(record)
        return record

    def refresh(self, kind: str, name: str, namespace: str | None = None) -> Any:
        """The record as kopf's index would hold it now (statuses written by the operator included)."""
        body = self.kube.get(HUB_RESOURCES[PLURALS[kind]], namespace or self.namespace, name)
        assert body is not None, f"{kind} {name} does not exist"
        record = RECORDS[kind].from_body(body)
        self.inventory.put(record)
        return record

    def mark_deleted(self, kind: str, name: str, namespace: str | None = None, **annotations: str) -> Any:
        resource = HUB_RESOURCES[PLURALS[kind]]
        body = self.kube.get(resource, namespace or self.namespace, name)
        assert body is not None
        body["metadata"]["deletionTimestamp"] = "2025-01-02T00:00:00Z"
        body["metadata"].setdefault("annotations", {}).update(annotations)
        record = RECORDS[kind].from_body(self.kube.put(resource, body))
        self.inventory.put(record)
        return record

    def remove(self, kind: str, name: str, namespace: str | None = None) -> None:
        """The finalizer is gone: the object disappears."""
        namespace = namespace or self.namespace
        record = self.refresh(kind, name, namespace)
        self.inventory.remove(record)
        self.kube.objects.pop((PLURALS[kind], namespace, name), None)

    async def events_for(self, name: str, reason: str | None = None) -> list[Any]:
        """Events posted so far (they are sent in the background: wait for those in flight)."""
        await self.context.events.drain()
        return self.kube.events_for(name, reason)

    def status(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self.kube.statuses.get((PLURALS[kind], namespace or self.namespace, name), {})

    def condition(self, kind: str, name: str, condition_type: str = "Ready", namespace: str | None = None) -> dict[str, Any]:
        conditions = self.status(kind, name, namespace).get("conditions", [])
        return next((c for c in conditions if c["type"] == condition_type), {})

    # -- what kopf's handlers do ------------------------------------------------------------------------------
    async def converge(self) -> None:
        """Create/resume handlers of every object, then one more vhost pass (what the drift timer does)."""
        for record in self.inventory.all_perimeters():
            await self.context.perimeters.reconcile(self.refresh("Perimeter", record.name, record.namespace))
        for record in self.inventory.all_vhost_versions():
            await self.context.vhosts.reconcile(record.key)
        for record in self.inventory.all_clients():
            await self.context.clients.reconcile(self.refresh("HubClient", record.name, record.namespace))
        await self.drift_tick()

    async def drift_tick(self) -> None:
        for record in self.inventory.all_vhost_versions():
            if not record.deleting:
                await self.context.vhosts.reconcile(record.key)

    def apply_examples(self) -> None:
        for manifest in example_manifests():
            self.apply(manifest)


def perimeter(name: str, **spec: Any) -> dict[str, Any]:
    return {"kind": "Perimeter", "metadata": {"name": name},
            "spec": {"description": f"perimeter {name}", **spec}}


def vhost_version(perimeter_name: str, version: str, **spec: Any) -> dict[str, Any]:
    return {"kind": "VHostVersion", "metadata": {"name": f"{perimeter_name}-v{version}"},
            "spec": {"perimeterRef": {"name": perimeter_name}, "version": version, "models": {"version": "1.1"},
                     **spec}}


def hub_client(name: str, client_id: str, vhost_versions: list[str], **spec: Any) -> dict[str, Any]:
    return {"kind": "HubClient", "metadata": {"name": name},
            "spec": {"clientId": client_id, "vhostVersions": vhost_versions, **spec}}
