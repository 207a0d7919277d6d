"""``hub-operator`` as a local process with its own kubeconfig, settings and log file (tests and the demo).

It runs in its own process group (``start_new_session``): stopping it never touches the caller, and it outlives
a caller that exits (the demo leaves it running and records its pid for ``hub-devenv down``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from .paths import REPO_ROOT
from .processes import ComponentFailed, free_ports, log_tail

ENV_PREFIX = "HUB_OPERATOR_"
LIVENESS_TIMEOUT = 60.0


class OperatorProcess:
    """``python -m hub_operator.main`` watching ``namespace``; its CA Secret and Lease live in ``operator_namespace``."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        log_path: Path,
        env: Mapping[str, str],
        *,
        operator_namespace: str | None = None,
        identity: str | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.operator_namespace = operator_namespace or namespace
        self.identity = identity or f"operator-{namespace}"
        self.log_path = log_path
        self.metrics_port, self.health_port = free_ports(2)
        self.env = dict(env)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/healthz"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def environment(self) -> dict[str, str]:
        return {
            **{key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)},
            "HUB_OPERATOR_KUBECONFIG": str(self.kubeconfig),
            "HUB_OPERATOR_NAMESPACES": self.namespace,
            "HUB_OPERATOR_NAMESPACE": self.operator_namespace,
            "HUB_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "HUB_OPERATOR_HEALTH_PORT": str(self.health_port),
            "HUB_OPERATOR_IDENTITY": self.identity,
            **self.env,
        }

    def start(self) -> None:
        """Start it and wait until its liveness endpoint answers (it then holds the Lease and runs kopf)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts + 1} =====\n".encode())
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hub_operator.main"], env=self.environment(), stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO_ROOT,
            )
        self.starts += 1
        deadline = time.monotonic() + LIVENESS_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ComponentFailed(f"hub-operator exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.health_url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise ComponentFailed(f"hub-operator did not become live in {LIVENESS_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def stop(self, *, kill: bool = False, timeout: float = 40) -> int | None:
        """SIGTERM (or SIGKILL) its process group; the exit code, None when it was not running."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            raise ComponentFailed(f"hub-operator did not stop within {timeout} s of SIGTERM:\n{self.log_tail()}") from None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 150) -> str:
        return log_tail(self.log_path, lines)
