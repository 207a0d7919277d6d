"""The test control plane is a real kube-apiserver: schemas are enforced, objects stored, watches work."""

from __future__ import annotations

import threading

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from hub_devenv.controlplane import LocalControlPlane

GROUP = "probe.foundation.hubsante.io"

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["replicas"],
                                "properties": {"replicas": {"type": "integer", "minimum": 1, "maximum": 5}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def widget_crd(cluster: LocalControlPlane) -> str:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(WIDGET_CRD))
    cluster.kubectl("wait", "--for=condition=Established", f"crd/widgets.{GROUP}", "--timeout=60s")
    return f"widgets.{GROUP}"


def _widget(name: str, replicas: object) -> dict[str, object]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"replicas": replicas}}


def test_object_violating_the_schema_is_rejected_with_422_naming_the_field(
    cluster: LocalControlPlane, widget_crd: str, namespace: str
) -> None:
    api = client.CustomObjectsApi(cluster.api_client())
    with pytest.raises(ApiException) as rejected:
        api.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", _widget("too-many", 9))
    assert rejected.value.status == 422
    assert "spec.replicas" in rejected.value.body
    assert "should be less than or equal to 5" in rejected.value.body


def test_valid_object_is_stored_and_seen_by_a_watch(cluster: LocalControlPlane, widget_crd: str, namespace: str) -> None:
    api = client.CustomObjectsApi(cluster.api_client())
    seen: list[str] = []
    ready = threading.Event()

    def watch_widgets() -> None:
        stream = watch.Watch()
        ready.set()
        for event in stream.stream(
            api.list_namespaced_custom_object, GROUP, "v1", namespace, "widgets", timeout_seconds=20
        ):
            seen.append(f"{event['type']}:{event['object']['metadata']['name']}")
            if event["object"]["metadata"]["name"] == "valid":
                stream.stop()

    watcher = threading.Thread(target=watch_widgets)
    watcher.start()
    ready.wait()
    api.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", _widget("valid", 3))
    watcher.join(timeout=30)
    assert "ADDED:valid" in seen
    stored = api.get_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "valid")
    assert stored["spec"] == {"replicas": 3}
    assert stored["metadata"]["resourceVersion"]


def test_rbac_authorization_is_enforced(cluster: LocalControlPlane, namespace: str, tmp_path) -> None:  # noqa: ANN001
    nobody = cluster.write_kubeconfig(tmp_path / "nobody.kubeconfig", "nobody")
    denied = cluster.kubectl("get", "pods", "-n", namespace, kubeconfig=nobody, check=False)
    assert denied.returncode != 0
    assert 'User "nobody" cannot list resource "pods"' in denied.stderr


def test_controller_manager_garbage_collects_dependents(cluster: LocalControlPlane, namespace: str) -> None:
    core = client.CoreV1Api(cluster.api_client())
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {
                "name": "dependent",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
                ],
            }
        },
    )
    core.delete_namespaced_config_map("owner", namespace)
    cluster.kubectl("wait", "--for=delete", "configmap/dependent", "-n", namespace, "--timeout=60s")
