"""Operating a real dispatcher process: health endpoints, metrics, logs, preference reloads, and what it does
when the broker will not let it in."""

from __future__ import annotations

import hashlib
import json
import signal

import orjson
import pytest

from hub_devenv.rabbitmq import LocalBroker
from tests.helpers.dispatcher_process import DispatcherProcess
from tests.integration.dispatcher.conftest import JSON_RECIPIENT, SENDER, SENDER_EDITOR, Hub, HubFactory
from tests.integration.dispatcher.hubclient import wait_until
from tests.integration.dispatcher.messages import case_message, use_case_body

pytestmark = [pytest.mark.broker]

VERSION = "2.2"


@pytest.fixture(scope="module")
def hub(hub_factory: HubFactory) -> Hub:
    hub = hub_factory(VERSION)
    hub.dispatcher()
    return hub


@pytest.fixture(scope="module")
def dispatcher(hub: Hub) -> DispatcherProcess:
    return hub.dispatchers[0]


def test_health_endpoints_of_a_consuming_dispatcher(dispatcher: DispatcherProcess) -> None:
    assert dispatcher.get("/healthz") == (200, "ok\n")
    assert dispatcher.get("/readyz") == (200, "ready\n")
    assert dispatcher.metric("hub_dispatcher_model_info", model_version=VERSION) == 1
    assert dispatcher.metric("hub_dispatcher_connected") == 1


def test_routed_messages_and_reports_are_counted_and_traced_without_bodies(hub: Hub,
                                                                            dispatcher: DispatcherProcess) -> None:
    valid = case_message(hub.bundle_dir)
    invalid = case_message(hub.bundle_dir)
    use_case_body(invalid)["notInTheModel"] = "Pierre-Legrand-secret"
    sender = hub.client(SENDER)
    valid_body = orjson.dumps(valid)

    sender.publish(valid_body, SENDER)
    sender.publish(invalid, SENDER)
    hub.client(JSON_RECIPIENT).take(hub.queue(JSON_RECIPIENT), 1)
    sender.take(hub.queue(SENDER, "info"), 1)

    assert dispatcher.metric("hub_dispatcher_messages_routed_total", sender=SENDER, use_case="createCaseHealth",
                             editor=SENDER_EDITOR, format="json") == 1
    assert dispatcher.metric("hub_dispatcher_reports_total", code="300", reason="INVALID_MESSAGE",
                             stage="validate") == 1
    assert dispatcher.metric("hub_dispatcher_stage_seconds_count", stage="validate") == 2
    assert dispatcher.metric("hub_dispatcher_dispatch_seconds_count", input="dispatch") == 2
    records = {record.get("event"): record for record in dispatcher.log_records()}
    routed, reported = records["routed"], records["reported"]
    assert routed["distribution_id"] == valid["distributionID"]
    assert routed["body_sha256"] == hashlib.sha256(valid_body).hexdigest()
    assert (routed["sender"], routed["recipient"]) == (SENDER, JSON_RECIPIENT)
    assert (reported["distribution_id"], reported["code"]) == (invalid["distributionID"], 300)
    assert "Pierre-Legrand-secret" not in dispatcher.log_path.read_text()


def test_a_changed_preferences_file_is_picked_up_without_a_restart(hub: Hub, dispatcher: DispatcherProcess) -> None:
    original = hub.preferences_file.read_text()
    preferences = json.loads(original)
    preferences["clients"][JSON_RECIPIENT] = {"format": "xml"}
    hub.preferences_file.write_text(json.dumps(preferences))
    try:
        wait_until(lambda: any(record.get("message", "").startswith("client preferences reloaded")
                               for record in dispatcher.log_records()), what="the preferences reload")
        hub.client(SENDER).publish(case_message(hub.bundle_dir), SENDER)

        delivered = hub.client(JSON_RECIPIENT).take(hub.queue(JSON_RECIPIENT), 1)[0]
        assert delivered.content_type == "application/xml" and delivered.body.startswith(b"<?xml")
    finally:
        hub.preferences_file.write_text(original)


def test_a_dispatcher_the_broker_refuses_is_alive_not_ready_and_stops_cleanly(hub: Hub, broker: LocalBroker) -> None:
    # A certificate from the right CA for a user the broker does not know: every attempt is refused.
    stranger = hub.dispatcher("stranger", start=False, credentials=broker.mint_client_cert(f"{hub.vhost}-stranger"))
    stranger.start(wait_ready=False)

    wait_until(lambda: stranger.alive and _answers(stranger) and stranger.metric(
        "hub_dispatcher_connect_failures_total") >= 2, what="two refused attempts")
    status, reason = stranger.get("/readyz")
    assert status == 503 and reason.startswith("not ready: not consuming dispatch, dispatch.dlq: ")
    assert stranger.get("/healthz")[0] == 200
    assert stranger.stop() == 0
    assert "cannot consume from" in stranger.log_path.read_text()


def _answers(process: DispatcherProcess) -> bool:
    try:
        process.get("/healthz")
        return True
    except OSError:
        return False


def test_sigint_stops_like_sigterm(hub: Hub) -> None:
    process = hub.dispatcher("interrupted")
    assert process.process is not None
    process.process.send_signal(signal.SIGINT)
    assert process.process.wait(timeout=30) == 0
