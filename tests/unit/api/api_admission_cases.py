"""Bad inputs every layer must refuse: the API server at admission (integration) and the models (unit).

Each case starts from a valid object of its kind and changes it, either before creating it or, for
update-time rules (immutability), as a merge patch applied to the stored object.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]
API_VERSION = "hubsante.io/v1alpha1"
PLURALS = {"Perimeter": "perimeters", "VHostVersion": "vhostversions", "HubClient": "hubclients"}


def perimeter(name: str = "15-15", **spec: Any) -> Manifest:
    base = {"description": "SAMU to SAMU", "allowedUseCases": ["createCaseHealth", "reference"], "messageTTL": "24h"}
    return _manifest("Perimeter", name, merged(base, spec))


def vhost_version(name: str = "15-15-v1.5", **spec: Any) -> Manifest:
    base = {"perimeterRef": {"name": "15-15"}, "version": "1.5", "models": {"version": "1.1"}}
    return _manifest("VHostVersion", name, merged(base, spec))


def hub_client(name: str = "samu050", **spec: Any) -> Manifest:
    base = {"clientId": "fr.health.samu050", "vhostVersions": ["15-15-v1.5"]}
    return _manifest("HubClient", name, merged(base, spec))


def _manifest(kind: str, name: str, spec: dict[str, Any]) -> Manifest:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch semantics (RFC 7386): nested dicts merge, None deletes."""
    result = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


@dataclass(frozen=True)
class AdmissionCase:
    id: str
    manifest: Manifest
    field: str
    """Field path the API server names, e.g. ``spec.clientId``."""
    text: str
    """A piece of the message saying what is expected."""
    update: dict[str, Any] | None = None
    """Merge patch applied to the stored ``manifest``; None for create-time cases."""
    status: int = 422
    """422 Invalid for schema and CEL errors; 400 for unknown fields (strict field validation)."""
    models_reject: bool = True
    """Whether the pydantic models refuse it too (update-time rules are the API server's alone)."""

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def plural(self) -> str:
        return PLURALS[self.kind]


