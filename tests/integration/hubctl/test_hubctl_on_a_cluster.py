"""hubctl status, onboard and credentials against the real API server and the real broker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest
import yaml

from hub_dispatcher.protocol import HUB_EXCHANGE, DISPATCH_QUEUE
from tests.integration.hubctl.conftest import HubctlEnvironment

pytestmark = [pytest.mark.broker, pytest.mark.cluster]


def _status(env: HubctlEnvironment) -> dict:
    result = env.hubctl("status", "-o", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_status_reports_the_patched_conditions_and_the_broker_s_queue_depths(hubctl_env: HubctlEnvironment) -> None:
    env = hubctl_env
    credentials = env.broker.mint_client_cert(env.sender)
    with pika.BlockingConnection(env.broker.pika_parameters(credentials, env.current.vhost)) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for _ in range(3):  # no dispatcher runs: they wait in dispatch
            channel.basic_publish(HUB_EXCHANGE, env.sender, b"{}", pika.BasicProperties(delivery_mode=2))
        expected = channel.queue_declare(DISPATCH_QUEUE, passive=True).method.message_count
    # The management API's counts lag by seconds behind the queue.
    deadline = time.monotonic() + 30
    while True:
        report = _status(env)
        vhosts = {row["vhost"]: row for row in report["vhosts"]}
        if vhosts[env.current.vhost]["dispatch_queue"] == expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert vhosts[env.current.vhost]["dispatch_queue"] == expected >= 3
    assert vhosts[env.current.vhost]["readiness"]["ready"] is True
    assert vhosts[env.legacy.vhost]["readiness"]["reason"] == "DispatcherNotReady"
    assert vhosts[env.legacy.vhost]["profile"] == "legacy" and vhosts[env.legacy.vhost]["dead_letters"] == 0
    clients = {row["name"]: row for row in report["clients"]}
    assert clients[env.intruder]["readiness"]["reason"] == "Pending"
    assert {v["vhost"]: v["queued"] for v in clients[env.sender]["vhosts"]} == {
        env.current.vhost: {"message": 0, "ack": 0, "info": 0}, env.legacy.vhost: {"message": 0, "ack": 0, "info": 0}}
    table = env.hubctl("status")
    assert table.exit_code == 0, table.output
    assert f"Hub environment {env.namespace}" in table.stdout
    lines = {line.split("│")[1].strip(): line for line in table.stdout.splitlines() if line.startswith("│")}
    assert "0/1" in lines[f"{env.legacy.vhost[:-5]}-v1.8"] and "Not ready: DispatcherNotReady" in lines[
        f"{env.legacy.vhost[:-5]}-v1.8"]
    assert "Not ready: Pending" in lines[env.intruder] and "Pending" in lines[env.intruder]
    # The legacy Perimeter has no status patched in: the operator has not seen it.
    assert "Waiting for the operator (no status yet)" in lines[env.legacy.vhost[:-5]]


def test_onboard_output_applies_cleanly_to_the_api_server(hubctl_env: HubctlEnvironment, tmp_path: Path) -> None:
    env = hubctl_env
    new_client = f"fr.health.new{env.namespace[-6:]}"
    result = env.hubctl("onboard", new_client, "--perimeter", env.perimeter, "--editor", "Editeur-T")
    assert result.exit_code == 0, result.output
    manifest = tmp_path / "client.yaml"
    manifest.write_text(result.stdout)
    applied = env.cluster.kubectl("apply", "-n", env.namespace, "-f", str(manifest), "--dry-run=server")
    assert "created (server dry run)" in applied.stdout
    env.cluster.kubectl("apply", "-n", env.namespace, "-f", str(manifest))
    stored = yaml.safe_load(env.cluster.kubectl("get", "-n", env.namespace, "hubclient", new_client, "-o", "yaml").stdout)
    assert stored["spec"]["vhostVersions"] == [env.current_version]
    assert stored["spec"]["preferences"] == {"format": "json", "editor": "Editeur-T"}
    # Once it exists, onboarding it again is refused.
    again = env.hubctl("onboard", new_client, "--perimeter", env.perimeter)
    assert again.exit_code == 1 and f"already served: {new_client} by HubClient {new_client}" in again.stderr


def test_onboard_refuses_a_vhost_the_namespace_does_not_have(hubctl_env: HubctlEnvironment) -> None:
    result = hubctl_env.hubctl("onboard", "fr.health.samu999", "--perimeter", hubctl_env.perimeter, "--vhost", "9.9")
    assert result.exit_code == 1
    assert f"no VHostVersion {hubctl_env.perimeter}-v9.9 in the namespace" in result.stderr
    assert hubctl_env.current_version in result.stderr  # what is available is listed


def test_credentials_folder_connects_with_its_own_python_snippet(hubctl_env: HubctlEnvironment, tmp_path: Path) -> None:
    env = hubctl_env
    folder = tmp_path / "bundle"
    result = env.hubctl("credentials", env.recipient, "-o", str(folder))
    assert result.exit_code == 0, result.output
    snippet = subprocess.run([sys.executable, str(folder / "connect_pika.py")], capture_output=True, text=True,
                             timeout=60)
    assert snippet.returncode == 0, snippet.stderr
    assert f"{env.recipient}.message: 0 message(s) waiting" in snippet.stdout
    assert f"{env.recipient}.info: 0 message(s) waiting" in snippet.stdout


def test_a_missing_namespace_or_unknown_client_is_a_clear_error(hubctl_env: HubctlEnvironment) -> None:
    result = hubctl_env.hubctl("credentials", "fr.health.nobody")
    assert result.exit_code == 1
    assert f"no HubClient serves client id fr.health.nobody in namespace {hubctl_env.namespace}" in result.stderr
