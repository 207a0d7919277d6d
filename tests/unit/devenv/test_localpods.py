"""The local node's translation of a dispatcher pod into a local process (pure: rendered manifests in, plan out).

The pods are the operator's own render (``render_dispatcher_manifests``) for each bundle source, so a change of
the Deployment template that the local node would not run faithfully fails here, not in the demo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hub_devenv.localpods import (
    InitCopy,
    ProjectedSource,
    UnsupportedPod,
    VolumePlan,
    container_ports,
    plan_container,
    plan_init_copies,
    plan_volumes,
)
from hub_operator.api.modelbundle import ModelSourceKind
from hub_operator.builders.workloads import render_dispatcher_manifests

from tests.unit.workloads.workloads_support import make_workload

MODELS_ROOT = Path("/local/hubsante-models")
BUNDLE_IMAGE = "registry.example.org/hubsante/models:2.2"


def dispatcher_pod(kind: ModelSourceKind = ModelSourceKind.BUILTIN, **overrides: Any) -> dict[str, Any]:
    """A pod as the ReplicaSet controller creates it from the operator's Deployment."""
    deployment = render_dispatcher_manifests(make_workload(kind, **overrides))[0]
    template = deployment["spec"]["template"]
    return {"metadata": {"name": "dispatcher-15-15-v2-0-abc12-xyz", **template["metadata"]}, "spec": template["spec"]}


def resolve_image_path(image: str, path: str) -> Path | None:
    """The local node's rule: the bundle image is the local bundle; the project image keeps bundles in /opt."""
    if image == BUNDLE_IMAGE:
        return MODELS_ROOT / "2.2"
    if path.startswith("/opt/hubsante-models/"):
        return MODELS_ROOT / path.removeprefix("/opt/hubsante-models/")
    return None


@pytest.fixture
def scripts_dir(tmp_path: Path) -> Path:
    (tmp_path / "hub-dispatcher").write_text("#!/bin/sh\n")
    return tmp_path


def plan(pod: dict[str, Any], scripts_dir: Path, tmp_path: Path, **options: Any):
    volume_dirs = {volume.name: tmp_path / "volumes" / volume.name for volume in plan_volumes(pod)}
    values: dict[str, Any] = {
        "volume_dirs": volume_dirs,
        "resolve_image_path": resolve_image_path,
        "local_ports": {port: 41000 + index for index, port in enumerate(container_ports(pod))},
        "scripts_dir": scripts_dir,
        "inherited_env": {"PATH": "/usr/bin", "HOME": "/root", "HUB_OPERATOR_KUBECONFIG": "/secret",
                          "HUB_DISPATCHER_PREFETCH": "1", "KUBECONFIG": "/admin"},
    }
    values.update(options)
    return plan_container(pod, **values), volume_dirs


def test_volumes_are_the_tls_secret_the_preferences_config_map_and_scratch_space() -> None:
    volumes = {volume.name: volume for volume in plan_volumes(dispatcher_pod())}
    assert volumes["tls"] == VolumePlan("tls", (ProjectedSource(
        "Secret", "dispatcher-15-15-v2-0-tls", (("ca.crt", "ca.crt"), ("tls.crt", "tls.crt"), ("tls.key", "tls.key")),
        0o440),))
    assert volumes["preferences"] == VolumePlan("preferences", (ProjectedSource(
        "ConfigMap", "dispatcher-15-15-v2-0-preferences", None, 0o444),))
    assert volumes["tmp"] == VolumePlan("tmp")
    assert "models" not in volumes  # a builtin bundle is in the image: nothing mounted


def test_the_container_runs_the_projects_console_script_with_its_environment_translated(
    scripts_dir: Path, tmp_path: Path
) -> None:
    container, volume_dirs = plan(dispatcher_pod(), scripts_dir, tmp_path)
    env = container.env
    assert container.argv == (str(scripts_dir / "hub-dispatcher"),)
    assert env["HUB_DISPATCHER_VHOST"] == "15-15_v2.0"
    assert env["HUB_DISPATCHER_TLS_CERT_FILE"] == str(volume_dirs["tls"] / "tls.crt")
    assert env["HUB_DISPATCHER_TLS_KEY_FILE"] == str(volume_dirs["tls"] / "tls.key")
    assert env["HUB_DISPATCHER_TLS_CA_FILE"] == str(volume_dirs["tls"] / "ca.crt")
    assert env["HUB_DISPATCHER_PREFERENCES_FILE"] == str(volume_dirs["preferences"] / "preferences.yaml")
    assert env["HUB_DISPATCHER_BUNDLE_DIR"] == str(MODELS_ROOT / "2.2")
    assert env["HUB_DISPATCHER_AMQP_URL"] == "amqps://rabbitmq.hub-integration.svc:5671/"
    assert env["TMPDIR"] == str(volume_dirs["tmp"])


