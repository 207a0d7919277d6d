"""``make demo`` end to end, as a user runs it: ``python -m hub_devenv demo``, then hubctl against what it left.

The demo runs in a state folder of its own (``HUB_DEVENV_STATE_DIR``), so a demo the user left running is not
touched.  It must end with the acknowledgement back on the brigade's queue and the refused message's error
report, exit 0, and leave an environment where hubctl's send/listen work with the issued certificates and
``hubctl status`` follows the truth (a dispatcher killed shows as not ready); ``down`` then stops everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hub_devenv.environment import STATE_FILE
from hub_devenv.localnode import read_process_file
from hub_devenv.paths import REPO_ROOT, models_root

pytestmark = [pytest.mark.cluster, pytest.mark.broker, pytest.mark.slow]

DEMO_TIMEOUT = 420


def _python(*arguments: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *arguments], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state_dir = tmp_path_factory.mktemp("demo") / "devenv"
    env = {**os.environ, "HUB_DEVENV_STATE_DIR": str(state_dir), "NO_COLOR": "1"}
    started = time.monotonic()
    try:
        result = _python("-m", "hub_devenv", "demo", env=env, timeout=DEMO_TIMEOUT)
        print(result.stdout[-6000:], result.stderr[-3000:])
        yield {"result": result, "seconds": time.monotonic() - started, "state_dir": state_dir, "env": env}
    finally:
        pids = json.loads((state_dir / STATE_FILE).read_text())["pids"] if (state_dir / STATE_FILE).exists() else {}
        down = _python("-m", "hub_devenv", "down", env=env, timeout=180)
        print(down.stdout, down.stderr)
        still_running = [name for name, pid in pids.items() if _alive(pid)]
        assert not still_running, f"still running after down: {still_running}"


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _hubctl_env(demo: dict[str, Any]) -> dict[str, str]:
    state_dir: Path = demo["state_dir"]
    # As the demo's closing hint says: its kubeconfig's context names the hub environment (no -n needed).
    return {**demo["env"], "KUBECONFIG": str(state_dir / "demo.kubeconfig"), "HUBSANTE_MODELS_DIR": str(models_root()),
            "COLUMNS": "200"}


def _hubctl(*arguments: str, demo: dict[str, Any], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return _python("-m", "hub_operator.cli.main", *arguments, env=_hubctl_env(demo), timeout=timeout)


def test_the_demo_plays_the_18_to_15_flow_and_the_error_report_and_exits_0(demo: dict[str, Any]) -> None:
    result = demo["result"]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    output = " ".join(result.stdout.split())  # rich wraps long lines at the console width
    for expected in (
        "published createCase (RC-EDA",
        "validated createCase and routed it to fr.health.samu050.in.message as JSON (converted from XML)",
        "fr.health.samu050 received the case on fr.health.samu050.in.message",
        "validated reference and routed it to fr.fire.nexsis.sdis50.in.ack as XML (converted from JSON)",
        "acknowledgement on fr.fire.nexsis.sdis50.in.ack",
        "refused it at stage check_sender: 200 SENDER_INCONSISTENCY",
        "error report on fr.fire.nexsis.sdis50.in.info",
        "Hub environment hub-sandbox",
        "demo completed",
        "make demo-down",
    ):
        assert expected in output, f"{expected!r} not in the demo's output"
    assert demo["seconds"] < 300, f"the demo took {demo['seconds']:.0f}s"


def test_hubctl_send_and_listen_work_with_the_issued_certificates(demo: dict[str, Any]) -> None:
    assert demo["result"].returncode == 0
    listener = subprocess.Popen(
        [sys.executable, "-m", "hub_operator.cli.main", "listen", "fr.health.samu050", "--vhost", "15-nexsis_v1.8",
         "--auto-ack", "--count", "1", "--timeout", "60"],
        env=_hubctl_env(demo), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        time.sleep(3)  # the listener consumes before the message is sent
        sent = _hubctl("send", "fr.fire.nexsis.sdis50", "--to", "fr.health.samu050", "-u", "createCase",
                       "--format", "xml", "--wait", "30", demo=demo)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "acknowledgement on fr.fire.nexsis.sdis50.in.ack" in sent.stdout
        listened_out, listened_err = listener.communicate(timeout=60)
    finally:
        if listener.poll() is None:
            listener.kill()
    assert listener.returncode == 0, listened_out + listened_err
    assert "acknowledged to fr.fire.nexsis.sdis50" in listened_out


def test_hubctl_status_follows_the_truth_of_the_dispatcher_processes(demo: dict[str, Any]) -> None:
    assert demo["result"].returncode == 0

    def vhost_row(name: str) -> dict[str, Any]:
        status = _hubctl("status", "-o", "json", demo=demo)
        assert status.returncode == 0, status.stdout + status.stderr
        return next(row for row in json.loads(status.stdout)["vhosts"] if row["vhost"] == name)

    row = vhost_row("15-15_v2.0")
    assert (row["dispatchers_ready"], row["dispatchers_desired"], row["readiness"]["ready"]) == (2, 2, True)
    kubectl = _python("-c", "from hub_devenv.binaries import kube_tools; print(kube_tools().kubectl)",
                      env=demo["env"], timeout=60).stdout.strip()
    pods = json.loads(subprocess.run(
        [kubectl, "get", "pods", "-l", "hubsante.io/vhost=15-15_v2.0", "-o", "json"],
        env=_hubctl_env(demo), capture_output=True, text=True, check=True).stdout)["items"]
    process = read_process_file(demo["state_dir"], pods[0]["metadata"]["name"])
    assert process is not None
    os.kill(process["pid"], 9)
    deadline = time.monotonic() + 30
    while (row := vhost_row("15-15_v2.0"))["dispatchers_ready"] != 1:
        assert time.monotonic() < deadline, f"status still says {row['dispatchers_ready']} ready after a kill"
        time.sleep(0.5)
    deadline = time.monotonic() + 60  # the local node restarts it, as a kubelet would
    while (row := vhost_row("15-15_v2.0"))["dispatchers_ready"] != 2:
        assert time.monotonic() < deadline, "the killed dispatcher did not come back"
        time.sleep(1)
