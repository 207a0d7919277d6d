"""The demo environment's process registry: what ``hub-devenv down`` stops, and in which order."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from hub_devenv.environment import (
    STATE_FILE,
    recorded_processes,
    register_process,
    stop,
    unregister_process,
)
from hub_devenv.localnode import _exit_code

DEPENDANTS = ("hub-operator", "local-node", "dispatcher/dispatcher-15-15-v1-5-abc")
CONTROL_PLANE = ("kube-controller-manager", "kube-apiserver", "etcd")


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def test_processes_register_and_unregister_only_while_an_environment_runs(tmp_path: Path) -> None:
    register_process("hub-operator", 123, tmp_path)
    assert recorded_processes(tmp_path) == {}  # nothing running: nothing recorded, no error
    (tmp_path / STATE_FILE).write_text(json.dumps({"pids": {"etcd": 1}}))
    register_process("dispatcher/a", 42, tmp_path)
    register_process("dispatcher/b", 43, tmp_path)
    unregister_process("dispatcher/a", tmp_path)
    unregister_process("never-registered", tmp_path)
    assert recorded_processes(tmp_path) == {"etcd": 1, "dispatcher/b": 43}


def test_down_stops_the_dependants_first_then_the_control_plane_in_order_and_forgets_the_environment(
    tmp_path: Path,
) -> None:
    names = (*DEPENDANTS, *CONTROL_PLANE, "rabbitmq")
    processes = {name: _sleeper() for name in names}
    (tmp_path / STATE_FILE).write_text(json.dumps({"pids": {name: p.pid for name, p in processes.items()}}))
    order: list[str] = []
    started = time.monotonic()
    stopped = stop(tmp_path, report=lambda name, seconds: order.append(name))
    # Each is this test's own child: stop() must reap it rather than wait for a zombie until the grace ends.
    assert time.monotonic() - started < 10
    assert sorted(stopped) == sorted(names)
    assert all(process.poll() is not None for process in processes.values())
    assert [name for name in order if name in DEPENDANTS] == list(DEPENDANTS)
    assert max(order.index(name) for name in DEPENDANTS) < min(order.index(name) for name in (*CONTROL_PLANE, "rabbitmq"))
    assert [name for name in order if name in CONTROL_PLANE] == list(CONTROL_PLANE)
    assert not (tmp_path / STATE_FILE).exists()


def test_a_process_already_gone_is_skipped(tmp_path: Path) -> None:
    gone = _sleeper()
    gone.kill()
    gone.wait()
    (tmp_path / STATE_FILE).write_text(json.dumps({"pids": {"dispatcher/gone": gone.pid}}))
    assert stop(tmp_path) == []


def test_exit_codes_read_as_a_container_runtime_reports_them() -> None:
    assert _exit_code(2) == 2
    assert _exit_code(-9) == 137
    assert _exit_code(-15) == 143