def test_each_pod_gets_its_own_loopback_port_and_probes_follow_it(scripts_dir: Path, tmp_path: Path) -> None:
    container, _ = plan(dispatcher_pod(), scripts_dir, tmp_path, local_ports={9102: 45678})
    assert container.ports == {9102: 45678}
    assert container.env["HUB_DISPATCHER_METRICS_PORT"] == "45678"
    assert container.env["HUB_DISPATCHER_METRICS_HOST"] == "127.0.0.1"
    assert container.readiness_url == "http://127.0.0.1:45678/readyz"
    assert container.liveness_url == "http://127.0.0.1:45678/healthz"


def test_only_what_the_pod_declares_reaches_the_process(scripts_dir: Path, tmp_path: Path) -> None:
    container, _ = plan(dispatcher_pod(), scripts_dir, tmp_path)
    assert container.env["PATH"] == "/usr/bin"
    assert "HUB_OPERATOR_KUBECONFIG" not in container.env
    assert "KUBECONFIG" not in container.env
    assert "HUB_DISPATCHER_PREFETCH" not in container.env  # the node's own setting, not the pod's


def test_a_bundle_path_in_the_image_maps_to_the_local_models_root(scripts_dir: Path, tmp_path: Path) -> None:
    pod = dispatcher_pod(ModelSourceKind.PATH)
    pod["spec"]["containers"][0]["env"] = [
        {"name": "HUB_DISPATCHER_BUNDLE_DIR", "value": "/opt/hubsante-models/1.1"} if e["name"] == "HUB_DISPATCHER_BUNDLE_DIR"
        else e for e in pod["spec"]["containers"][0]["env"]
    ]
    container, _ = plan(pod, scripts_dir, tmp_path)
    assert container.env["HUB_DISPATCHER_BUNDLE_DIR"] == str(MODELS_ROOT / "1.1")


def test_a_path_with_no_local_stand_in_is_left_as_the_pod_says(scripts_dir: Path, tmp_path: Path) -> None:
    container, _ = plan(dispatcher_pod(ModelSourceKind.PATH), scripts_dir, tmp_path)
    assert container.env["HUB_DISPATCHER_BUNDLE_DIR"] == "/srv/models/1.1"  # the dispatcher then says it is missing


def test_a_bundle_image_is_copied_by_its_init_container_into_the_models_volume(scripts_dir: Path, tmp_path: Path) -> None:
    pod = dispatcher_pod(ModelSourceKind.IMAGE)
    assert plan_init_copies(pod) == [InitCopy("models", BUNDLE_IMAGE, "/models/2.2", "models")]
    container, volume_dirs = plan(pod, scripts_dir, tmp_path)
    assert container.env["HUB_DISPATCHER_BUNDLE_DIR"] == str(volume_dirs["models"])


def test_a_bundle_in_config_maps_is_projected_key_by_key_into_its_directories() -> None:
    volumes = {volume.name: volume for volume in plan_volumes(dispatcher_pod(ModelSourceKind.CONFIG_MAPS))}
    sources = {source.name: source for source in volumes["models"].sources}
    assert sources["models-3-4-1-root"].items is None
    assert sources["models-3-4-1-json"].items == (
        ("EDXL-DE-full.schema.json", "json-schema/EDXL-DE-full.schema.json"),
        ("RC-EDA.schema.json", "json-schema/RC-EDA.schema.json"),
    )
    assert {source.kind for source in sources.values()} == {"ConfigMap"}


@pytest.mark.parametrize(("change", "problem"), [
    (lambda pod: pod["spec"]["containers"][0]["env"].append(
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}), "valueFrom"),
    (lambda pod: pod["spec"]["volumes"].append({"name": "data", "hostPath": {"path": "/data"}}), "hostPath"),
    (lambda pod: pod["spec"]["containers"][0].update(command=["sh", "-c", "sleep 1"]), "not a program of this project"),
    (lambda pod: pod["spec"].update(initContainers=[{"name": "wait", "command": ["sleep", "5"]}]), "cp -R"),
    (lambda pod: pod["spec"]["containers"].append({"name": "sidecar", "command": ["hub-dispatcher"]}), "2 containers"),
])
def test_what_cannot_run_faithfully_is_refused_with_the_reason(change, problem: str, scripts_dir: Path,
                                                              tmp_path: Path) -> None:
    pod = dispatcher_pod()
    change(pod)
    with pytest.raises(UnsupportedPod, match=problem):
        plan_init_copies(pod)
        plan(pod, scripts_dir, tmp_path)


def test_volume_items_cannot_escape_their_volume() -> None:
    pod = dispatcher_pod()
    pod["spec"]["volumes"][0]["secret"]["items"][0]["path"] = "../../etc/passwd"
    with pytest.raises(UnsupportedPod, match="leaves its volume"):
        plan_volumes(pod)
