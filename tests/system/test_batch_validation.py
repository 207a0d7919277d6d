"""Bad input at volume: the national hub's own batch check, through the operator-provisioned hub.

A (``fr.health.samu050``) sends B (``fr.health.samu076``) 1,000 messages on ``15-15_v1.5``: 900 valid ones (every
model-1.1 example of a use case the 15-15 perimeter allows, in turn) and 100 defective ones of seven kinds,
shuffled in.  Exactly the 900 must reach B's queue, and each defective message must come back to A's ``.info``
queue as one RS-ERROR report with its code and cause; nothing else may arrive anywhere.  Publish-to-arrival
latency is measured for every message and compared with the national reference (under 120 ms per message).
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import orjson
import pika
import pika.spec
import pytest
from hub_devenv.rabbitmq import ClientCredentials, LocalBroker
from hub_dispatcher.edxl import bundle_examples, read_received
from hub_dispatcher.protocol import QueueKind
from hub_dispatcher.reports import UNKNOWN_DISTRIBUTION_ID, ErrorCode
from hub_dispatcher.usecases import BY_KEY

from tests.helpers.hubsante_models import bundle_dir, envelope, message_of
from tests.integration.dispatcher.messages import case_message, use_case_body
from tests.system.conftest import A_CLIENT_ID, B_CLIENT_ID, IMPERSONATED_CLIENT_ID, SAMU_SAMU, SystemHub

pytestmark = [pytest.mark.cluster, pytest.mark.broker, pytest.mark.slow]

BATCH_SIZE = 1_000
VHOST = SAMU_SAMU
#: The national hub's reference for its batch check: under 120 ms per message.
NATIONAL_REFERENCE_MS = 120.0
#: dateTimeExpires of the expired messages: 30 s after the fixed dateTimeSent of the test messages.
EXPIRED_AT = "2024-05-02T10:00:30+02:00"
#: A use case of a newer model (3.4.1: RS-SAS-RDV) that the 1.1 bundle of this vhost does not know.
NEWER_MODEL_VERSION, NEWER_USE_CASE = "3.4.1", "RS-SAS-RDV"
#: A use case model 1.1 knows but the 15-15 perimeter does not allow (a fire-brigade case, RC-EDA).
FOREIGN_PERIMETER_USE_CASE = "RC-EDA"
OUTCOME_TIMEOUT = 120.0


@dataclass(frozen=True)
class Outgoing:
    """One message of the batch as A publishes it."""

    distribution_id: str
    document: dict[str, Any]
    content_type: str = "application/json"
    delivery_mode: int = 2
    defect: Defect | None = None

    @property
    def body(self) -> bytes:
        return orjson.dumps(self.document)


@dataclass(frozen=True)
class Defect:
    """A kind of defective message: how many, how to make one, and the report it must earn."""

    name: str
    count: int
    code: ErrorCode
    cause: str
    """The report's exact errorCause (its beginning when ``cause_is_prefix``)."""
    make: Callable[[Defect], Outgoing]
    cause_is_prefix: bool = False
    anonymous: bool = False
    """The hub cannot trust the message's distributionID: the report references ``UNKNOWN_DISTRIBUTION_ID``."""

    def matches(self, cause: str) -> bool:
        return cause.startswith(self.cause) if self.cause_is_prefix else cause == self.cause


def _valid_case(**overrides: Any) -> dict[str, Any]:
    return case_message(VHOST.bundle_dir, use_case="RS-EDA", sender=A_CLIENT_ID, recipient=B_CLIENT_ID, **overrides)


def _outgoing(defect: Defect, document: dict[str, Any], **properties: Any) -> Outgoing:
    return Outgoing(document["distributionID"], document, defect=defect, **properties)


def _schema_invalid(defect: Defect) -> Outgoing:
    document = _valid_case()
    use_case_body(document)["injectedField"] = "not in the model"
    return _outgoing(defect, document)


