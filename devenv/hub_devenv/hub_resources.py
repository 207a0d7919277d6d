"""What a hub environment needs in Kubernetes before the operator runs, on a local control plane.

The CRDs (``crds/``), the broker Secret a VHostVersion names (from a local broker), the operator's CA Secret and
an identity of the operator's own holding exactly the RBAC of :mod:`hub_operator.rbac`.  The integration tests
and the demo set environments up with these same functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml
from hub_operator import rbac
from hub_operator.api.crdgen import KINDS
from hub_operator.certificates import MANAGED_BY

from .controlplane import LocalControlPlane
from .paths import REPO_ROOT
from .rabbitmq import LocalBroker

CRDS_DIR = REPO_ROOT / "crds"
EXAMPLES_DIR = REPO_ROOT / "examples"
BROKER_SECRET_NAME = "hub-broker"
OPERATOR_CA_SECRET_NAME = "hub-operator-ca"


def install_crds(cluster: LocalControlPlane) -> None:
    """Server-side apply of crds/ (idempotent, so several callers may do it), then wait until Established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=hub-devenv", "-f", str(CRDS_DIR))
    for info in KINDS:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{info.crd_name}", "--timeout=60s")


def broker_secret(broker: LocalBroker, namespace: str, name: str = BROKER_SECRET_NAME) -> dict[str, Any]:
    """The broker Secret (docs/reference/crds.md) describing ``broker``: management API, admin, AMQPS, CA."""
    return {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
        "stringData": {
            "managementUrl": broker.management_url, "username": broker.admin_user, "password": broker.admin_password,
            "amqpsHost": broker.host, "amqpsPort": str(broker.amqps_port), "ca.crt": broker.ca_pem_path.read_text(),
        },
    }


def operator_ca_secret(broker: LocalBroker, namespace: str, name: str = OPERATOR_CA_SECRET_NAME) -> dict[str, Any]:
    """The operator CA Secret holding the broker's own CA: the broker then trusts every certificate it issues."""
    ca = broker.ca
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
        "stringData": {"tls.crt": ca.cert_pem.decode(), "tls.key": ca.key_pem.decode()},
    }


def grant_operator_access(cluster: LocalControlPlane, user: str, namespaces: Iterable[str], role_name: str) -> None:
    """The operator's ClusterRole (``hub_operator.rbac``) bound to ``user`` in each namespace, as the chart does."""
    role = rbac.cluster_role(role_name)
    bindings = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "hub-operator", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }
        for namespace in namespaces
    ]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([role, *bindings]))

