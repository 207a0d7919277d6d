"""A valid dispatcher workload per bundle source kind, and the checks every rendered object must pass."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
from hub_operator.api.modelbundle import ModelBundle, ModelSourceKind
from hub_operator.builders.workloads import (
    DispatcherWorkload,
    OwnerReference,
    dispatcher_workload_name,
    preferences_config_map_name,
)

KUBERNETES_VERSION = "1.35"
VHOST_VERSION = "15-15-v2.0"
OWNER = OwnerReference(name=VHOST_VERSION, uid="0b6f4d3e-8f7a-4c49-9d6e-1f2a3b4c5d6e")

BUNDLES: dict[ModelSourceKind, ModelBundle] = {
    ModelSourceKind.BUILTIN: ModelBundle(version="2.2"),
    ModelSourceKind.PATH: ModelBundle(version="1.1", path="/srv/models/1.1"),
    ModelSourceKind.IMAGE: ModelBundle.model_validate(
        {"version": "2.2", "image": {"reference": "registry.example.org/hubsante/models:2.2", "path": "/models/2.2",
                                     "pullPolicy": "Always"}}
    ),
    ModelSourceKind.CONFIG_MAPS: ModelBundle.model_validate(
        {"version": "3.4.1", "configMaps": [
            {"name": "models-3-4-1-root"},
            {"name": "models-3-4-1-json", "directory": "json-schema"},
            {"name": "models-3-4-1-xsd", "directory": "xsd"},
        ]}
    ),
}
CONFIG_MAP_KEYS = {
    "models-3-4-1-json": ["RC-EDA.schema.json", "EDXL-DE-full.schema.json"],
    "models-3-4-1-xsd": ["EDXL-DE-full.xsd", "RC-XML-ContentType.xsd"],
}


def make_workload(kind: ModelSourceKind = ModelSourceKind.BUILTIN, **overrides: Any) -> DispatcherWorkload:
    values: dict[str, Any] = {
        "name": dispatcher_workload_name(VHOST_VERSION),
        "namespace": "hub-integration",
        "owner": OWNER,
        "vhost": "15-15_v2.0",
        "image": "registry.example.org/hubsante/hub-dispatcher:0.1.0",
        "replicas": 2,
        "message_ttl_ms": 6 * 3600 * 1000,
        "models": BUNDLES[kind],
        "models_config_map_keys": CONFIG_MAP_KEYS if kind is ModelSourceKind.CONFIG_MAPS else {},
        "amqps_host": "rabbitmq.hub-integration.svc",
        "amqps_port": 5671,
        "tls_secret_name": "dispatcher-15-15-v2-0-tls",
        "preferences_config_map": preferences_config_map_name(VHOST_VERSION),
    }
    values.update(overrides)
    return DispatcherWorkload(**values)


_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def assert_valid_object(manifest: dict[str, Any]) -> None:
    """Strict schema of Kubernetes 1.35 (unknown fields refused), plus the label rules the schema omits."""
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    metadata = manifest["metadata"]
    labels = dict(metadata.get("labels", {}))
    if manifest["kind"] == "Deployment":
        labels.update(manifest["spec"]["template"]["metadata"]["labels"])
    for key, value in labels.items():
        assert len(value) <= 63 and _LABEL_VALUE.match(value), f"label {key}={value!r}"
    assert len(metadata["name"]) <= 253


def containers(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pod = deployment["spec"]["template"]["spec"]
    return {container["name"]: container for container in pod.get("initContainers", []) + pod["containers"]}


def volumes(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}


def mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {mount["name"]: mount for mount in container.get("volumeMounts", [])}


def environment(container: dict[str, Any]) -> dict[str, str]:
    return {variable["name"]: variable["value"] for variable in container["env"]}