def _newer_model_use_case(defect: Defect) -> Outgoing:
    document = case_message(bundle_dir(NEWER_MODEL_VERSION), use_case=NEWER_USE_CASE, sender=A_CLIENT_ID,
                            recipient=B_CLIENT_ID)
    return _outgoing(defect, document)


def _foreign_perimeter_use_case(defect: Defect) -> Outgoing:
    document = case_message(VHOST.bundle_dir, use_case=FOREIGN_PERIMETER_USE_CASE, sender=A_CLIENT_ID,
                            recipient=B_CLIENT_ID)
    return _outgoing(defect, document)


DEFECTS: tuple[Defect, ...] = (
    Defect("schema-invalid", 20, ErrorCode.INVALID_MESSAGE,
           "message does not validate against model 1.1: /content/0/jsonContent/embeddedJsonContent/message/"
           "createCaseHealth: unexpected property injectedField", _schema_invalid),
    Defect("wrong content type", 15, ErrorCode.NOT_ALLOWED_CONTENT_TYPE,
           "content type 'text/plain' is not allowed: publish with content_type application/json or application/xml",
           lambda defect: _outgoing(defect, _valid_case(), content_type="text/plain"), anonymous=True),
    Defect("spoofed sender", 15, ErrorCode.SENDER_INCONSISTENCY,
           f"senderID {IMPERSONATED_CLIENT_ID} does not match the routing key {A_CLIENT_ID} you published with "
           f"(client id {A_CLIENT_ID})",
           lambda defect: _outgoing(defect, case_message(VHOST.bundle_dir, use_case="RS-EDA",
                                                         sender=IMPERSONATED_CLIENT_ID, recipient=B_CLIENT_ID))),
    Defect("non-persistent", 15, ErrorCode.DELIVERY_MODE_INCONSISTENCY,
           "delivery_mode is 1: publish persistent messages (delivery_mode=2)",
           lambda defect: _outgoing(defect, _valid_case(), delivery_mode=1)),
    Defect("expired", 15, ErrorCode.EXPIRED_MESSAGE_BEFORE_ROUTING,
           f"the message expired at {EXPIRED_AT} (dateTimeExpires), before the hub could route it at ",
           lambda defect: _outgoing(defect, _valid_case(expires=EXPIRED_AT)), cause_is_prefix=True),
    Defect("unknown use case (newer model)", 10, ErrorCode.SCHEMA_NOT_FOUND,
           "model 1.1 of this vhost has no schema for use case appointment (RS-SAS-RDV): use a vhost of a model "
           "version that defines it", _newer_model_use_case),
    Defect("use case outside the perimeter", 10, ErrorCode.INVALID_MESSAGE,
           f"use case createCase is not allowed on vhost {VHOST.name} "
           f"(allowed: {', '.join(sorted(VHOST.allowed_use_cases))})", _foreign_perimeter_use_case),
)


def build_batch(seed: int = 20240502) -> list[Outgoing]:
    """900 valid messages (each allowed model-1.1 example in turn) and the defective ones, shuffled."""
    use_cases = [example.use_case() for example in bundle_examples(VHOST.bundle_dir)
                 if example.key in VHOST.allowed_use_cases]
    defective = [defect.make(defect) for defect in DEFECTS for _ in range(defect.count)]
    valid = []
    for index in range(BATCH_SIZE - len(defective)):
        use_case = use_cases[index % len(use_cases)]
        document = envelope(use_case, sender=A_CLIENT_ID, recipient=B_CLIENT_ID,
                            with_header=BY_KEY[next(iter(use_case))].has_header)
        valid.append(Outgoing(document["distributionID"], document))
    batch = valid + defective
    random.Random(seed).shuffle(batch)
    return batch


# -- receiving ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arrival:
    at: float
    body: bytes
    properties: pika.spec.BasicProperties