CASES: tuple[AdmissionCase, ...] = (
    # -- HubClient ------------------------------------------------------------------------------------------
    AdmissionCase("client-id-too-short", hub_client(clientId="fr.health"), "spec.clientId", "should match"),
    AdmissionCase("client-id-not-french", hub_client(clientId="de.health.samu050"), "spec.clientId", "should match"),
    AdmissionCase("client-id-with-space", hub_client(clientId="fr.health.samu 050"), "spec.clientId", "should match"),
    AdmissionCase(
        "client-id-changed", hub_client(), "spec.clientId", "clientId is immutable",
        update={"spec": {"clientId": "fr.health.samu051"}}, models_reject=False,
    ),
    AdmissionCase(
        "additional-ids-repeat-client-id",
        hub_client(additionalClientIds=["fr.health.samu061", "fr.health.samu050"]),
        "spec.additionalClientIds", "must not repeat clientId",
    ),
    AdmissionCase(
        "additional-ids-duplicated",
        hub_client(additionalClientIds=["fr.health.samu061", "fr.health.samu061"]),
        "spec.additionalClientIds[1]", "Duplicate value",
    ),
    AdmissionCase(
        "additional-id-invalid", hub_client(additionalClientIds=["samu061"]),
        "spec.additionalClientIds[0]", "should match",
    ),
    AdmissionCase(
        "cert-manager-without-issuer", hub_client(certificate={"mode": "certManager"}),
        "spec.certificate.issuerRef", "issuerRef is required when mode is certManager",
    ),
    AdmissionCase(
        "issuer-with-operator-mode", hub_client(certificate={"issuerRef": {"name": "ca"}}),
        "spec.certificate.issuerRef", "only allowed when mode is certManager",
    ),
    AdmissionCase(
        "external-without-common-name", hub_client(certificate={"mode": "external"}),
        "spec.certificate.commonName", "commonName is required when mode is external",
    ),
    AdmissionCase(
        "external-with-secret",
        hub_client(certificate={"mode": "external", "commonName": "cn.example.fr", "secretName": "samu-tls"}),
        "spec.certificate.secretName", "not allowed when mode is external",
    ),
    AdmissionCase(
        "unknown-certificate-mode", hub_client(certificate={"mode": "pki"}),
        "spec.certificate.mode", 'supported values: "operator", "certManager", "external"',
    ),
    AdmissionCase(
        "renew-before-longer-than-validity", hub_client(certificate={"validity": "24h", "renewBefore": "48h"}),
        "spec.certificate.renewBefore", "renewBefore must be shorter than validity",
    ),
    AdmissionCase(
        "vhost-instead-of-vhostversion", hub_client(vhostVersions=["15-15_v1.5"]),
        "spec.vhostVersions[0]", "should match",
    ),
    AdmissionCase("no-vhost", hub_client(vhostVersions=[]), "spec.vhostVersions", "should have at least 1 items"),
    AdmissionCase(
        "unknown-format", hub_client(preferences={"format": "yaml"}),
        "spec.preferences.format", 'supported values: "json", "xml"',
    ),
    AdmissionCase(
        "misspelt-field", hub_client(clientID="fr.health.samu051"),
        "spec.clientID", "unknown field", status=400,
    ),
    # -- Perimeter -------------------------------------------------------------------------------------------
    AdmissionCase(
        "unknown-use-case", perimeter(allowedUseCases=["createCase", "createcase"]),
        "spec.allowedUseCases[1]", 'supported values: "createCase"',
    ),
    AdmissionCase("negative-ttl", perimeter(messageTTL="-1h"), "spec.messageTTL", "must be a duration at least 1s"),
    AdmissionCase("zero-ttl", perimeter(messageTTL="0s"), "spec.messageTTL", "must be a duration at least 1s"),
    AdmissionCase("ttl-too-long", perimeter(messageTTL="1000h"), "spec.messageTTL", "at most 720h"),
    AdmissionCase(
        "too-many-replicas", perimeter(dispatcher={"replicas": 50}),
        "spec.dispatcher.replicas", "should be less than or equal to 20",
    ),
    AdmissionCase(
        "negative-replicas", perimeter(dispatcher={"replicas": -1}),
        "spec.dispatcher.replicas", "should be greater than or equal to 0",
    ),
    AdmissionCase(
        "replicas-and-autoscaling", perimeter(dispatcher={"replicas": 2, "autoscaling": {"maxReplicas": 4}}),
        "spec.dispatcher.autoscaling", "either replicas (a fixed count) or autoscaling (bounds), not both",
    ),
    AdmissionCase(
        "autoscaling-min-above-max", perimeter(dispatcher={"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}),
        "spec.dispatcher.autoscaling.minReplicas", "minReplicas must be less than or equal to maxReplicas",
    ),
    AdmissionCase(
        "request-above-limit",
        perimeter(dispatcher={"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "500m"}}}),
        "spec.dispatcher.resources.requests.cpu", "requests.cpu must not exceed limits.cpu",
    ),
    AdmissionCase(
        "bad-quantity", perimeter(dispatcher={"resources": {"requests": {"memory": "lots"}}}),
        "spec.dispatcher.resources.requests.memory", "should match",
    ),
    AdmissionCase("missing-description", perimeter(description=None), "spec.description", "Required value"),
    AdmissionCase("perimeter-name-with-dot", perimeter(name="15.15"), "metadata.name", "perimeter name"),
    # -- VHostVersion ------------------------------------------------------------------------------------------
    AdmissionCase("invalid-version", vhost_version(version="1.5beta"), "spec.version", "should match"),
    AdmissionCase(
        "invalid-models-version", vhost_version(models={"version": "latest"}), "spec.models.version", "should match"
    ),
    AdmissionCase(
        "name-does-not-match-vhost", vhost_version(name="15-15-v1.6"), "metadata.name",
        "metadata.name must be 15-15-v1.5",
    ),
    AdmissionCase(
        "version-changed", vhost_version(), "spec.version", "version is immutable",
        update={"spec": {"version": "1.6"}}, models_reject=False,
    ),
    AdmissionCase(
        "perimeter-changed", vhost_version(), "spec.perimeterRef", "perimeterRef is immutable",
        update={"spec": {"perimeterRef": {"name": "15-smur"}}}, models_reject=False,
    ),
    AdmissionCase(
        "queue-type-changed", vhost_version(), "spec.queueType", "queueType is immutable",
        update={"spec": {"queueType": "quorum"}}, models_reject=False,
    ),
    AdmissionCase(
        "two-model-sources",
        vhost_version(models={"version": "1.1", "path": "/models/1.1", "image": {"reference": "models:1.1"}}),
        "spec.models", "set at most one bundle source",
    ),
    AdmissionCase(
        "relative-model-path", vhost_version(models={"version": "1.1", "path": "models/1.1"}),
        "spec.models.path", "should match",
    ),
    AdmissionCase(
        "unknown-profile", vhost_version(profile="v2"), "spec.profile", 'supported values: "current", "legacy"'
    ),
    AdmissionCase(
        "unknown-deletion-policy", vhost_version(deletionPolicy="destroy"),
        "spec.deletionPolicy", 'supported values: "retain", "delete"',
    ),
    AdmissionCase(
        "ttl-override-not-a-duration", vhost_version(messageTTL="one day"), "spec.messageTTL", "should match"
    ),
)
