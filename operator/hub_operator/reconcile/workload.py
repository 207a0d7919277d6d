"""The dispatcher workload of a VHostVersion: its certificate, client preferences, Deployment, Service and budget.

Manifests come from the pure templates of :mod:`hub_operator.builders.workloads`; this module gathers their
inputs (certificate, bundle ConfigMaps, replicas), applies them with server-side apply, and reads back how many
dispatchers are ready.  A dispatcher only turns ready once it has loaded its model bundle and connected, so a
ready dispatcher is also the proof that the bundle is available.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub_operator.api.modelbundle import ModelSourceKind
from hub_operator.api.perimeter import PerimeterSpec
from hub_operator.brokers import BrokerConnection
from hub_operator.builders.scaling import dispatcher_replicas
from hub_operator.builders.workloads import (
    InvalidWorkload,
    data_checksum,
    dispatcher_workload_for,
    dispatcher_workload_name,
    preferences_config_map_name,
    render_dispatcher_manifests,
    render_preferences_config_map,
)
from hub_operator.builders.workloads import OwnerReference as WorkloadOwner
from hub_operator.certificates import (
    CA_KEY,
    TLS_CERT_KEY,
    TLS_KEY_KEY,
    CertificateAuthorityStore,
    CertificateError,
    CertificateRequest,
    ensure_certificate_secret,
)
from hub_operator.clients.kubernetes import KubernetesClient, KubernetesInvalid
from hub_operator.inventory import VHostVersionRecord
from hub_operator.reconcile.desired import VhostPlan
from hub_operator.settings import OperatorSettings
from hub_operator.status import FALSE, TRUE, UNKNOWN, Check, DispatcherFacts

log = logging.getLogger(__name__)

LABEL_CERTIFICATE_OF = "hubsante.io/certificate-of"


def dispatcher_secret_name(vhost_version: str) -> str:
    return f"{dispatcher_workload_name(vhost_version)}-tls"


@dataclass(frozen=True)
class WorkloadResult:
    models: Check
    dispatcher: DispatcherFacts
    certificate_renewed: bool = False
    certificate_not_after: dt.datetime | None = None
    models_source: str = ""


def dispatcher_facts(deployment: Mapping[str, Any] | None, replicas: int) -> DispatcherFacts:
    """How the dispatchers are doing, from the Deployment as stored (pure)."""
    if replicas == 0:
        return DispatcherFacts(0, 0, Check(TRUE, "ScaledToZero", "replicas is 0: dispatching is paused on purpose"))
    if deployment is None:
        return DispatcherFacts(replicas, 0, Check(FALSE, "DeploymentMissing", "the dispatcher Deployment does not exist"))
    status = deployment.get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    if ready >= 1:
        return DispatcherFacts(replicas, ready, Check(TRUE, "Available", f"{ready}/{replicas} dispatcher(s) ready"))
    problems = [
        f"{c.get('type')}: {c.get('reason')} {c.get('message', '')}".strip()
        for c in status.get("conditions") or []
        if (c.get("type") == "Available" and c.get("status") == "False")
        or (c.get("type") in ("ReplicaFailure", "Progressing") and c.get("status") == "False")
        or (c.get("type") == "ReplicaFailure" and c.get("status") == "True")
    ]
    detail = "; ".join(problems) if problems else "waiting for pods to load the model bundle and connect"
    return DispatcherFacts(replicas, ready, Check(FALSE, "DispatcherNotReady", f"0/{replicas} dispatcher(s) ready: {detail}"))


#: ModelsAvailable reasons that only dispatcher readiness decides (refreshed on Deployment changes).
DISPATCHER_REPORTED_MODELS = frozenset({"NoDispatcherRunning", "LoadedByDispatcher", "WaitingForDispatcher"})


def models_from_dispatchers(facts: DispatcherFacts, source: str) -> Check:
    if facts.replicas == 0:
        return Check(UNKNOWN, "NoDispatcherRunning", f"bundle {source}: no dispatcher runs to load it")
    if (facts.ready_replicas or 0) >= 1:
        return Check(TRUE, "LoadedByDispatcher", f"bundle {source} loaded by {facts.ready_replicas} ready dispatcher(s)")
    return Check(UNKNOWN, "WaitingForDispatcher", f"bundle {source}: waiting for a dispatcher to load it")


class WorkloadManager:
    def __init__(self, kube: KubernetesClient, authorities: CertificateAuthorityStore, settings: OperatorSettings) -> None:
        self._kube = kube
        self._authorities = authorities
        self._settings = settings
        #: Per Deployment: (hash of what was applied, Deployment generation right after): skip identical re-applies.
        self._applied: dict[tuple[str, str], tuple[str, int | None]] = {}

    def forget(self, namespace: str, name: str) -> None:
        self._applied.pop((namespace, name), None)

    async def reconcile(
        self,
        record: VHostVersionRecord,
        perimeter: PerimeterSpec,
        plan: VhostPlan,
        broker: BrokerConnection,
        queue_depth: int | None,
    ) -> WorkloadResult:
        spec = record.spec
        assert spec is not None
        name = dispatcher_workload_name(record.name)
        owner = WorkloadOwner(name=record.name, uid=record.uid)
        source = _bundle_source(spec.models, self._settings.models_root)

        # The certificate first: without it a dispatcher cannot connect.
        request = CertificateRequest(
            namespace=record.namespace,
            secret_name=dispatcher_secret_name(record.name),
            common_name=plan.topology.dispatcher_username,
            validity=dt.timedelta(seconds=self._settings.dispatcher_certificate_validity),
            renew_before=dt.timedelta(seconds=self._settings.dispatcher_certificate_renew_before),
            owner=record.owner,
            labels={LABEL_CERTIFICATE_OF: f"vhostversion.{record.name}"[:63].rstrip(".-_")},
            trust_bundle=broker.ca_pem,
        )
        try:
            stored = await ensure_certificate_secret(self._kube, self._authorities, request)
        except CertificateError as error:
            facts = DispatcherFacts(None, None, Check(FALSE, error.reason, f"dispatcher certificate: {error.message}"))
            return WorkloadResult(Check(UNKNOWN, "NoDispatcherRunning", f"bundle {source}"), facts, models_source=source)
        tls_checksum = data_checksum({k: v for k, v in stored.data.items() if k in (CA_KEY, TLS_CERT_KEY, TLS_KEY_KEY)})

        models_problem, config_map_keys, models_checksum = await self._bundle(record, source)
        deployment = await self._kube.get_deployment(record.namespace, name)
        current = ((deployment or {}).get("spec") or {}).get("replicas")
        effective = plan.effective
        replicas = dispatcher_replicas(effective.dispatcher, queue_depth, current)

        await self._kube.apply_config_map(
            render_preferences_config_map(preferences_config_map_name(record.name), record.namespace, owner,
                                          dict(plan.preferences))
        )
        if models_problem is not None:
            # A Deployment whose bundle volume cannot be mounted would never start: keep the last good one.
            facts = dispatcher_facts(deployment, replicas)
            return WorkloadResult(models_problem, facts, stored.issued_now and stored.replaced, stored.not_after, source)
        try:
            workload = dispatcher_workload_for(
                vhost_version_name=record.name,
                namespace=record.namespace,
                uid=record.uid,
                spec=spec,
                perimeter=perimeter,
                replicas=replicas,
                image=self._settings.dispatcher_image,
                amqps_host=broker.amqps_host,
                amqps_port=broker.amqps_port,
                tls_secret_name=request.secret_name,
                image_pull_policy=self._settings.dispatcher_image_pull_policy,
                models_root=self._settings.models_root,
                models_config_map_keys=config_map_keys,
                tls_checksum=tls_checksum,
                models_checksum=models_checksum,
            )
            manifests = render_dispatcher_manifests(workload)
        except InvalidWorkload as error:
            facts = DispatcherFacts(replicas, None, Check(FALSE, "InvalidWorkload", str(error)))
            return WorkloadResult(Check(UNKNOWN, "NoDispatcherRunning", f"bundle {source}"), facts, models_source=source)
        try:
            deployment = await self._apply(record.namespace, name, manifests, deployment)
        except KubernetesInvalid as error:
            facts = DispatcherFacts(replicas, None, Check(FALSE, "DeploymentRejected", error.message))
            return WorkloadResult(Check(UNKNOWN, "NoDispatcherRunning", f"bundle {source}"), facts, models_source=source)
        facts = dispatcher_facts(deployment, replicas)
        models = self._local_models_check(spec.models, source) or models_from_dispatchers(facts, source)
        if models.status is FALSE:
            facts = DispatcherFacts(facts.replicas, facts.ready_replicas, Check(FALSE, models.reason, models.message))
        return WorkloadResult(models, facts, stored.issued_now and stored.replaced, stored.not_after, source)

    async def _apply(self, namespace: str, name: str, manifests: list[dict[str, Any]],
                     deployment: Mapping[str, Any] | None) -> dict[str, Any] | None:
        digest = hashlib.sha256(json.dumps(manifests, sort_keys=True).encode()).hexdigest()
        generation = ((deployment or {}).get("metadata") or {}).get("generation")
        if deployment is not None and self._applied.get((namespace, name)) == (digest, generation):
            return dict(deployment)  # identical, and nobody changed the Deployment since: nothing to do
        applied: dict[str, Any] | None = dict(deployment) if deployment is not None else None
        has_budget = False
        for manifest in manifests:
            kind = manifest["kind"]
            if kind == "Deployment":
                applied = await self._kube.apply_deployment(manifest)
            elif kind == "Service":
                await self._kube.apply_service(manifest)
            elif kind == "PodDisruptionBudget":
                has_budget = True
                await self._kube.apply_pod_disruption_budget(manifest)
        if not has_budget:
            await self._kube.delete_pod_disruption_budget(namespace, name)
        self._applied[(namespace, name)] = (digest, ((applied or {}).get("metadata") or {}).get("generation"))
        return applied

    async def _bundle(
        self, record: VHostVersionRecord, source: str
    ) -> tuple[Check | None, dict[str, list[str]], str]:
        """For a configMaps bundle: a problem if one is missing, else the keys of each and a checksum."""
        spec = record.spec
        assert spec is not None
        if spec.models.source_kind is not ModelSourceKind.CONFIG_MAPS:
            return None, {}, ""
        keys: dict[str, list[str]] = {}
        combined: dict[str, str] = {}
        missing: list[str] = []
        for config_map in spec.models.config_maps or ():
            found = await self._kube.get_config_map(record.namespace, config_map.name)
            if found is None:
                missing.append(config_map.name)
                continue
            data = {**(found.get("data") or {}), **(found.get("binaryData") or {})}
            keys[config_map.name] = sorted(data)
            combined.update({f"{config_map.name}/{key}": value for key, value in data.items()})
        if missing:
            return (Check(FALSE, "ModelConfigMapNotFound",
                          f"bundle {source}: ConfigMap(s) {', '.join(missing)} not found in namespace {record.namespace}"),
                    keys, "")
        return None, keys, data_checksum(combined)

    def _local_models_check(self, models: Any, source: str) -> Check | None:
        """Only when dispatchers run beside the operator (development): the bundle directory must exist."""
        if not self._settings.models_local_check:
            return None
        directory = models.directory(self._settings.models_root)
        if directory is None:
            return None
        path = Path(str(directory))
        if not (path / "json-schema").is_dir():
            return Check(FALSE, "ModelsNotFound", f"bundle {source}: {path}/json-schema does not exist")
        return None


def _bundle_source(models: Any, models_root: str) -> str:
    kind = models.source_kind
    if kind is ModelSourceKind.IMAGE:
        return f"{models.version} (image {models.image.reference})"
    if kind is ModelSourceKind.CONFIG_MAPS:
        return f"{models.version} (ConfigMaps {', '.join(c.name for c in models.config_maps)})"
    return f"{models.version} ({models.directory(models_root)})"