@dataclass
class QueueRecorder:
    """Consumes a queue in its own thread and connection, stamping each delivery as it arrives."""

    broker: LocalBroker
    credentials: ClientCredentials
    vhost: str
    queue: str
    arrivals: list[Arrival] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)
    _failure: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._consume, name=f"recorder-{self.queue}", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError(f"could not start consuming {self.queue}: {self._failure}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _consume(self) -> None:
        try:
            connection = pika.BlockingConnection(self.broker.pika_parameters(self.credentials, self.vhost, heartbeat=0))
        except BaseException as error:  # noqa: BLE001 - reported by __enter__
            self._failure.append(error)
            return
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=1000)
            channel.queue_purge(self.queue)
            self._ready.set()
            for method, properties, body in channel.consume(self.queue, inactivity_timeout=0.05):
                if method is not None:
                    self.arrivals.append(Arrival(time.perf_counter(), body, properties))
                    channel.basic_ack(method.delivery_tag)
                if self._stop.is_set():
                    break
            channel.cancel()
        finally:
            connection.close()

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.queue}: {len(self.arrivals)} of {count} messages within {timeout:.0f} s")
            time.sleep(0.02)


def _reported_message_id(report_document: dict[str, Any]) -> str:
    """The id of the message a report is about, read from the report's copy of it when the hub could not trust it."""
    error = message_of(report_document)["error"]
    source = error["sourceMessage"]
    return str(orjson.loads(source["rawMessage"])["distributionID"] if "rawMessage" in source
               else source["distributionID"])


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def _latency_line(label: str, values_ms: list[float]) -> str:
    ordered = sorted(values_ms)
    figures = {name: _percentile(ordered, fraction) for name, fraction in (("p50", .5), ("p95", .95), ("p99", .99))}
    under = sum(value < NATIONAL_REFERENCE_MS for value in ordered) / len(ordered)
    return (f"{label}: n={len(ordered)} " + " ".join(f"{name} {value:.1f} ms" for name, value in figures.items())
            + f" max {ordered[-1]:.1f} ms; {under:.1%} under the national reference of "
              f"{NATIONAL_REFERENCE_MS:.0f} ms")


# -- the test -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Publishing:
    """How A publishes the batch: all at once (the batch check) or at a steady rate (latency without a queue)."""

    name: str
    rate_per_second: float | None

    def wait_turn(self, started: float, index: int) -> None:
        if self.rate_per_second is not None:
            pause = started + index / self.rate_per_second - time.perf_counter()
            if pause > 0:
                time.sleep(pause)


BURST = Publishing("burst", None)
#: The rate of one producer in the national hub's load tests (2 x 160 msg/s).
NATIONAL_LOAD_TEST_RATE = Publishing("160 msg/s", 160.0)


