"""Dispatcher Deployment, metrics Service and PodDisruptionBudget rendered from a DispatcherWorkload."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
from hub_devenv.paths import REPO_ROOT
from hub_dispatcher.protocol import ProtocolProfile
from hub_operator.api.dispatching import ResourceRequirements
from hub_operator.api.modelbundle import ModelSourceKind
from hub_operator.builders.workloads import (
    DEFAULT_DISPATCHER_RESOURCES,
    DISPATCHER_COMMAND,
    MODELS_CHECKSUM_ANNOTATION,
    TLS_CHECKSUM_ANNOTATION,
    InvalidWorkload,
    OwnerReference,
    data_checksum,
    manifests_yaml,
    render_dispatcher_manifests,
)

from tests.unit.workloads.workloads_support import (
    CONFIG_MAP_KEYS,
    OWNER,
    assert_valid_object,
    containers,
    environment,
    make_workload,
    mounts,
    volumes,
)

ALL_KINDS = list(ModelSourceKind)


def _by_kind(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {manifest["kind"]: manifest for manifest in manifests}


def _deployment(**overrides: Any) -> dict[str, Any]:
    kind = overrides.pop("kind", ModelSourceKind.BUILTIN)
    return _by_kind(render_dispatcher_manifests(make_workload(kind, **overrides)))["Deployment"]


# -- validity and determinism ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda kind: kind.value)
@pytest.mark.parametrize("replicas", [0, 1, 3])
def test_every_object_passes_strict_kubernetes_schema(kind: ModelSourceKind, replicas: int) -> None:
    manifests = render_dispatcher_manifests(make_workload(kind, replicas=replicas, tls_checksum="a1b2",
                                                          image_pull_secrets=("registry-credentials",)))
    for manifest in manifests:
        assert_valid_object(manifest)


def test_strict_validation_is_not_vacuous() -> None:
    deployment = _deployment()
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.35", strict=True)


def test_kubernetes_validate_cli_accepts_the_yaml_stream(tmp_path: Path) -> None:
    stream = tmp_path / "dispatcher.yaml"
    stream.write_text(manifests_yaml(render_dispatcher_manifests(make_workload(ModelSourceKind.IMAGE))))
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--kubernetes-version", "1.35", str(stream)],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == 3


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda kind: kind.value)
def test_rendering_is_deterministic_whatever_the_input_order(kind: ModelSourceKind) -> None:
    first = make_workload(kind, extra_labels={"team": "samu", "env": "integration"},
                          extra_annotations={"b.example.org/x": "1", "a.example.org/y": "2"},
                          image_pull_secrets=("b-registry", "a-registry"), allowed_use_cases=("reference", "createCase"))
    second = make_workload(kind, extra_labels={"env": "integration", "team": "samu"},
                           extra_annotations={"a.example.org/y": "2", "b.example.org/x": "1"},
                           image_pull_secrets=("a-registry", "b-registry", "a-registry"),
                           allowed_use_cases=("createCase", "reference"))
    assert first == second
    assert manifests_yaml(render_dispatcher_manifests(first)) == manifests_yaml(render_dispatcher_manifests(second))
    assert render_dispatcher_manifests(first) == render_dispatcher_manifests(second)


# -- metadata, owner, replicas ---------------------------------------------------------------------------------


def test_labels_owner_and_selector() -> None:
    manifests = render_dispatcher_manifests(make_workload(extra_labels={"team": "samu"}))
    assert [manifest["kind"] for manifest in manifests] == ["Deployment", "Service", "PodDisruptionBudget"]
    expected_labels = {
        "app.kubernetes.io/name": "hub-dispatcher",
        "app.kubernetes.io/instance": "dispatcher-15-15-v2-0",
        "app.kubernetes.io/component": "dispatcher",
        "app.kubernetes.io/part-of": "hub-sante",
        "app.kubernetes.io/managed-by": "hub-operator",
        "hubsante.io/vhost": "15-15_v2.0",
        "hubsante.io/vhost-version": "15-15-v2.0",
        "team": "samu",
    }
    selector = {"app.kubernetes.io/name": "hub-dispatcher", "app.kubernetes.io/instance": "dispatcher-15-15-v2-0"}
    for manifest in manifests:
        metadata = manifest["metadata"]
        assert (metadata["name"], metadata["namespace"]) == ("dispatcher-15-15-v2-0", "hub-integration")
        assert metadata["labels"] == expected_labels
        assert metadata["ownerReferences"] == [{
            "apiVersion": "hubsante.io/v1alpha1", "kind": "VHostVersion", "name": "15-15-v2.0",
            "uid": OWNER.uid, "controller": True, "blockOwnerDeletion": True,
        }]
    deployment, service, budget = manifests
    assert deployment["spec"]["selector"] == {"matchLabels": selector}
    assert deployment["spec"]["template"]["metadata"]["labels"] == expected_labels
    assert service["spec"]["selector"] == selector
    assert budget["spec"]["selector"] == {"matchLabels": selector}


def test_owner_reference_of_a_stored_object() -> None:
    body = {"apiVersion": "hubsante.io/v1alpha1", "kind": "VHostVersion",
            "metadata": {"name": "15-smur-v1.4", "uid": "1234", "namespace": "hub"}}
    assert OwnerReference.of(body) == OwnerReference(name="15-smur-v1.4", uid="1234")
    with pytest.raises(InvalidWorkload, match="uid must be a non-empty string"):
        OwnerReference.of({"metadata": {"name": "15-smur-v1.4"}})
    with pytest.raises(InvalidWorkload, match="not a Kubernetes object name"):
        OwnerReference(name="15_smur", uid="1234")


@pytest.mark.parametrize(("replicas", "kinds"), [
    (0, ["Deployment", "Service"]),
    (1, ["Deployment", "Service"]),
    (2, ["Deployment", "Service", "PodDisruptionBudget"]),
    (20, ["Deployment", "Service", "PodDisruptionBudget"]),
])
def test_replicas_and_disruption_budget(replicas: int, kinds: list[str]) -> None:
    manifests = render_dispatcher_manifests(make_workload(replicas=replicas))
    assert [manifest["kind"] for manifest in manifests] == kinds
    assert manifests[0]["spec"]["replicas"] == replicas
    if replicas > 1:
        assert manifests[2]["spec"]["maxUnavailable"] == 1
        assert manifests[2]["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_rolling_update_never_lowers_capacity_and_leaves_time_to_drain() -> None:
    deployment = _deployment(termination_grace_period_seconds=120)
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 120
    assert _deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60


# -- pod: security, probes, metrics, scheduling, resources ----------------------------------------------------------


@pytest.mark.parametrize("kind", [ModelSourceKind.BUILTIN, ModelSourceKind.IMAGE], ids=lambda kind: kind.value)
def test_restricted_security_context_on_every_container(kind: ModelSourceKind) -> None:
    deployment = _deployment(kind=kind)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert len(containers(deployment)) == (2 if kind is ModelSourceKind.IMAGE else 1)
    for container in containers(deployment).values():
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }


def test_probes_and_metrics_port() -> None:
    deployment = _deployment(metrics_port=9200)
    dispatcher = containers(deployment)["dispatcher"]
    assert dispatcher["ports"] == [{"name": "metrics", "containerPort": 9200, "protocol": "TCP"}]
    assert dispatcher["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert dispatcher["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert dispatcher["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert environment(dispatcher)["HUB_DISPATCHER_METRICS_PORT"] == "9200"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": "9200",
                           "prometheus.io/path": "/metrics"}
    service = _by_kind(render_dispatcher_manifests(make_workload(metrics_port=9200)))["Service"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9200, "targetPort": "metrics", "protocol": "TCP"}]


def test_soft_spreading_across_nodes_and_zones() -> None:
    constraints = _deployment()["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {constraint["topologyKey"] for constraint in constraints} == {
        "kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert {constraint["whenUnsatisfiable"] for constraint in constraints} == {"ScheduleAnyway"}


def test_resources_from_the_spec_or_the_operator_defaults() -> None:
    spec_resources = ResourceRequirements.model_validate(
        {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}})
    for kind in (ModelSourceKind.BUILTIN, ModelSourceKind.IMAGE):
        for container in containers(_deployment(kind=kind, resources=spec_resources)).values():
            assert container["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"},
                                              "limits": {"cpu": 1, "memory": "1Gi"}}
    assert containers(_deployment())["dispatcher"]["resources"] == DEFAULT_DISPATCHER_RESOURCES.to_wire()


def test_checksums_and_extra_annotations_reach_the_pod() -> None:
    tls = data_checksum({"tls.crt": "cert", "tls.key": b"key", "ca.crt": "ca"})
    models = data_checksum({"RC-EDA.schema.json": "{}"})
    deployment = _deployment(tls_checksum=tls, models_checksum=models, extra_annotations={"example.org/owner": "samu"})
    pod_annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert pod_annotations[TLS_CHECKSUM_ANNOTATION] == tls
    assert pod_annotations[MODELS_CHECKSUM_ANNOTATION] == models
    assert pod_annotations["example.org/owner"] == "samu"
    assert deployment["metadata"]["annotations"] == {"example.org/owner": "samu"}


def test_data_checksum_depends_on_every_key_and_value_but_not_on_order() -> None:
    base = data_checksum({"a": "1", "b": "2"})
    assert base == data_checksum({"b": "2", "a": "1"}) == data_checksum({"a": b"1", "b": b"2"})
    assert len({base, data_checksum({"a": "1", "b": "3"}), data_checksum({"a": "12", "b": ""}),
                data_checksum({"a": "1"})}) == 4


def test_image_pull_secrets() -> None:
    pod = _deployment(image_pull_secrets=("regcred",), image_pull_policy="Always")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    assert "imagePullSecrets" not in _deployment()["spec"]["template"]["spec"]


# -- TLS, preferences and model bundle mounts --------------------------------------------------------------------


def _mounted_file(deployment: dict[str, Any], volume_name: str, env_value: str) -> str:
    """The key of ``volume_name`` that the path ``env_value`` designates (asserting it is on that volume)."""
    mount = mounts(containers(deployment)["dispatcher"])[volume_name]
    path = PurePosixPath(env_value)
    assert path.parent == PurePosixPath(mount["mountPath"]), (env_value, mount)
    assert mount["readOnly"] is True
    assert "subPath" not in mount
    return path.name


def test_tls_secret_mounted_read_only_and_the_settings_point_into_it() -> None:
    deployment = _deployment()
    env = environment(containers(deployment)["dispatcher"])
    secret = volumes(deployment)["tls"]["secret"]
    assert secret["secretName"] == "dispatcher-15-15-v2-0-tls"
    assert secret["defaultMode"] == 0o440
    keys = {item["key"] for item in secret["items"]}
    assert {_mounted_file(deployment, "tls", env[f"HUB_DISPATCHER_TLS_{name}_FILE"])
            for name in ("CA", "CERT", "KEY")} == keys == {"ca.crt", "tls.crt", "tls.key"}
    assert env["HUB_DISPATCHER_AMQP_URL"] == "amqps://rabbitmq.hub-integration.svc:5671/"


def test_preferences_config_map_mounted_whole_so_updates_propagate() -> None:
    deployment = _deployment()
    env = environment(containers(deployment)["dispatcher"])
    assert volumes(deployment)["preferences"]["configMap"]["name"] == "dispatcher-15-15-v2-0-preferences"
    assert "items" not in volumes(deployment)["preferences"]["configMap"]
    assert _mounted_file(deployment, "preferences", env["HUB_DISPATCHER_PREFERENCES_FILE"]) == "preferences.yaml"


@pytest.mark.parametrize(("kind", "bundle_dir"), [
    (ModelSourceKind.BUILTIN, "/opt/hubsante-models/2.2"),
    (ModelSourceKind.PATH, "/srv/models/1.1"),
])
def test_bundle_inside_the_image_mounts_nothing(kind: ModelSourceKind, bundle_dir: str) -> None:
    deployment = _deployment(kind=kind)
    assert environment(containers(deployment)["dispatcher"])["HUB_DISPATCHER_BUNDLE_DIR"] == bundle_dir
    assert "models" not in volumes(deployment)
    assert "initContainers" not in deployment["spec"]["template"]["spec"]


def test_builtin_bundle_follows_the_models_root() -> None:
    deployment = _deployment(models_root="/work/hubsante-models")
    assert environment(containers(deployment)["dispatcher"])["HUB_DISPATCHER_BUNDLE_DIR"] == "/work/hubsante-models/2.2"


def test_image_bundle_copied_by_an_init_container_into_an_empty_dir() -> None:
    deployment = _deployment(kind=ModelSourceKind.IMAGE)
    copier = containers(deployment)["models"]
    dispatcher = containers(deployment)["dispatcher"]
    assert deployment["spec"]["template"]["spec"]["initContainers"] == [copier]
    assert copier["image"] == "registry.example.org/hubsante/models:2.2"
    assert copier["imagePullPolicy"] == "Always"
    assert "emptyDir" in volumes(deployment)["models"]
    target = mounts(copier)["models"]["mountPath"]
    assert mounts(copier)["models"].get("readOnly") is not True
    assert copier["command"] == ["cp", "-R", "/models/2.2/.", target]
    assert mounts(dispatcher)["models"] == {"name": "models", "mountPath": target, "readOnly": True}
    assert environment(dispatcher)["HUB_DISPATCHER_BUNDLE_DIR"] == target


def test_image_bundle_at_the_image_root() -> None:
    workload = make_workload(ModelSourceKind.IMAGE)
    root = workload.models.model_copy(update={"image": workload.models.image.model_copy(update={"path": "/"})})
    deployment = _by_kind(render_dispatcher_manifests(dataclasses.replace(workload, models=root)))["Deployment"]
    assert containers(deployment)["models"]["command"][:3] == ["cp", "-R", "/."]


def test_config_map_bundle_projected_each_into_its_directory() -> None:
    deployment = _deployment(kind=ModelSourceKind.CONFIG_MAPS)
    projected = volumes(deployment)["models"]["projected"]
    assert projected["sources"] == [
        {"configMap": {"name": "models-3-4-1-root"}},
        {"configMap": {"name": "models-3-4-1-json", "items": [
            {"key": "EDXL-DE-full.schema.json", "path": "json-schema/EDXL-DE-full.schema.json"},
            {"key": "RC-EDA.schema.json", "path": "json-schema/RC-EDA.schema.json"},
        ]}},
        {"configMap": {"name": "models-3-4-1-xsd", "items": [
            {"key": "EDXL-DE-full.xsd", "path": "xsd/EDXL-DE-full.xsd"},
            {"key": "RC-XML-ContentType.xsd", "path": "xsd/RC-XML-ContentType.xsd"},
        ]}},
    ]
    dispatcher = containers(deployment)["dispatcher"]
    assert environment(dispatcher)["HUB_DISPATCHER_BUNDLE_DIR"] == mounts(dispatcher)["models"]["mountPath"]
    assert mounts(dispatcher)["models"]["readOnly"] is True


@pytest.mark.parametrize(("keys", "message"), [
    ({"models-3-4-1-json": ["a.json"]}, "models-3-4-1-xsd goes to directory xsd: its keys are needed"),
    ({"models-3-4-1-json": ["a.json"], "models-3-4-1-xsd": ["a.xsd"], "other": ["x"]},
     "names ConfigMaps the bundle does not use: other"),
    ({"models-3-4-1-json": [], "models-3-4-1-xsd": ["a.xsd"]}, "models-3-4-1-json has no keys"),
    ({"models-3-4-1-json": ["../escape"], "models-3-4-1-xsd": ["a.xsd"]}, "'../escape' is not a ConfigMap key"),
])
def test_config_map_bundle_keys_errors(keys: dict[str, list[str]], message: str) -> None:
    with pytest.raises(InvalidWorkload, match=re.escape(message)):
        make_workload(ModelSourceKind.CONFIG_MAPS, models_config_map_keys=keys)


def test_config_map_at_the_bundle_root_lists_its_keys_when_known() -> None:
    keys = {**CONFIG_MAP_KEYS, "models-3-4-1-root": ["VERSION"]}
    deployment = _deployment(kind=ModelSourceKind.CONFIG_MAPS, models_config_map_keys=keys)
    assert volumes(deployment)["models"]["projected"]["sources"][0] == {
        "configMap": {"name": "models-3-4-1-root", "items": [{"key": "VERSION", "path": "VERSION"}]}}


def test_config_map_bundle_keys_colliding_on_one_path() -> None:
    workload = make_workload(ModelSourceKind.CONFIG_MAPS)
    same_directory = workload.models.model_copy(update={"config_maps": [
        config_map.model_copy(update={"directory": "xsd"}) for config_map in workload.models.config_maps or ()]})
    with pytest.raises(InvalidWorkload, match="bundle file xsd/a.xsd comes from both ConfigMaps"):
        dataclasses.replace(workload, models=same_directory, models_config_map_keys={
            "models-3-4-1-root": ["a.xsd"], "models-3-4-1-json": ["b.xsd"], "models-3-4-1-xsd": ["a.xsd"]})


def test_config_map_keys_only_for_a_config_map_bundle() -> None:
    with pytest.raises(InvalidWorkload, match="only for a configMaps bundle \\(this one is image\\)"):
        make_workload(ModelSourceKind.IMAGE, models_config_map_keys={"x": ["y"]})


# -- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "message"), [
    ({"name": "dispatcher-15-15-v2.0"}, "must be a DNS-1035 label"),
    ({"name": "d" * 64}, "must be a DNS-1035 label"),
    ({"namespace": "Hub"}, "not a namespace name"),
    ({"owner": {"name": "x"}}, "owner must be an OwnerReference"),
    ({"vhost": "/15-15_v2.0"}, "no leading slash"),
    ({"vhost": ""}, "no leading slash"),
    ({"profile": "modern"}, "'modern' is not a valid ProtocolProfile"),
    ({"image": ""}, "image '' must be a non-empty image reference"),
    ({"image": "repo/image: latest"}, "without spaces"),
    ({"image_pull_policy": "Sometimes"}, "'Sometimes' is not a valid ImagePullPolicy"),
    ({"image_pull_secrets": "regcred"}, "image_pull_secrets must be a sequence of strings, not a single string"),
    ({"image_pull_secrets": ("Reg_Cred",)}, "image_pull_secrets\\[Reg_Cred\\] 'Reg_Cred' is not a Kubernetes object name"),
    ({"replicas": -1}, "replicas must be a non-negative integer"),
    ({"replicas": True}, "replicas must be a non-negative integer"),
    ({"resources": {"requests": {"cpu": "1"}}}, "resources must be a ResourceRequirements"),
    ({"allowed_use_cases": ("createCase", "sendPizza")}, "unknown use-case keys sendPizza"),
    ({"allowed_use_cases": "createCase"}, "must be a sequence of strings"),
    ({"message_ttl_ms": 0}, "message_ttl_ms must be a positive integer"),
    ({"models": {"version": "2.2"}}, "models must be a ModelBundle"),
    ({"models_root": "models"}, "must be an absolute path"),
    ({"amqps_host": ""}, "must be a host name or IP address"),
    ({"amqps_host": "user@rabbit"}, "must be a host name or IP address"),
    ({"amqps_port": 0}, "amqps_port must be a port number"),
    ({"amqps_port": 70000}, "amqps_port must be a port number"),
    ({"tls_secret_name": "Dispatcher_TLS"}, "tls_secret_name 'Dispatcher_TLS' is not a Kubernetes object name"),
    ({"preferences_config_map": ""}, "preferences_config_map '' is not a Kubernetes object name"),
    ({"metrics_port": 80}, "metrics_port must be between 1024 and 65535"),
    ({"models_config_map_keys": ["a.json"]}, "models_config_map_keys must map ConfigMap names to their keys"),
    ({"termination_grace_period_seconds": 0}, "termination_grace_period_seconds must be a positive integer"),
    ({"extra_labels": {"app.kubernetes.io/instance": "x"}}, "may not replace the standard label"),
    ({"extra_labels": {"team": "SAMU 50"}}, "is not a label value"),
    ({"extra_labels": {"bad key!": "x"}}, "is not a label key"),
    ({"extra_labels": {"team": 50}}, "keys and values must be strings"),
    ({"extra_labels": ["team"]}, "extra_labels must be a mapping of strings"),
    ({"extra_annotations": {"prometheus.io/port": "1"}}, "may not replace prometheus.io/port"),
    ({"extra_annotations": {TLS_CHECKSUM_ANNOTATION: "1"}}, "may not replace hubsante.io/tls-checksum"),
    ({"tls_checksum": "not a digest"}, "must be a digest"),
])
def test_bad_workload_is_refused_with_a_clear_error(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidWorkload, match=message):
        make_workload(**overrides)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidWorkload) as caught:
        make_workload(replicas=-1, amqps_port=0, metrics_port=22)
    assert all(field_name in str(caught.value) for field_name in ("replicas", "amqps_port", "metrics_port"))


def test_ipv6_broker_address_is_bracketed() -> None:
    assert make_workload(amqps_host="fd00::15").amqp_url == "amqps://[fd00::15]:5671/"


def test_workload_is_immutable() -> None:
    workload = make_workload(extra_labels={"team": "samu"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        workload.replicas = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        workload.extra_labels["team"] = "other"  # type: ignore[index]


def test_profile_is_coerced_and_rendered() -> None:
    workload = make_workload(profile="legacy")
    assert workload.profile is ProtocolProfile.LEGACY
    assert environment(containers(_deployment(profile="legacy"))["dispatcher"])["HUB_DISPATCHER_PROFILE"] == "legacy"


def test_dispatcher_container_runs_the_dispatcher_console_script() -> None:
    """The project ships one image whose default command is the operator: dispatcher pods must say otherwise."""
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    container = containers(_deployment())["dispatcher"]
    assert container["command"] == list(DISPATCHER_COMMAND)
    assert scripts[container["command"][0]] == "hub_dispatcher.main:main"
