"""Health endpoints, metrics and structured logs of the dispatcher process."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from hub_dispatcher.health import HealthServer
from hub_dispatcher.logs import JsonFormatter, configure_logging, log_outcome
from hub_dispatcher.message import Inbound
from hub_dispatcher.metrics import STAGE_BUCKETS, DispatcherMetrics, EventLoopHistogram
from hub_dispatcher.outcome import Drop, Forward, Report
from hub_dispatcher.reports import ErrorCode
from hub_dispatcher.stages import Rejection
from hub_dispatcher.worker import WorkerStatus

# -- /healthz, /readyz, /metrics ------------------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[tuple[HealthServer, WorkerStatus]]:
    registry = CollectorRegistry()
    Counter("probe_hits", "a metric to find", registry=registry).inc(3)
    status = WorkerStatus(("dispatch", "dispatch.dlq"))
    health = HealthServer("127.0.0.1", 0, readiness=status.readiness, registry=registry)
    await health.start()
    yield health, status
    await health.close()


async def get(health: HealthServer, path: str, method: str = "GET") -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{health.port}") as client:
        return await client.request(method, path)


async def test_liveness_answers_while_the_process_serves(server: tuple[HealthServer, WorkerStatus]) -> None:
    response = await get(server[0], "/healthz")
    assert (response.status_code, response.text) == (200, "ok\n")


async def test_readiness_says_why_it_is_not_ready(server: tuple[HealthServer, WorkerStatus]) -> None:
    health, status = server
    status.problem = "ConnectionRefusedError: [Errno 111] Connect call failed"
    status.consuming = frozenset({"dispatch"})

    response = await get(health, "/readyz")

    assert response.status_code == 503
    assert response.text == ("not ready: not consuming dispatch.dlq: "
                             "ConnectionRefusedError: [Errno 111] Connect call failed\n")


async def test_ready_when_consuming_every_input_and_not_while_stopping(
        server: tuple[HealthServer, WorkerStatus]) -> None:
    health, status = server
    status.consuming = frozenset({"dispatch", "dispatch.dlq"})
    assert (await get(health, "/readyz")).status_code == 200

    status.draining = True

    response = await get(health, "/readyz")
    assert (response.status_code, response.text) == (503, "not ready: stopping\n")


async def test_metrics_are_served_in_the_prometheus_text_format(server: tuple[HealthServer, WorkerStatus]) -> None:
    response = await get(server[0], "/metrics")

    assert response.status_code == 200 and response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert "probe_hits_total 3.0" in response.text


async def test_head_has_no_body_and_other_methods_and_paths_are_refused(
        server: tuple[HealthServer, WorkerStatus]) -> None:
    health = server[0]
    head = await get(health, "/healthz", "HEAD")
    assert head.status_code == 200 and head.content == b""
    assert (await get(health, "/healthz", "POST")).status_code == 405
    assert (await get(health, "/nothing")).status_code == 404


async def test_a_malformed_request_is_closed_without_an_answer(server: tuple[HealthServer, WorkerStatus]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server[0].port)
    writer.write(b"NONSENSE\r\n\r\n")
    await writer.drain()

    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()


async def test_a_taken_port_fails_the_start(server: tuple[HealthServer, WorkerStatus]) -> None:
    second = HealthServer("127.0.0.1", server[0].port, readiness=lambda: (True, ""), registry=CollectorRegistry())
    with pytest.raises(OSError):
        await second.start()


# -- metrics ------------------------------------------------------------------------------------------------


def test_timed_stages_keep_their_names_and_results_and_are_observed() -> None:
    metrics = DispatcherMetrics("15-15_v2.0", model_version="2.2")

    def check_persistence(ctx: object) -> Rejection | None:
        return Rejection(ErrorCode.DELIVERY_MODE_INCONSISTENCY, "transient")

    (timed,) = metrics.timed_stages([check_persistence])

    assert timed.__name__ == "check_persistence"  # reports name the stage that rejected
    assert timed(object()).code is ErrorCode.DELIVERY_MODE_INCONSISTENCY  # type: ignore[arg-type, union-attr]
    registry = metrics.registry
    labels = {"vhost": "15-15_v2.0", "stage": "check_persistence"}
    assert registry.get_sample_value("hub_dispatcher_stage_seconds_count", labels) == 1
    assert registry.get_sample_value("hub_dispatcher_model_info", {"vhost": "15-15_v2.0", "model_version": "2.2"}) == 1


def test_the_event_loop_histogram_exposes_what_prometheus_client_does() -> None:
    ours, reference = CollectorRegistry(), CollectorRegistry()
    fast = EventLoopHistogram("stage_seconds", "a stage", ["vhost", "stage"], buckets=STAGE_BUCKETS, registry=ours)
    slow = Histogram("stage_seconds", "a stage", ["vhost", "stage"], buckets=STAGE_BUCKETS, registry=reference)
    observations = [0.0, 0.00001, 0.00003, 0.0005, 0.0049, 0.05, 0.07, 3.0]  # on a bound, between, beyond all

    for stage in ("validate", "route"):
        observe = fast.labels("v", stage)
        for seconds in observations:
            observe(seconds)
            slow.labels("v", stage).observe(seconds)

    def exposition(registry: CollectorRegistry) -> list[str]:
        return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]

    assert exposition(ours) == exposition(reference)


def test_the_in_flight_gauge_is_read_when_scraped() -> None:
    metrics = DispatcherMetrics("v")
    in_flight = [3]
    metrics.watch_in_flight(lambda: in_flight[0])

    assert metrics.registry.get_sample_value("hub_dispatcher_in_flight", {"vhost": "v"}) == 3
    in_flight[0] = 0
    assert metrics.registry.get_sample_value("hub_dispatcher_in_flight", {"vhost": "v"}) == 0


def test_routed_messages_are_counted_by_sender_use_case_editor_and_format_never_by_recipient() -> None:
    metrics = DispatcherMetrics("v")
    forward = Forward(exchange="distribution", routing_key="fr.fire.nexsis.sdis76.message", body=b"<x/>",
                      content_type="application/xml", sender_id="fr.health.samu050",
                      recipient_id="fr.fire.nexsis.sdis76", use_case="createCase")

    metrics.count_routed(forward, "")
    metrics.count_routed(forward, "")

    labels = {"vhost": "v", "sender": "fr.health.samu050", "use_case": "createCase", "editor": "unknown",
              "format": "xml"}
    assert metrics.registry.get_sample_value("hub_dispatcher_messages_routed_total", labels) == 2
    assert "recipient" not in {name for metric in metrics.registry.collect() for sample in metric.samples
                               for name in sample.labels}


# -- logs ---------------------------------------------------------------------------------------------------
PATIENT = b'{"patient": {"name": "Pierre Legrand"}}'


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    yield stream
    logging.getLogger().handlers.clear()


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def routed_forward() -> Forward:
    return Forward(exchange="distribution", routing_key="fr.health.samu076.message", body=PATIENT,
                   content_type="application/json", distribution_id="fr.health.samu050_42",
                   sender_id="fr.health.samu050", recipient_id="fr.health.samu076", use_case="createCaseHealth")


def test_a_routed_message_is_traced_by_its_ids_and_body_hash(captured: io.StringIO) -> None:
    inbound = Inbound(PATIENT, "fr.health.samu050", "application/json", 2)

    log_outcome("dispatch", inbound, routed_forward(), event="routed", seconds=0.0012)

    (record,) = records(captured)
    assert record["level"] == "INFO" and record["event"] == "routed"
    assert record["distribution_id"] == "fr.health.samu050_42" and record["use_case"] == "createCaseHealth"
    assert (record["sender"], record["recipient"]) == ("fr.health.samu050", "fr.health.samu076")
    assert record["body_sha256"] == hashlib.sha256(PATIENT).hexdigest() and record["duration_ms"] == 1.2
    assert "Legrand" not in captured.getvalue()


def test_a_report_cause_quoting_the_message_stays_out_of_info_logs(captured: io.StringIO) -> None:
    inbound = Inbound(PATIENT, "fr.health.samu050", "application/json", 2)
    quoting = Report(exchange="distribution", routing_key="fr.health.samu050.info", body=b"{}",
                     content_type="application/json", code=ErrorCode.INVALID_MESSAGE,
                     referenced_distribution_id="fr.health.samu050_42",
                     cause="/patient/name: 'Pierre Legrand' is too long", reported_to="fr.health.samu050",
                     stage="validate")

    log_outcome("dispatch", inbound, quoting, event="reported", seconds=0.001)
    log_outcome("dispatch", inbound, Drop("on a report: 'Pierre Legrand'"), event="dropped", seconds=0.001)

    assert [r["event"] for r in records(captured)] == ["reported", "dropped"]
    assert records(captured)[0]["code"] == 300 and records(captured)[0]["reason"] == "INVALID_MESSAGE"
    assert "Legrand" not in captured.getvalue()


def test_the_cause_is_logged_at_debug(captured: io.StringIO) -> None:
    logging.getLogger().setLevel(logging.DEBUG)
    inbound = Inbound(PATIENT, "fr.health.samu050", "application/json", 2)

    log_outcome("dispatch", inbound, Drop("report on a report"), event="dropped", seconds=0.001)

    detail = records(captured)[1]
    assert detail["level"] == "DEBUG" and detail["detail"] == "report on a report"
    assert detail["body_sha256"] == hashlib.sha256(PATIENT).hexdigest()


def test_nothing_is_computed_when_info_is_off(captured: io.StringIO) -> None:
    logging.getLogger().setLevel(logging.WARNING)

    log_outcome("dispatch", Inbound(PATIENT, "k"), routed_forward(), event="routed", seconds=0.001)

    assert captured.getvalue() == ""


def test_exceptions_are_logged_as_one_json_line() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())

    entry = json.loads(formatter.format(record))

    assert entry["message"] == "failed here" and "ValueError: boom" in entry["exception"]
