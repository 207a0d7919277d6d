"""One test per error code through the real broker, and where acks, Error-kind messages and reports go.

Every report is an RS-ERROR on the sender's ``.info`` queue that names the offending message; the offending
message reaches nobody.  Dead letters (expired, rejected) come back to their original sender as 500; a
forward the broker cannot route comes back as 501; a report is never reported on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from hub_dispatcher.edxl import ReceivedFormat, ReceivedMessage, functional_ack
from hub_dispatcher.reports import UNKNOWN_DISTRIBUTION_ID, ErrorCode
from tests.helpers.dispatcher_process import DispatcherProcess
from tests.helpers.hubsante_models import message_of, xml_envelope, xml_examples
from tests.integration.dispatcher.conftest import (
    CAST,
    EXPIRY_RECIPIENT,
    FIRE_SENDER,
    JSON_RECIPIENT,
    SENDER,
    TWIN_A,
    TWIN_B,
    UNPROVISIONED,
    Hub,
    HubFactory,
)
from tests.integration.dispatcher.hubclient import HubTestClient, wait_until
from tests.integration.dispatcher.messages import case_message, expiring_in, use_case_body

pytestmark = [pytest.mark.broker]

VERSION = "3.4.1"


@pytest.fixture(scope="module")
def hub(hub_factory: HubFactory) -> Hub:
    hub = hub_factory(VERSION)
    hub.dispatcher()
    return hub


@pytest.fixture(scope="module")
def dispatcher(hub: Hub) -> DispatcherProcess:
    return hub.dispatchers[0]


@pytest.fixture
def sender(hub: Hub) -> Iterator[HubTestClient]:
    """The sender's connection, its queues emptied first (a failed test must not confuse the next one)."""
    for client_ids in CAST.values():
        for client_id in client_ids:
            client = hub.client(client_id)
            for kind in ("message", "ack", "info"):
                client.purge(hub.queue(client_id, kind))
            client.close()
    with HubTestClient(hub.broker, hub.credentials_by_client[SENDER], hub.vhost) as client:
        yield client


def report_about(hub: Hub, reader: HubTestClient, reported_to: str, code: ErrorCode,
                 distribution_id: str) -> ReceivedMessage:
    """The report ``reported_to`` receives about ``distribution_id``, once nothing else came before it."""
    delivered, before = reader.wait_for(
        hub.queue(reported_to, "info"),
        lambda item: item.read().referenced_distribution_id == distribution_id,
        expectation=f"a {int(code)} report about {distribution_id}",
    )
    assert before == [], f"unexpected messages before the report: {[item.read() for item in before]}"
    report = delivered.read()
    assert (report.error_code, report.error_status) == (int(code), code.name), report.error_cause
    assert report.sender_id == "fr.health.hub" and report.distribution_kind == "Error"
    assert report.recipient_id == reported_to
    return report


def nothing_reached(reader: HubTestClient, hub: Hub, client_id: str) -> bool:
    return all(reader.count(hub.queue(client_id, kind)) == 0 for kind in ("message", "ack", "info"))


def test_100_a_transient_message_is_reported_and_not_routed(hub: Hub, sender: HubTestClient) -> None:
    document = case_message(hub.bundle_dir)

    sender.publish(document, SENDER, delivery_mode=1)

    report = report_about(hub, sender, SENDER, ErrorCode.DELIVERY_MODE_INCONSISTENCY, document["distributionID"])
    assert "delivery_mode" in report.error_cause
    assert nothing_reached(sender, hub, JSON_RECIPIENT)


def test_101_a_text_message_is_reported_without_a_trusted_id(hub: Hub, sender: HubTestClient) -> None:
    sender.publish(orjson.dumps(case_message(hub.bundle_dir)), SENDER, content_type="text/plain")

    report = report_about(hub, sender, SENDER, ErrorCode.NOT_ALLOWED_CONTENT_TYPE, UNKNOWN_DISTRIBUTION_ID)
    assert "text/plain" in report.error_cause
    assert nothing_reached(sender, hub, JSON_RECIPIENT)


def test_102_a_key_beside_the_use_case_is_reported_as_unrecognised(hub: Hub, sender: HubTestClient) -> None:
    # The RC-DE header allows extra properties, so the schema passes: the use-case stage refuses it.
    document = case_message(hub.bundle_dir)
    message_of(document)["somethingElse"] = {"a": 1}

    sender.publish(document, SENDER)

    report = report_about(hub, sender, SENDER, ErrorCode.UNRECOGNIZED_MESSAGE_FORMAT, document["distributionID"])
    assert "somethingElse" in report.error_cause
    assert nothing_reached(sender, hub, JSON_RECIPIENT)