@pytest.mark.parametrize("publishing", [BURST, NATIONAL_LOAD_TEST_RATE], ids=lambda publishing: publishing.name)
def test_a_batch_of_1000_with_10_percent_invalid_routes_exactly_900_and_reports_exactly_100(
    system_hub: SystemHub, publishing: Publishing, measure: Callable[[str], None]
) -> None:
    batch = build_batch()
    sent_by_id = {outgoing.distribution_id: outgoing for outgoing in batch}
    valid_ids = {outgoing.distribution_id for outgoing in batch if outgoing.defect is None}
    assert len(sent_by_id) == BATCH_SIZE and len(valid_ids) == BATCH_SIZE - sum(d.count for d in DEFECTS) == 900

    sent_at: dict[str, float] = {}
    with QueueRecorder(system_hub.broker, system_hub.b, VHOST.name, VHOST.queue(B_CLIENT_ID)) as routed, \
            QueueRecorder(system_hub.broker, system_hub.a, VHOST.name, VHOST.queue(A_CLIENT_ID, QueueKind.INFO)) as reports, \
            system_hub.client(system_hub.a, VHOST) as sender:
        started = time.perf_counter()
        for index, outgoing in enumerate(batch):
            publishing.wait_turn(started, index)
            body = outgoing.body
            sent_at[outgoing.distribution_id] = time.perf_counter()
            sender.publish(body, VHOST.routing_key(A_CLIENT_ID), content_type=outgoing.content_type,
                           delivery_mode=outgoing.delivery_mode)
        published = time.perf_counter()
        routed.wait_for(len(valid_ids), OUTCOME_TIMEOUT)
        reports.wait_for(BATCH_SIZE - len(valid_ids), OUTCOME_TIMEOUT)
        finished = max(routed.arrivals[-1].at, reports.arrivals[-1].at)
        time.sleep(2.0)  # anything beyond the expected outcomes would arrive now
    with system_hub.client(system_hub.b, VHOST) as recipient:
        leftovers = {queue: recipient.count(queue) for queue in (VHOST.queue(B_CLIENT_ID, QueueKind.ACK),
                                                                 VHOST.queue(B_CLIENT_ID, QueueKind.INFO))}

    # Exactly the 900 valid messages reached B, each once, unchanged; nothing else reached B.
    routed_ids = [read_received(arrival.body, arrival.properties.content_type).distribution_id
                  for arrival in routed.arrivals]
    assert len(routed_ids) == 900 and set(routed_ids) == valid_ids
    assert all(arrival.body == sent_by_id[routed_id].body for arrival, routed_id in zip(routed.arrivals, routed_ids))
    assert leftovers == {queue: 0 for queue in leftovers}

    # Exactly one report per defective message, with its code, status string and cause.
    reported: dict[str, tuple[int | None, str, str, str]] = {}
    for arrival in reports.arrivals:
        report = read_received(arrival.body, arrival.properties.content_type)
        message_id = _reported_message_id(report.document)
        assert message_id not in reported, f"two reports about {message_id}"
        reported[message_id] = (report.error_code, report.error_status, report.error_cause,
                                report.referenced_distribution_id)
    assert len(reported) == 100 and set(reported) == set(sent_by_id) - valid_ids
    for message_id, (code, status, cause, referenced) in reported.items():
        defect = sent_by_id[message_id].defect
        assert defect is not None
        assert (code, status) == (int(defect.code), defect.code.name), (defect.name, cause)
        assert defect.matches(cause), f"{defect.name}: cause {cause!r}, expected {defect.cause!r}"
        assert referenced == (UNKNOWN_DISTRIBUTION_ID if defect.anonymous else message_id), defect.name
    per_code = Counter(code for code, *_ in reported.values())
    assert per_code == {300: 30, 101: 15, 200: 15, 100: 15, 400: 15, 301: 10}

    routed_latency = [(arrival.at - sent_at[routed_id]) * 1000 for arrival, routed_id in zip(routed.arrivals, routed_ids)]
    report_latency = [(arrival.at - sent_at[_reported_message_id(orjson.loads(arrival.body))]) * 1000
                      for arrival in reports.arrivals]
    batch_seconds = finished - started
    per_message_ms = batch_seconds * 1000 / BATCH_SIZE
    measure(f"batch of {BATCH_SIZE} ({len(valid_ids)} valid, {BATCH_SIZE - len(valid_ids)} invalid) on {VHOST.name}, "
            f"published {publishing.name} in {published - started:.2f} s; last outcome after {batch_seconds:.2f} s = "
            f"{per_message_ms:.2f} ms per message (national reference: under {NATIONAL_REFERENCE_MS:.0f} ms)")
    measure(f"reports per code: {dict(sorted(per_code.items()))}")
    measure(_latency_line("publish -> arrival at B (routed)", routed_latency))
    measure(_latency_line("publish -> report on A's .info", report_latency))
    assert per_message_ms < NATIONAL_REFERENCE_MS
    if publishing.rate_per_second is not None:  # no queue builds up: the typical message beats the reference alone
        assert statistics.median(routed_latency + report_latency) < NATIONAL_REFERENCE_MS
