"""A real Kubernetes control plane on loopback: etcd + kube-apiserver (+ kube-controller-manager).

What controller-runtime's envtest does, in Python: generate a CA, serving and client certificates and a
service-account signing key, start etcd and the API server with RBAC authorization, and write a kubeconfig
for an admin identity.  The controller manager is optional: with it, ownerReference garbage collection,
Deployment → ReplicaSet and service-account tokens work (no kubelet, so no pod ever runs).
"""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization

from hub_operator import pki

from .binaries import ControlPlaneBinaries, KubeTools, control_plane_binaries, kube_tools
from .processes import free_ports, kill, terminate, wait_until

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
ADMIN_USER = "hub-admin"


@dataclass
class ControlPlanePorts:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int

    @classmethod
    def allocate(cls) -> ControlPlanePorts:
        return cls(*free_ports(4))


@dataclass
class LocalControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) rooted at ``base_dir``."""

    base_dir: Path
    with_controller_manager: bool = True
    ports: ControlPlanePorts = field(default_factory=ControlPlanePorts.allocate)
    binaries: ControlPlaneBinaries | None = None
    tools: KubeTools | None = None
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False, repr=False)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def pki_dir(self) -> Path:
        return self.base_dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.base_dir / "admin.kubeconfig"

    @property
    def ca_pem_path(self) -> Path:
        return self.pki_dir / "ca.crt"

    def log_path(self, component: str) -> Path:
        return self.base_dir / "logs" / f"{component}.log"

    # -- credentials ----------------------------------------------------------------------------------------
    @property
    def ca(self) -> pki.CertificateAuthority:
        return pki.CertificateAuthority.from_pem(self.ca_pem_path.read_bytes(), (self.pki_dir / "ca.key").read_bytes())

    def _ensure_pki(self) -> None:
        if self.ca_pem_path.exists():
            return
        self.pki_dir.mkdir(parents=True, exist_ok=True)
        ca = pki.CertificateAuthority.generate("hub-operator test control plane CA")
        _write(self.pki_dir / "ca.crt", ca.cert_pem)
        _write(self.pki_dir / "ca.key", ca.key_pem, private=True)
        serving = ca.issue(
            "kube-apiserver",
            client=False,
            server=True,
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
            ip_addresses=["127.0.0.1", "10.0.0.1"],
        )
        _write(self.pki_dir / "apiserver.crt", serving.cert_pem)
        _write(self.pki_dir / "apiserver.key", serving.key_pem, private=True)
        signing_key = pki.generate_key(pki.KeyAlgorithm.RSA_2048)
        _write(self.pki_dir / "sa.key", pki.key_to_pem(signing_key), private=True)
        _write(
            self.pki_dir / "sa.pub",
            signing_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )

    def write_kubeconfig(self, path: Path, user: str, *, groups: tuple[str, ...] = (), token: str | None = None) -> Path:
        """A kubeconfig for ``user`` (client certificate with ``groups`` as O=), or for a bearer ``token``."""
        user_entry: dict[str, str]
        if token is not None:
            user_entry = {"token": token}
        else:
            issued = self.ca.issue(user, organization=",".join(groups) or None)
            user_entry = {
                "client-certificate-data": base64.b64encode(issued.cert_pem).decode(),
                "client-key-data": base64.b64encode(issued.key_pem).decode(),
            }
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": base64.b64encode(self.ca_pem_path.read_bytes()).decode(),
                    },
                }
            ],
            "users": [{"name": user, "user": user_entry}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
            "current-context": "local",
        }
        _write(path, yaml.safe_dump(config).encode(), private=True)
        return path

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> LocalControlPlane:
        self.binaries = self.binaries or control_plane_binaries()
        self.tools = self.tools or kube_tools()
        self._ensure_pki()
        (self.base_dir / "logs").mkdir(parents=True, exist_ok=True)
        if not self.kubeconfig.exists():
            self.write_kubeconfig(self.kubeconfig, ADMIN_USER, groups=("system:masters",))
        self._start_etcd(timeout)
        self.start_apiserver(timeout)
        if self.with_controller_manager:
            self._start_controller_manager(timeout)
        return self

    def _spawn(self, component: str, command: list[str]) -> subprocess.Popen[bytes]:
        with open(self.log_path(component), "ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self._processes[component] = process
        return process

    def _start_etcd(self, timeout: float) -> None:
        assert self.binaries is not None
        client = f"http://127.0.0.1:{self.ports.etcd_client}"
        peer = f"http://127.0.0.1:{self.ports.etcd_peer}"
        process = self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=default",
                f"--data-dir={self.base_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        wait_until(
            lambda: _http_ok(f"{client}/health"),
            timeout=timeout,
            what="etcd",
            process=process,
            log=self.log_path("etcd"),
        )

    def start_apiserver(self, timeout: float = 120.0) -> None:
        """Start (or restart, for fault tests) the API server; etcd keeps the data."""
        assert self.binaries is not None
        pki_dir = self.pki_dir
        process = self._spawn(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports.apiserver}",
                f"--tls-cert-file={pki_dir / 'apiserver.crt'}",
                f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
                f"--client-ca-file={pki_dir / 'ca.crt'}",
                "--authorization-mode=RBAC",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki_dir / 'sa.pub'}",
                f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                f"--cert-dir={self.base_dir / 'apiserver-certs'}",
                "--v=1",
            ],
        )
        context = ssl.create_default_context(cafile=str(self.ca_pem_path))
        admin = self.ca.issue("readiness-probe", organization="system:masters")
        probe_dir = self.base_dir / "probe"
        _write(probe_dir / "tls.crt", admin.cert_pem)
        _write(probe_dir / "tls.key", admin.key_pem, private=True)
        context.load_cert_chain(str(probe_dir / "tls.crt"), str(probe_dir / "tls.key"))
        wait_until(
            lambda: _http_ok(f"{self.server}/readyz", context) and _http_ok(f"{self.server}/api/v1/namespaces/default", context),
            timeout=timeout,
            what="kube-apiserver",
            process=process,
            log=self.log_path("kube-apiserver"),
        )

    def stop_apiserver(self, *, hard: bool = False) -> None:
        process = self._processes.pop("kube-apiserver", None)
        (kill if hard else terminate)(process)

    def _start_controller_manager(self, timeout: float) -> None:
        assert self.binaries is not None
        kubeconfig = self.base_dir / "controller-manager.kubeconfig"
        if not kubeconfig.exists():
            self.write_kubeconfig(kubeconfig, "system:kube-controller-manager", groups=("system:masters",))
        process = self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries.kube_controller_manager),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports.controller_manager}",
                f"--cert-dir={self.base_dir / 'controller-manager-certs'}",
                f"--service-account-private-key-file={self.pki_dir / 'sa.key'}",
                f"--root-ca-file={self.ca_pem_path}",
                f"--cluster-signing-cert-file={self.ca_pem_path}",
                f"--cluster-signing-key-file={self.pki_dir / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--controllers=*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ttl",
                "--concurrent-gc-syncs=5",
                "--v=1",
            ],
        )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # its self-signed serving cert; we only probe liveness
        wait_until(
            lambda: _http_ok(f"https://127.0.0.1:{self.ports.controller_manager}/healthz", context),
            timeout=timeout,
            what="kube-controller-manager",
            process=process,
            log=self.log_path("kube-controller-manager"),
        )

    def stop(self) -> None:
        for component in ("kube-controller-manager", "kube-apiserver", "etcd"):
            terminate(self._processes.pop(component, None), grace=15)

    # -- clients --------------------------------------------------------------------------------------------
    def kubectl(
        self,
        *args: str,
        input: str | None = None,  # noqa: A002 - mirrors subprocess.run
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        assert self.tools is not None
        return _run_tool(
            [str(self.tools.kubectl), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input,
            check=check,
            timeout=timeout,
        )

    def helm(self, *args: str, check: bool = True, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        assert self.tools is not None
        helm_home = {
            f"HELM_{kind}_HOME": str(self.base_dir / f"helm-{kind.lower()}") for kind in ("CACHE", "CONFIG", "DATA")
        }
        return _run_tool(
            [str(self.tools.helm), f"--kubeconfig={self.kubeconfig}", *args],
            check=check,
            timeout=timeout,
            env=dict(os.environ, **helm_home),
        )

    def api_client(self, kubeconfig: Path | None = None):  # noqa: ANN201 - kubernetes.client.ApiClient
        from kubernetes import config

        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))


class ToolFailed(subprocess.CalledProcessError):
    """A kubectl/helm failure whose message carries the tool's own error output."""

    def __str__(self) -> str:
        return f"{' '.join(map(str, self.cmd[:1] + self.cmd[2:]))} exited {self.returncode}: {self.stderr.strip()}"


def _run_tool(
    command: list[str],
    *,
    check: bool,
    timeout: float,
    input: str | None = None,  # noqa: A002 - mirrors subprocess.run
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise ToolFailed(result.returncode, result.args, result.stdout, result.stderr)
    return result


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    with urllib.request.urlopen(url, timeout=2, context=context) as response:
        return 200 <= response.status < 300


def _write(path: Path, content: bytes, *, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if private:
        path.chmod(0o600)