def test_301_a_message_of_another_model_version_is_reported_in_the_senders_xml(hub: Hub) -> None:
    # An RC-EDA of models 2.2 (namespace urn:emergency:cisu:2.0) on this 3.4.1 vhost (urn:emergency:eda:1.9).
    older = next(e for e in xml_examples("2.2") if e.path.parent.name == "RC-EDA")
    distribution_id = f"{FIRE_SENDER}_301-{os.urandom(4).hex()}"
    body = xml_envelope(older.path.read_bytes(), "urn:emergency:cisu:2.0", sender=FIRE_SENDER,
                        recipient=JSON_RECIPIENT, distribution_id=distribution_id)
    brigade = hub.client(FIRE_SENDER)

    brigade.publish(body, FIRE_SENDER, content_type="application/xml")

    report = report_about(hub, brigade, FIRE_SENDER, ErrorCode.SCHEMA_NOT_FOUND, distribution_id)
    assert "urn:emergency:cisu:2.0" in report.error_cause and "3.4.1" in report.error_cause
    assert report.format is ReceivedFormat.XML
    assert nothing_reached(brigade, hub, JSON_RECIPIENT)


def test_a_use_case_outside_the_perimeter_allow_list_is_reported(hub_factory: HubFactory) -> None:
    restricted = hub_factory(VERSION)
    restricted.dispatcher(allowed_use_cases="createCaseHealth reference")
    sender = restricted.client(SENDER)
    allowed = case_message(restricted.bundle_dir, use_case="RS-EDA")
    refused = case_message(restricted.bundle_dir, use_case="RC-EDA")

    sender.publish(refused, SENDER)
    sender.publish(allowed, SENDER)

    report = report_about(restricted, sender, SENDER, ErrorCode.INVALID_MESSAGE, refused["distributionID"])
    assert report.error_cause == (f"use case createCase is not allowed on vhost {restricted.vhost} "
                                  "(allowed: createCaseHealth, reference)")
    delivered = restricted.client(JSON_RECIPIENT).take(restricted.queue(JSON_RECIPIENT), 1)
    assert [item.read().distribution_id for item in delivered] == [allowed["distributionID"]]


def test_200_a_sender_id_other_than_the_routing_key_is_reported_to_the_routing_key(hub: Hub) -> None:
    # One certificate acts for both twins: the broker lets it publish as either, the dispatcher checks that
    # the envelope's senderID is the routing key it used.
    twins = hub.client(TWIN_A)
    document = case_message(hub.bundle_dir, sender=TWIN_B)

    twins.publish(document, TWIN_A)

    report = report_about(hub, twins, TWIN_A, ErrorCode.SENDER_INCONSISTENCY, document["distributionID"])
    assert TWIN_B in report.error_cause and TWIN_A in report.error_cause
    assert nothing_reached(twins, hub, TWIN_B)


def test_300_an_invalid_message_is_reported_with_its_id(hub: Hub, sender: HubTestClient) -> None:
    document = case_message(hub.bundle_dir)
    use_case_body(document)["notInTheModel"] = "x"

    sender.publish(document, SENDER)

    report = report_about(hub, sender, SENDER, ErrorCode.INVALID_MESSAGE, document["distributionID"])
    assert "notInTheModel" in report.error_cause
    assert nothing_reached(sender, hub, JSON_RECIPIENT)


def test_400_a_message_expired_before_routing_is_reported(hub: Hub, sender: HubTestClient) -> None:
    document = case_message(hub.bundle_dir, expires=expiring_in(-60))

    sender.publish(document, SENDER)

    report_about(hub, sender, SENDER, ErrorCode.EXPIRED_MESSAGE_BEFORE_ROUTING, document["distributionID"])
    assert nothing_reached(sender, hub, JSON_RECIPIENT)


def test_500_a_message_that_expires_unread_comes_back_to_its_sender(hub: Hub, sender: HubTestClient) -> None:
    # The forwarded copy carries the message's remaining lifetime as its AMQP expiration: nobody reads the
    # recipient's queue, the copy expires there, dead-letters to dispatch.dlq, and the sender learns it.
    document = case_message(hub.bundle_dir, recipient=EXPIRY_RECIPIENT, expires=expiring_in(3))

    sender.publish(document, SENDER)

    report = report_about(hub, sender, SENDER, ErrorCode.DEAD_LETTER_QUEUED, document["distributionID"])
    assert "expired" in report.error_cause and hub.queue(EXPIRY_RECIPIENT) in report.error_cause


