"""A real ``hub-dispatcher`` process serving one vhost of the test broker (integration tests and benchmarks).

    dispatcher = DispatcherProcess(broker, vhost, bundle_dir, credentials, workdir).start()   # waits for /readyz
    dispatcher.metric("hub_dispatcher_messages_routed_total")                                 # summed over labels
    dispatcher.kill()  /  dispatcher.stop() -> exit code

It runs in its own process group (``start_new_session``) so that stopping it never touches the test runner;
whoever starts one stops it (fixtures do it in their teardown).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from hub_devenv.processes import ComponentFailed, free_port, kill, log_tail, terminate, wait_until
from hub_devenv.rabbitmq import ClientCredentials, LocalBroker

ENV_PREFIX = "HUB_DISPATCHER_"


@dataclass
class DispatcherProcess:
    broker: LocalBroker
    vhost: str
    bundle_dir: Path
    credentials: ClientCredentials
    workdir: Path
    settings: Mapping[str, str] = field(default_factory=dict)
    """Extra settings by name (``prefetch``, ``preferences_file``...): exported as HUB_DISPATCHER_<NAME>."""
    name: str = "dispatcher"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
        values = {
            "vhost": self.vhost,
            "bundle_dir": str(self.bundle_dir),
            "amqp_url": f"amqps://{self.broker.host}:{self.broker.amqps_port}",
            "tls_ca_file": str(self.credentials.ca_path),
            "tls_cert_file": str(self.credentials.cert_path),
            "tls_key_file": str(self.credentials.key_path),
            "metrics_host": "127.0.0.1",
            "metrics_port": str(self.port),
            "reconnect_initial_seconds": "0.2",
            "reconnect_max_seconds": "2",
            **self.settings,
        }
        env.update({ENV_PREFIX + key.upper(): value for key, value in values.items()})
        return env

    def start(self, *, wait_ready: bool = True, timeout: float = 60.0) -> DispatcherProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hub_dispatcher.main"],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        try:
            wait_until(self.ready, timeout=timeout, what=f"{self.name} of vhost {self.vhost}",
                       process=self.process, log=self.log_path)
        except ComponentFailed:
            self.kill()
            raise

    # -- HTTP ---------------------------------------------------------------------------------------------
    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def ready(self) -> bool:
        try:
            return self.get("/readyz")[0] == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels`` (0 when none)."""
        status, text = self.get("/metrics")
        if status != 200:
            raise AssertionError(f"/metrics answered {status}: {text[:200]}")
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items())
        )

    # -- lifecycle -----------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float = 30.0) -> int:
        """SIGTERM (drain), SIGKILL after ``grace``; the exit code (negative: killed by that signal)."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        terminate(self.process, grace=grace)
        return int(self.process.returncode)

    def kill(self) -> None:
        kill(self.process)

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines (anything else, e.g. a traceback on stderr, is skipped)."""
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)
