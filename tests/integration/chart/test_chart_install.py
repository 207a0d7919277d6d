"""`helm install` of charts/hub-operator on the local API server: the objects are there, the API server's own
authorizer grants the ServiceAccount exactly the rendered rules, the CA survives upgrades, bad values never
reach the cluster."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_devenv.controlplane import LocalControlPlane, ToolFailed
from hub_operator import pki
from hub_operator.api.crdgen import KINDS
from hub_operator.settings import DEFAULT_IMAGE

from tests.integration.chart.chart_release import ChartRelease

pytestmark = [pytest.mark.cluster]


@pytest.fixture
def release(cluster: LocalControlPlane, namespace: str, tmp_path: Path) -> Iterator[ChartRelease]:
    installed = ChartRelease(cluster, f"hub-{os.urandom(3).hex()}", namespace, tmp_path / "values.yaml")
    yield installed
    installed.uninstall()


def _can_i(cluster: LocalControlPlane, service_account: str, verb: str, resource: str, namespace: str) -> bool:
    result = cluster.kubectl("auth", "can-i", verb, resource, f"--as={service_account}", "-n", namespace, check=False)
    return result.stdout.strip() == "yes"


def test_install_creates_the_operator_its_rbac_crds_and_ca(cluster: LocalControlPlane, release: ChartRelease) -> None:
    release.install({})
    release.wait_for_crds()
    for info in KINDS:
        assert release.get("crd", info.crd_name, cluster_scoped=True) is not None

    deployment = release.get("deployment", release.fullname)
    assert deployment is not None
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == DEFAULT_IMAGE
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == release.fullname
    assert release.get("serviceaccount", release.fullname) is not None
    cluster_name = f"{release.namespace}-{release.fullname}"
    assert release.get("clusterrole", cluster_name, cluster_scoped=True) is not None
    assert release.get("clusterrolebinding", cluster_name, cluster_scoped=True) is not None
    assert release.get("role", f"{release.fullname}-operator-namespace") is not None

    # The API server's authorizer, asked as the ServiceAccount: what the operator does, and nothing more.
    service_account = f"system:serviceaccount:{release.namespace}:{release.fullname}"
    elsewhere = "default"
    assert _can_i(cluster, service_account, "patch", "hubclients.hubsante.io/status", elsewhere)
    assert _can_i(cluster, service_account, "watch", "vhostversions.hubsante.io", elsewhere)
    assert _can_i(cluster, service_account, "create", "secrets", elsewhere)
    assert _can_i(cluster, service_account, "create", "leases.coordination.k8s.io", release.namespace)
    assert not _can_i(cluster, service_account, "create", "leases.coordination.k8s.io", elsewhere)
    assert not _can_i(cluster, service_account, "delete", "secrets", elsewhere)
    assert not _can_i(cluster, service_account, "list", "secrets", elsewhere)
    assert not _can_i(cluster, service_account, "update", "hubclients.hubsante.io", elsewhere)
    assert not _can_i(cluster, service_account, "create", "pods", release.namespace)

    # The Helm-generated CA: usable by the operator, and the same after an upgrade that changes other values.
    ca = release.get("secret", "hub-operator-ca")
    assert ca is not None and ca["type"] == "kubernetes.io/tls"
    authority = pki.CertificateAuthority.from_pem(base64.b64decode(ca["data"]["tls.crt"]),
                                                  base64.b64decode(ca["data"]["tls.key"]))
    assert authority.issue("fr.health.samu050") is not None
    release.upgrade("--set", "operator.logLevel=DEBUG")
    after = release.get("secret", "hub-operator-ca")
    assert after is not None and after["data"] == ca["data"]
    env = release.operator_environment()
    assert env["HUB_OPERATOR_LOG_LEVEL"] == "DEBUG"

    # Uninstalling removes the cluster-wide grants but keeps the CA (certificates it issued stay verifiable).
    release.uninstall()
    assert release.get("clusterrole", cluster_name, cluster_scoped=True) is None
    assert release.get("deployment", release.fullname) is None
    assert release.get("secret", "hub-operator-ca") is not None


def test_install_with_bad_values_is_refused_before_anything_is_created(release: ChartRelease) -> None:
    with pytest.raises(ToolFailed) as refused:
        release.install({"image": {"pullPolicy": "Sometimes"}, "watchNamespaces": ["Not_A_Namespace"]})
    message = str(refused.value)
    assert "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'" in message
    assert "at '/watchNamespaces/0': 'Not_A_Namespace' does not match pattern" in message
    assert release.get("deployment", release.fullname) is None
    assert release.get("serviceaccount", release.fullname) is None
