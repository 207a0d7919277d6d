"""A long-lived local environment (broker + control plane) for the demo, driven from the command line.

Unlike the test fixtures, it outlives the command that started it: its state (ports, pids, credentials,
paths) is written to ``.cache/devenv/state.json`` so that ``down`` can stop it and other tools can reach it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .controlplane import ControlPlanePorts, LocalControlPlane
from .paths import state_root
from .rabbitmq import BrokerPorts, LocalBroker

STATE_FILE = "state.json"
STATE_LOCK = "state.lock"


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
        try:
            self._start_components()
        except BaseException:  # a failure or Ctrl-C half-way: nothing is recorded yet, so stop here what started
            self.control_plane.stop()
            self.broker.stop(kill=True)
            raise
        self._save()

    def _start_components(self) -> None:
        """The control plane and the broker, side by side: both spend most of their start-up waiting."""
        failures: list[BaseException] = []

        def start_broker() -> None:
            try:
                self.broker.start()
            except BaseException as failure:  # noqa: BLE001 - re-raised in the calling thread
                failures.append(failure)

        broker_thread = threading.Thread(target=start_broker, name="broker-start", daemon=True)
        broker_thread.start()
        try:
            self.control_plane.start()
        finally:
            broker_thread.join()
        if failures:
            raise failures[0]

    def _save(self) -> None:
        pids = {name: process.pid for name, process in self.control_plane._processes.items()}
        assert self.broker._process is not None
        pids[BROKER_PROCESS] = self.broker._process.pid
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
        with _locked_state(self.root):
            _write_state(self.root, state)

    @property
    def logs_dir(self) -> Path:
        """Logs of the processes added to the environment (operator, local node, dispatchers)."""
        return self.root / "logs"

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


def stop(root: Path | None = None, report: Callable[[str, float], None] | None = None) -> list[str]:
    """Stop every process recorded in the state file (SIGTERM, then SIGKILL); returns what was stopped.

    ``report(name, seconds)`` is called as each one is gone.
    """
    root = root or state_root()
    state_path = root / STATE_FILE
    if not state_path.exists():
        return []
    with _locked_state(root):
        state = _read_state(root) or {"pids": {}}
    stopped: list[str] = []

    def stop_in_order(names: list[str]) -> None:
        for name in names:
            pid, started = state["pids"][name], time.monotonic()
            if not _signal_group(pid, signal.SIGTERM):
                continue  # already gone (a dispatcher its node stopped)
            stopped.append(name)
            if not _wait_gone(pid, timeout=_STOP_GRACE.get(name, 20)):
                _signal_group(pid, signal.SIGKILL)
            if report is not None:
                report(name, time.monotonic() - started)

    # Dependants first, one by one: the operator, the local node (it drains its dispatchers), any dispatcher
    # left.  Then the control plane (controller manager, API server, etcd) and the broker side by side.
    names = sorted(state["pids"], key=_stop_rank)
    stop_in_order([name for name in names if _stop_rank(name) < 0])
    broker_lane = threading.Thread(target=stop_in_order, args=([n for n in names if n == BROKER_PROCESS],))
    broker_lane.start()
    stop_in_order([name for name in names if _stop_rank(name) >= 0 and name != BROKER_PROCESS])
    broker_lane.join()
    with contextlib.suppress(Exception):
        DevEnvironment.load(root).broker.stop()  # also stops the node's private epmd
    with _locked_state(root):
        state_path.unlink(missing_ok=True)
    return stopped


def register_process(name: str, pid: int, root: Path | None = None) -> None:
    """Record an extra process (operator, local node, dispatcher) so that ``down`` stops it too.

    Several processes record theirs concurrently (the demo, the local node): the file is locked and replaced
    atomically.  Nothing is recorded once the environment is stopped (no state file).
    """
    root = root or state_root()
    with _locked_state(root):
        state = _read_state(root)
        if state is not None:
            state["pids"][name] = pid
            _write_state(root, state)


def unregister_process(name: str, root: Path | None = None) -> None:
    """Forget a process that stopped by itself or was stopped by its owner."""
    root = root or state_root()
    with _locked_state(root):
        state = _read_state(root)
        if state is not None and state["pids"].pop(name, None) is not None:
            _write_state(root, state)


def recorded_processes(root: Path | None = None) -> dict[str, int]:
    """The processes of the running environment by name (empty when none runs)."""
    root = root or state_root()
    with _locked_state(root):
        state = _read_state(root)
    return dict(state["pids"]) if state else {}


@contextlib.contextmanager
def _locked_state(root: Path) -> Iterator[None]:
    if not root.exists():
        yield
        return
    with open(root / STATE_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_state(root: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((root / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    return state


def _write_state(root: Path, state: dict[str, Any]) -> None:
    temporary = root / f".{STATE_FILE}.{os.getpid()}"
    temporary.write_text(json.dumps(state, indent=2))
    temporary.replace(root / STATE_FILE)


OPERATOR_PROCESS = "hub-operator"
LOCAL_NODE_PROCESS = "local-node"
DISPATCHER_PROCESS_PREFIX = "dispatcher/"
BROKER_PROCESS = "rabbitmq"
_STOP_ORDER = {OPERATOR_PROCESS: -3, LOCAL_NODE_PROCESS: -2, "kube-controller-manager": 1, "kube-apiserver": 2,
               "etcd": 3, BROKER_PROCESS: 4}
#: Seconds to wait after SIGTERM: the local node first drains its dispatchers, which may take their drain timeout.
_STOP_GRACE = {LOCAL_NODE_PROCESS: 45}


def _stop_rank(name: str) -> int:
    return _STOP_ORDER.get(name, -1)


def _signal_group(pid: int, signum: int) -> bool:
    try:
        os.killpg(pid, signum)
        return True
    except ProcessLookupError:
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # When the caller started the process (the demo stopping what it started), reap it: a zombie would
        # keep its process group alive.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False
