"""One test per error code (exact code, statusString and referencedDistributionID), routing by kind,
no report on a report, the legacy profile and the perimeter allow-list."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from lxml import etree

from hub_dispatcher.outcome import Drop, Forward, Report
from hub_dispatcher.protocol import ProtocolProfile
from hub_dispatcher.reports import UNKNOWN_DISTRIBUTION_ID, ErrorCode
from tests.helpers.hubsante_models import envelope, json_examples, xml_envelope, xml_examples
from tests.unit.dispatcher.dispatch_support import error_of, json_inbound, load_bundle, message_of, xml_inbound

SAMU_A = "fr.health.samu050"
SAMU_B = "fr.health.samu076"
SDIS = "fr.fire.nexsis.sdis50"
ID = f"{SAMU_A}_0b0e5c3e-0c3f-4b3c-9d53-6f6a4a1b2c3d"


def rc_eda(version: str = "3.4.1") -> dict[str, Any]:
    return next(example for example in json_examples(version) if example.path.parent.name == "RC-EDA").use_case()


def message(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {"sender": SAMU_A, "recipient": SAMU_B, "distribution_id": ID}
    arguments.update(overrides)
    return envelope(rc_eda(), **arguments)


def assert_report(outcome: Any, code: ErrorCode, referenced: str, reported_to: str = SAMU_A) -> dict[str, Any]:
    assert isinstance(outcome, Report), outcome
    assert outcome.code is code
    assert outcome.routing_key == f"{reported_to}.info"
    assert outcome.referenced_distribution_id == referenced
    error = error_of(outcome.body)
    assert error["errorCode"] == {"statusCode": int(code), "statusString": code.name}
    assert error["referencedDistributionID"] == referenced
    assert error["errorCause"] == outcome.cause and len(outcome.cause) > 20
    return error


def test_status_strings_are_the_hub_names() -> None:
    assert {code.value: code.status_string for code in ErrorCode} == {
        100: "DELIVERY_MODE_INCONSISTENCY", 101: "NOT_ALLOWED_CONTENT_TYPE", 102: "UNRECOGNIZED_MESSAGE_FORMAT",
        200: "SENDER_INCONSISTENCY", 300: "INVALID_MESSAGE", 301: "SCHEMA_NOT_FOUND",
        400: "EXPIRED_MESSAGE_BEFORE_ROUTING", 500: "DEAD_LETTER_QUEUED", 501: "UNROUTABLE_MESSAGE",
        600: "MESSAGE_CONVERSION_ERROR", 700: "INTERNAL_CLIENT_ERROR", 701: "CASE_ALREADY_EXISTS",
        702: "WRONG_MESSAGE_SEQUENCE", 703: "UNKNOWN_SENDER", 704: "INSUFFICIENT_DATA",
    }


# -- one test per code ----------------------------------------------------------------------------------------
def test_100_non_persistent_message(make_pipeline: Any) -> None:
    outcome = make_pipeline().process(json_inbound(message(), SAMU_A, delivery_mode=1))
    error = assert_report(outcome, ErrorCode.DELIVERY_MODE_INCONSISTENCY, ID)
    assert "delivery_mode=2" in error["errorCause"]
    assert error["sourceMessage"] == message()


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream", "text/xml"])
def test_101_content_type_not_allowed(make_pipeline: Any, content_type: str | None) -> None:
    inbound = json_inbound(message(), SAMU_A, content_type=content_type)  # type: ignore[arg-type]
    error = assert_report(make_pipeline().process(inbound), ErrorCode.NOT_ALLOWED_CONTENT_TYPE, UNKNOWN_DISTRIBUTION_ID)
    assert "application/json or application/xml" in error["errorCause"]


def test_content_type_parameters_are_accepted(make_pipeline: Any) -> None:
    inbound = json_inbound(message(), SAMU_A, content_type="Application/JSON; charset=utf-8")
    assert isinstance(make_pipeline().process(inbound), Forward)


def test_102_unknown_key_beside_the_use_case(make_pipeline: Any) -> None:
    document = message()
    message_of(document)["somethingElse"] = {"a": 1}  # RC-DE allows extra properties, the schema passes
    error = assert_report(make_pipeline().process(json_inbound(document)), ErrorCode.UNRECOGNIZED_MESSAGE_FORMAT, ID)
    assert "createCase, somethingElse" in error["errorCause"]


def test_102_two_content_objects(make_pipeline: Any) -> None:
    document = message()
    document["content"].append(document["content"][0])
    error = assert_report(make_pipeline().process(json_inbound(document)), ErrorCode.UNRECOGNIZED_MESSAGE_FORMAT, ID)
    assert "exactly one content object, it carries 2" in error["errorCause"]


def test_200_routing_key_is_not_the_sender(make_pipeline: Any) -> None:
    outcome = make_pipeline().process(json_inbound(message(), "fr.health.samu999"))
    error = assert_report(outcome, ErrorCode.SENDER_INCONSISTENCY, ID, reported_to="fr.health.samu999")
    assert "senderID fr.health.samu050" in error["errorCause"]


def test_300_invalid_message_names_the_failing_field(make_pipeline: Any) -> None:
    document = message()
    message_of(document)["createCase"]["qualification"]["whatsHappen"]["code"] = 42
    error = assert_report(make_pipeline().process(json_inbound(document)), ErrorCode.INVALID_MESSAGE, ID)
    cause = error["errorCause"]
    assert "/message/createCase/qualification/whatsHappen/code: expected string, got number" in cause
    assert len(cause) < 400  # the whole instance is not quoted


def test_300_invalid_envelope_makes_the_id_untrusted(make_pipeline: Any) -> None:
    document = message()
    del document["distributionKind"]
    error = assert_report(make_pipeline().process(json_inbound(document)), ErrorCode.INVALID_MESSAGE,
                          UNKNOWN_DISTRIBUTION_ID)
    assert "missing required property 'distributionKind'" in error["errorCause"]


def test_300_unparsable_body(make_pipeline: Any) -> None:
    outcome = make_pipeline().process(json_inbound(b'{"distributionID": ', SAMU_A))
    error = assert_report(outcome, ErrorCode.INVALID_MESSAGE, UNKNOWN_DISTRIBUTION_ID)
    assert error["errorCause"].startswith("body is not valid JSON")
    assert error["sourceMessage"] == {"rawMessage": '{"distributionID": '}


def test_300_distribution_id_not_prefixed_by_the_sender(make_pipeline: Any) -> None:
    wrong = "fr.health.samu999_0b0e5c3e"
    error = assert_report(make_pipeline().process(json_inbound(message(distribution_id=wrong))),
                          ErrorCode.INVALID_MESSAGE, wrong)
    assert "must be <senderID>_<unique id>" in error["errorCause"]


def test_301_use_case_of_another_model_version(make_pipeline: Any) -> None:
    appointment = next(e for e in json_examples("3.4.1") if e.path.parent.name == "RS-SAS-RDV").use_case()
    document = envelope(appointment, sender=SAMU_A, recipient=SAMU_B, distribution_id=ID)
    error = assert_report(make_pipeline("2.2").process(json_inbound(document)), ErrorCode.SCHEMA_NOT_FOUND, ID)
    assert "model 2.2 of this vhost has no schema for use case appointment (RS-SAS-RDV)" in error["errorCause"]


def test_301_xml_namespace_of_another_model_version(make_pipeline: Any) -> None:
    example = next(e for e in xml_examples("3.4.1") if e.path.parent.name == "RC-EDA")
    body = xml_envelope(example.path.read_bytes(), "urn:emergency:eda:1.9", sender=SDIS, recipient=SAMU_B)
    outcome = make_pipeline("2.2").process(xml_inbound(body, SDIS))
    assert isinstance(outcome, Report) and outcome.code is ErrorCode.SCHEMA_NOT_FOUND
    assert outcome.routing_key == f"{SDIS}.info" and outcome.content_type == "application/xml"
    assert "urn:emergency:eda:1.9" in outcome.cause and "urn:emergency:cisu:2.0" in outcome.cause


def test_400_expired_before_routing(make_pipeline: Any) -> None:
    outcome = make_pipeline().process(json_inbound(message(expires="2025-03-01T12:59:59+02:00")))
    error = assert_report(outcome, ErrorCode.EXPIRED_MESSAGE_BEFORE_ROUTING, ID)
    assert "2025-03-01T12:59:59+02:00" in error["errorCause"]


def test_expiration_is_the_smaller_of_queue_ttl_and_date_time_expires(make_pipeline: Any) -> None:
    soon = make_pipeline().process(json_inbound(message(expires="2025-03-01T13:00:30+01:00")))
    later = make_pipeline().process(json_inbound(message(expires="2099-01-01T00:00:00+01:00")))
    assert isinstance(soon, Forward) and soon.expiration_ms == 30_000 and soon.expiration == "30000"
    assert isinstance(later, Forward) and later.expiration_ms == 24 * 3600 * 1000


def test_501_no_health_actor(make_pipeline: Any) -> None:
    document = envelope(rc_eda(), sender=SDIS, recipient="fr.police.cic75", distribution_id=f"{SDIS}_1")
    pipeline = make_pipeline(preferences={SDIS: {"format": "json"}})
    error = assert_report(pipeline.process(json_inbound(document, SDIS)), ErrorCode.UNROUTABLE_MESSAGE,
                          f"{SDIS}_1", reported_to=SDIS)
    assert "health actor" in error["errorCause"]


def test_501_recipient_not_a_client_id(make_pipeline: Any) -> None:
    outcome = make_pipeline().process(json_inbound(message(recipient="fr.health.samu076.message.x/../")))
    assert_report(outcome, ErrorCode.UNROUTABLE_MESSAGE, ID)


def test_501_when_the_broker_returns_the_forwarded_copy(make_pipeline: Any) -> None:
    pipeline = make_pipeline()
    forward = pipeline.process(json_inbound(message()))
    assert isinstance(forward, Forward)
    returned = json_inbound(forward.body, forward.routing_key, headers=dict(forward.headers))

    error = assert_report(pipeline.process_returned(returned), ErrorCode.UNROUTABLE_MESSAGE, ID)
    assert f"no queue {SAMU_B}.message" in error["errorCause"]


def test_600_unconvertible_for_an_xml_recipient(make_pipeline: Any) -> None:
    document = message()
    message_of(document)["createCase"]["freetext"] = ["bell \u0007 character"]
    outcome = make_pipeline(preferences={SAMU_B: {"format": "xml"}}).process(json_inbound(document))
    error = assert_report(outcome, ErrorCode.MESSAGE_CONVERSION_ERROR, ID)
    assert "receives XML" in error["errorCause"] and "createCase.freetext" in error["errorCause"]


# -- dead letters -----------------------------------------------------------------------------------------------
def dead_letter_headers(reason: str, queue: str, original_routing_key: str | bytes = SAMU_A) -> dict[str, Any]:
    """As RabbitMQ 3.10 writes them (newest x-death entry first) plus the header our forward carries."""
    from datetime import datetime, timezone

    return {
        "x-death": [{"count": 1, "reason": reason, "queue": queue, "time": datetime(2025, 3, 1, tzinfo=timezone.utc),
                     "exchange": "distribution", "routing-keys": [queue], "original-expiration": "5000"}],
        "x-first-death-exchange": "distribution",
        "x-first-death-queue": queue,
        "x-first-death-reason": reason,
        "x-death-original-routing-key": original_routing_key,
    }


@pytest.mark.parametrize(("reason", "explained"), [("expired", "time-to-live"), ("rejected", "rejected by the recipient")])
def test_500_dead_letter_goes_to_the_original_sender(make_pipeline: Any, reason: str, explained: str) -> None:
    pipeline = make_pipeline(preferences={SAMU_B: {"format": "xml"}})
    forward = pipeline.process(json_inbound(message()))
    assert isinstance(forward, Forward)
    dead = xml_inbound(forward.body, forward.routing_key,
                       headers=dead_letter_headers(reason, f"{SAMU_B}.message", original_routing_key=SAMU_A.encode()))

    error = assert_report(pipeline.process_dead_letter(dead), ErrorCode.DEAD_LETTER_QUEUED, ID)
    assert explained in error["errorCause"] and f"{SAMU_B}.message" in error["errorCause"]
    assert "edxlDistribution" in error["sourceMessage"] or "distributionID" in error["sourceMessage"]


def test_dead_lettered_info_message_is_dropped_silently(make_pipeline: Any) -> None:
    dead = json_inbound(message(), f"{SAMU_A}.info", headers=dead_letter_headers("expired", f"{SAMU_A}.info"))
    assert isinstance(make_pipeline().process_dead_letter(dead), Drop)


def test_dead_letter_without_original_routing_key_is_dropped(make_pipeline: Any) -> None:
    headers = dead_letter_headers("expired", f"{SAMU_B}.message")
    del headers["x-death-original-routing-key"]
    outcome = make_pipeline().process_dead_letter(json_inbound(message(), headers=headers))
    assert isinstance(outcome, Drop) and "sender is unknown" in outcome.reason


# -- routing by kind, and no report on a report ------------------------------------------------------------------
def test_ack_goes_to_the_ack_queue(make_pipeline: Any) -> None:
    reference = {"reference": {"distributionID": f"{SAMU_B}_previous"}}
    document = envelope(reference, sender=SAMU_A, recipient=SAMU_B, kind="Ack", distribution_id=ID)
    outcome = make_pipeline().process(json_inbound(document))
    assert isinstance(outcome, Forward) and outcome.routing_key == f"{SAMU_B}.ack"


def client_error(kind: str = "Error") -> dict[str, Any]:
    error = {"error": {"errorCode": {"statusCode": 702, "statusString": "WRONG_MESSAGE_SEQUENCE"},
                       "errorCause": "update before create", "referencedDistributionID": f"{SAMU_B}_1"}}
    return envelope(error, sender=SAMU_A, recipient=SAMU_B, kind=kind, with_header=False, distribution_id=ID)


def test_error_kind_goes_to_the_info_queue(make_pipeline: Any) -> None:
    outcome = make_pipeline().process(json_inbound(client_error()))
    assert isinstance(outcome, Forward) and outcome.routing_key == f"{SAMU_B}.info"


def test_a_report_is_never_reported_on(make_pipeline: Any) -> None:
    outcome = make_pipeline().process(json_inbound(client_error(), SAMU_A, delivery_mode=1))
    assert isinstance(outcome, Drop) and "DELIVERY_MODE_INCONSISTENCY" in outcome.reason


def test_an_invalid_report_is_not_reported_on(make_pipeline: Any) -> None:
    document = client_error()
    del message_of(document)["error"]["errorCause"]
    assert isinstance(make_pipeline().process(json_inbound(document)), Drop)


def test_hub_reports_returned_or_dead_lettered_are_dropped(make_pipeline: Any) -> None:
    pipeline = make_pipeline()
    report = pipeline.process(json_inbound(message(), delivery_mode=1))
    assert isinstance(report, Report)
    returned = json_inbound(report.body, report.routing_key, headers={"x-death-original-routing-key": SAMU_A})
    assert isinstance(pipeline.process_returned(returned), Drop)
    dead = json_inbound(report.body, headers=dead_letter_headers("rejected", f"{SAMU_B}.message"))
    assert isinstance(pipeline.process_dead_letter(dead), Drop)


# -- reports are valid messages of the bundle, in the sender's format --------------------------------------------
@pytest.mark.parametrize("version", ["1.1", "2.2", "3.4.1"])
def test_reports_validate_against_the_bundle_in_both_formats(make_pipeline: Any, version: str) -> None:
    bundle = load_bundle(version)
    document = envelope(rc_eda(version), sender=SAMU_A, recipient=SAMU_B, distribution_id=ID)
    json_report = make_pipeline(version).process(json_inbound(document, delivery_mode=1))
    xml_report = make_pipeline(version, preferences={SAMU_A: {"format": "xml"}}).process(
        json_inbound(document, delivery_mode=1))

    assert isinstance(json_report, Report) and isinstance(xml_report, Report)
    report_document = orjson.loads(json_report.body)
    assert bundle.is_valid_json(report_document), bundle.json_problems(report_document)
    assert report_document["senderID"] == "fr.health.hub" and report_document["distributionKind"] == "Error"
    assert report_document["distributionID"] == "fr.health.hub_00000000-0000-4000-8000-000000000001"
    assert report_document["dateTimeExpires"] == "2025-03-02T12:00:00+00:00"
    root = etree.fromstring(xml_report.body)
    assert bundle.validate_xml(root).valid, bundle.validate_xml(root).problems
    assert xml_report.content_type == "application/xml"
    assert bundle.codec.xml_to_json(root)["content"] == report_document["content"]


# -- legacy profile -----------------------------------------------------------------------------------------------
def test_legacy_profile_routes_by_routing_key_prefix(make_pipeline: Any) -> None:
    pipeline = make_pipeline(profile=ProtocolProfile.LEGACY)
    outcome = pipeline.process(json_inbound(message(), f"{SAMU_A}.out.message"))
    assert isinstance(outcome, Forward) and outcome.routing_key == f"{SAMU_B}.in.message"
    assert outcome.headers == {"x-death-original-routing-key": f"{SAMU_A}.out.message"}


def test_legacy_profile_reports_to_the_in_info_queue(make_pipeline: Any) -> None:
    pipeline = make_pipeline(profile=ProtocolProfile.LEGACY)
    outcome = pipeline.process(json_inbound(message(), "fr.health.samu999.out.message"))
    assert isinstance(outcome, Report) and outcome.code is ErrorCode.SENDER_INCONSISTENCY
    assert outcome.routing_key == "fr.health.samu999.in.info"


def test_legacy_dead_letter_from_in_info_is_dropped(make_pipeline: Any) -> None:
    pipeline = make_pipeline(profile=ProtocolProfile.LEGACY)
    dead = json_inbound(message(), headers=dead_letter_headers("expired", f"{SAMU_A}.in.info"))
    assert isinstance(pipeline.process_dead_letter(dead), Drop)


# -- perimeter allow-list -----------------------------------------------------------------------------------------
def test_allow_list_rejects_other_use_cases(make_pipeline: Any) -> None:
    pipeline = make_pipeline(allowed=frozenset({"createCaseHealth", "reference"}))
    error = assert_report(pipeline.process(json_inbound(message())), ErrorCode.INVALID_MESSAGE, ID)
    assert error["errorCause"] == ("use case createCase is not allowed on vhost 15-nexsis_v2.0 "
                                   "(allowed: createCaseHealth, reference)")


def test_allow_list_lets_listed_use_cases_through(make_pipeline: Any) -> None:
    pipeline = make_pipeline(allowed=frozenset({"createCase"}))
    assert isinstance(pipeline.process(json_inbound(message())), Forward)
