"""hubctl send / listen as hub clients, with the certificates issued for them, through the real broker: without
a dispatcher a sent message waits in ``dispatch``; with a real dispatcher it reaches the recipient, whose
``listen --auto-ack`` acknowledges it, and ``send`` shows that acknowledgement (or the hub's error report)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pika
import pytest
from lxml import etree

from hub_dispatcher.protocol import DISPATCH_QUEUE, QueueKind
from tests.helpers.dispatcher_process import DispatcherProcess
from tests.helpers.hubsante_models import bundle_dir
from tests.unit.dispatcher.dispatch_support import load_bundle
from tests.integration.hubctl.conftest import HubctlEnvironment

pytestmark = [pytest.mark.broker, pytest.mark.cluster]


def _take_from_dispatch(env: HubctlEnvironment, vhost: str, distribution_id: str) -> tuple[str, pika.BasicProperties, bytes]:
    """The message with this id, read from ``dispatch`` as the vhost's dispatcher would."""
    with pika.BlockingConnection(env.broker.pika_parameters(env.dispatcher, vhost)) as connection:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(DISPATCH_QUEUE, auto_ack=True)
            assert method is not None, f"{distribution_id} is not in {vhost}/dispatch"
            if distribution_id.encode() in body:
                return method.routing_key, properties, body


def _distribution_id(output: str) -> str:
    return next(line.split()[-1] for line in output.splitlines() if line.strip().startswith("distributionID"))


def test_a_sent_message_waits_in_dispatch_when_no_dispatcher_runs(hubctl_env: HubctlEnvironment) -> None:
    env = hubctl_env
    result = env.hubctl("send", env.sender, "--to", env.recipient, "-u", "RC-EDA", "--example", "FuiteDeGaz",
                        "--vhost", env.current.vhost, "--wait", "0")
    assert result.exit_code == 0, result.output
    assert f"→ sent createCase (RC-EDA-FuiteDeGaz-AliceGregoireNormand.01) to {env.recipient} as JSON" in result.stdout
    routing_key, properties, body = _take_from_dispatch(env, env.current.vhost, _distribution_id(result.stdout))
    assert routing_key == env.sender  # current profile: the routing key is the sender's client id
    assert (properties.content_type, properties.delivery_mode) == ("application/json", 2)
    document = orjson.loads(body)
    assert load_bundle("3.4.1").is_valid_json(document)
    assert (document["senderID"], document["descriptor"]["explicitAddress"]["explicitAddressValue"]) == (
        env.sender, env.recipient)


def test_legacy_vhost_xml_message_from_a_credentials_folder(hubctl_env: HubctlEnvironment, tmp_path: Path) -> None:
    """What a vendor does with the folder handed over: no cluster access, the legacy routing key, XML."""
    env = hubctl_env
    folder = tmp_path / "sdis"
    assert env.hubctl("credentials", env.legacy_sender, "-o", str(folder)).exit_code == 0
    result = env.hubctl("send", env.legacy_sender, "--to", env.sender, "-u", "createCase", "--format", "xml",
                        "--credentials", str(folder), "--wait", "0", "--kubeconfig", "/nonexistent")
    assert result.exit_code == 0, result.output
    routing_key, properties, body = _take_from_dispatch(env, env.legacy.vhost, _distribution_id(result.stdout))
    assert routing_key == env.legacy.protocol.publish_routing_key(env.legacy_sender) == f"{env.legacy_sender}.out.message"
    assert properties.content_type == "application/xml"
    bundle = load_bundle("1.1")
    assert bundle.validate_xml(etree.fromstring(body)).valid


@pytest.fixture
def dispatcher(hubctl_env: HubctlEnvironment) -> Iterator[DispatcherProcess]:
    env = hubctl_env
    process = DispatcherProcess(env.broker, env.current.vhost, bundle_dir("3.4.1"), env.dispatcher,
                                env.workdir / "dispatcher").start()
    yield process
    process.stop(grace=10)


def _wait_consuming(env: HubctlEnvironment, client_id: str, listener: subprocess.Popen[str]) -> None:
    credentials = env.broker.mint_client_cert(client_id)
    queue = env.current.protocol.client_queue(client_id, QueueKind.MESSAGE)
    deadline = time.monotonic() + 30
    with pika.BlockingConnection(env.broker.pika_parameters(credentials, env.current.vhost)) as connection:
        channel = connection.channel()
        while channel.queue_declare(queue, passive=True).method.consumer_count == 0:
            assert listener.poll() is None, listener.communicate()
            assert time.monotonic() < deadline, "hubctl listen never started consuming"
            time.sleep(0.2)


def test_round_trip_through_a_real_dispatcher_with_auto_ack(hubctl_env: HubctlEnvironment,
                                                           dispatcher: DispatcherProcess) -> None:
    env = hubctl_env
    listener = env.hubctl_process("listen", env.recipient, "--vhost", env.current.vhost, "--auto-ack",
                                  "--count", "1", "--timeout", "60")
    try:
        _wait_consuming(env, env.recipient, listener)
        result = env.hubctl("send", env.sender, "--to", env.recipient, "-u", "createCaseHealth",
                            "--vhost", env.current_version, "--wait", "30")
        out, err = listener.communicate(timeout=60)
    finally:
        if listener.poll() is None:
            listener.kill()
    assert listener.returncode == 0, err
    distribution_id = _distribution_id(result.stdout)
    assert f"message on {env.recipient}.message" in out and distribution_id in out
    assert f"acknowledged to {env.sender}" in out
    assert "1 message(s) received, 1 acknowledged" in err
    assert result.exit_code == 0, result.output
    assert f"acknowledgement on {env.sender}.ack" in result.stdout
    assert f"refers to        {distribution_id}" in result.stdout


def test_an_invalid_message_comes_back_as_an_error_report(hubctl_env: HubctlEnvironment,
                                                          dispatcher: DispatcherProcess, tmp_path: Path) -> None:
    env = hubctl_env
    broken = tmp_path / "broken.json"
    broken.write_text('{"createCase": {"caseId": 7}}')
    result = env.hubctl("send", env.sender, "--to", env.recipient, "--use-case-file", str(broken), "--no-validate",
                        "--vhost", env.current.vhost, "--wait", "30")
    assert result.exit_code == 4, result.output
    assert f"error report on {env.sender}.info" in result.stdout
    assert "300 INVALID_MESSAGE" in result.stdout


def test_a_client_the_broker_does_not_know_is_refused_clearly(hubctl_env: HubctlEnvironment) -> None:
    env = hubctl_env
    result = env.hubctl("send", env.intruder, "--to", env.recipient, "-u", "createCase", "--wait", "0")
    assert result.exit_code == 1
    assert (f"the broker refused the login of {env.intruder}" in result.stderr
            or f"{env.intruder} may not open vhost" in result.stderr), result.stderr


def test_listen_on_quiet_queues_stops_at_its_timeout(hubctl_env: HubctlEnvironment) -> None:
    env = hubctl_env
    started = time.monotonic()
    result = env.hubctl("listen", env.legacy_sender, "--timeout", "1")
    assert result.exit_code == 0, result.output
    assert f"{env.legacy_sender}.in.message (0 waiting)" in result.stderr
    assert "0 message(s) received, 0 acknowledged" in result.stderr
    assert time.monotonic() - started < 15