def test_500_a_message_the_recipient_rejects_comes_back_to_its_sender(hub: Hub, sender: HubTestClient) -> None:
    document = case_message(hub.bundle_dir)
    sender.publish(document, SENDER)

    rejected = hub.client(JSON_RECIPIENT).reject_next(hub.queue(JSON_RECIPIENT))

    assert rejected.read().distribution_id == document["distributionID"]
    report = report_about(hub, sender, SENDER, ErrorCode.DEAD_LETTER_QUEUED, document["distributionID"])
    assert "rejected" in report.error_cause


def test_501_a_recipient_without_queues_is_reported_after_the_broker_returns_the_copy(
        hub: Hub, sender: HubTestClient, dispatcher: DispatcherProcess) -> None:
    returned_before = dispatcher.metric("hub_dispatcher_returned_total")
    document = case_message(hub.bundle_dir, recipient=UNPROVISIONED)

    sender.publish(document, SENDER)

    report = report_about(hub, sender, SENDER, ErrorCode.UNROUTABLE_MESSAGE, document["distributionID"])
    assert UNPROVISIONED in report.error_cause
    assert dispatcher.metric("hub_dispatcher_returned_total") == returned_before + 1


def test_a_functional_ack_lands_on_the_original_senders_ack_queue(hub: Hub, sender: HubTestClient) -> None:
    document = case_message(hub.bundle_dir)
    sender.publish(document, SENDER)
    recipient = hub.client(JSON_RECIPIENT)
    received = recipient.take(hub.queue(JSON_RECIPIENT), 1)[0].read()

    ack = functional_ack(received, acknowledged_by=JSON_RECIPIENT)
    recipient.publish(ack, JSON_RECIPIENT)

    delivered = sender.take(hub.queue(SENDER, "ack"), 1)[0]
    assert delivered.read().is_ack and delivered.read().refers_to(document["distributionID"])
    assert sender.count(hub.queue(SENDER, "message")) == 0


def client_error_report(hub: Hub, **overrides: Any) -> dict[str, Any]:
    """An RS-ERROR a client sends (clients use the 7xx codes), as an Error-kind message."""
    return case_message(hub.bundle_dir, use_case="RS-ERROR", kind="Error", **overrides)


def test_an_error_kind_message_lands_on_the_recipients_info_queue(hub: Hub, sender: HubTestClient) -> None:
    document = client_error_report(hub)

    sender.publish(document, SENDER)

    delivered = hub.client(JSON_RECIPIENT).take(hub.queue(JSON_RECIPIENT, "info"), 1)[0]
    assert delivered.read().distribution_id == document["distributionID"]
    assert delivered.read().is_error


def test_an_invalid_report_is_dropped_not_reported(hub: Hub, sender: HubTestClient,
                                                   dispatcher: DispatcherProcess) -> None:
    dropped_before = dispatcher.metric("hub_dispatcher_dropped_total", input="dispatch")
    document = client_error_report(hub)
    use_case_body(document)["notInTheModel"] = "x"

    sender.publish(document, SENDER)

    wait_until(lambda: dispatcher.metric("hub_dispatcher_dropped_total", input="dispatch") == dropped_before + 1,
               what="the dispatcher to drop the invalid report")
    assert nothing_reached(sender, hub, SENDER) and nothing_reached(sender, hub, JSON_RECIPIENT)


def test_a_dead_lettered_report_is_dropped_silently(hub: Hub, sender: HubTestClient,
                                                    dispatcher: DispatcherProcess) -> None:
    document = case_message(hub.bundle_dir)
    sender.publish(document, SENDER, delivery_mode=1)
    report_about(hub, sender, SENDER, ErrorCode.DELIVERY_MODE_INCONSISTENCY, document["distributionID"])
    # The sender refuses the next report it gets: it dead-letters from its .info queue and must not loop.
    dropped_before = dispatcher.metric("hub_dispatcher_dropped_total", input="dispatch.dlq")
    sender.publish(document, SENDER, delivery_mode=1)

    sender.reject_next(hub.queue(SENDER, "info"))

    wait_until(lambda: dispatcher.metric("hub_dispatcher_dropped_total", input="dispatch.dlq") == dropped_before + 1,
               what="the dispatcher to drop the dead-lettered report")
    assert nothing_reached(sender, hub, SENDER)
