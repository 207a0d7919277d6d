"""Install the generated CRDs on the test API server (shared by the api integration tests)."""

from __future__ import annotations

from pathlib import Path

from hub_devenv.controlplane import LocalControlPlane
from hub_operator.api.crdgen import KINDS

REPO = Path(__file__).resolve().parents[3]
CRDS_DIR = REPO / "crds"
EXAMPLES_DIR = REPO / "examples"


def install_crds(cluster: LocalControlPlane) -> None:
    """Server-side apply of crds/ (idempotent, so several test modules may call it), then wait Established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=hub-api-tests", "-f", str(CRDS_DIR))
    for info in KINDS:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{info.crd_name}", "--timeout=60s")
