"""A long-lived local environment (broker + control plane) for the demo, driven from the command line.

Unlike the test fixtures, it outlives the command that started it: its state (ports, pids, credentials,
paths) is written to ``.cache/devenv/state.json`` so that ``down`` can stop it and other tools can reach it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from .controlplane import ControlPlanePorts, LocalControlPlane
from .paths import state_root
from .rabbitmq import BrokerPorts, LocalBroker

STATE_FILE = "state.json"


@dataclass
class DevEnvironment:
    broker: LocalBroker
    control_plane: LocalControlPlane
    root: Path

    @classmethod
    def create(cls, root: Path | None = None) -> DevEnvironment:
        root = root or state_root()
        return cls(
            broker=LocalBroker(root / "rabbitmq", node_name="hubdemo"),
            control_plane=LocalControlPlane(root / "controlplane"),
            root=root,
        )

    @classmethod
    def load(cls, root: Path | None = None) -> DevEnvironment:
        """The running environment described by the state file."""
        root = root or state_root()
        try:
            state = json.loads((root / STATE_FILE).read_text())
        except FileNotFoundError:
            raise RuntimeError("no local environment is running (start one with `make demo`)") from None
        broker = LocalBroker(
            root / "rabbitmq",
            node_name="hubdemo",
            admin_user=state["broker"]["admin_user"],
            admin_password=state["broker"]["admin_password"],
            ports=BrokerPorts(**state["broker"]["ports"]),
        )
        control_plane = LocalControlPlane(root / "controlplane", ports=ControlPlanePorts(**state["controlplane"]["ports"]))
        from .binaries import kube_tools

        control_plane.tools = kube_tools()
        return cls(broker=broker, control_plane=control_plane, root=root)

    def start(self) -> None:
        if (self.root / STATE_FILE).exists():
            stop(self.root)
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        self.control_plane.start()
        self.broker.start()
        self._save()

    def _save(self) -> None:
        pids = {name: process.pid for name, process in self.control_plane._processes.items()}
        assert self.broker._process is not None
        pids["rabbitmq"] = self.broker._process.pid
        state = {
            "pids": pids,
            "broker": {
                "admin_user": self.broker.admin_user,
                "admin_password": self.broker.admin_password,
                "ports": vars(self.broker.ports),
                "management_url": self.broker.management_url,
                "ca": str(self.broker.ca_pem_path),
            },
            "controlplane": {
                "ports": vars(self.control_plane.ports),
                "kubeconfig": str(self.control_plane.kubeconfig),
                "server": self.control_plane.server,
            },
        }
        (self.root / STATE_FILE).write_text(json.dumps(state, indent=2))

    def describe(self) -> str:
        kubectl = self.control_plane.tools.kubectl if self.control_plane.tools else "kubectl"
        return "\n".join(
            [
                f"Kubernetes API : {self.control_plane.server}",
                f"  kubeconfig   : {self.control_plane.kubeconfig}",
                f"  kubectl      : {kubectl} --kubeconfig {self.control_plane.kubeconfig} get ns",
                f"RabbitMQ AMQPS : amqps://{self.broker.host}:{self.broker.amqps_port} (client certificate, EXTERNAL)",
                f"  management   : {self.broker.management_url} (user {self.broker.admin_user}, "
                f"password in {self.root / STATE_FILE})",
                f"  CA           : {self.broker.ca_pem_path}",
                "Stop everything with `make demo-down`.",
            ]
        )


def stop(root: Path | None = None) -> list[str]:
    """Stop every process recorded in the state file (SIGTERM, then SIGKILL); returns what was stopped."""
    root = root or state_root()
    state_path = root / STATE_FILE
    if not state_path.exists():
        return []
    state = json.loads(state_path.read_text())
    stopped = []
    # Dependants first: whatever the demo added (operator, dispatchers), then the API server, etcd, broker.
    order = sorted(state["pids"].items(), key=lambda item: _STOP_ORDER.get(item[0], -1))
    for name, pid in order:
        if _signal_group(pid, signal.SIGTERM):
            stopped.append(name)
            _wait_gone(pid, timeout=20) or _signal_group(pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        DevEnvironment.load(root).broker.stop()  # also stops the node's private epmd
    state_path.unlink()
    return stopped


def register_process(name: str, pid: int, root: Path | None = None) -> None:
    """Record an extra process (operator, dispatcher) so that ``down`` stops it too."""
    state_path = (root or state_root()) / STATE_FILE
    state = json.loads(state_path.read_text())
    state["pids"][name] = pid
    state_path.write_text(json.dumps(state, indent=2))


_STOP_ORDER = {"kube-controller-manager": 1, "kube-apiserver": 2, "etcd": 3, "rabbitmq": 4}


def _signal_group(pid: int, signum: int) -> bool:
    try:
        os.killpg(pid, signum)
        return True
    except ProcessLookupError:
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False
