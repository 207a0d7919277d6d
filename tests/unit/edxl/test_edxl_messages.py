"""hub_dispatcher.edxl: messages a client builds (valid against the real bundles), what it reads from a received
message, and the RC-REF acknowledgement it answers with."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest
from lxml import etree
from tests.helpers.hubsante_models import MODEL_VERSIONS, bundle_dir, message_of
from tests.unit.dispatcher.dispatch_support import load_bundle

from hub_dispatcher import edxl
from hub_dispatcher.xmlcodec import to_bytes

SAMU_A, SAMU_B, SDIS = "fr.health.samu050", "fr.health.samu076", "fr.fire.nexsis.sdis50"
PARIS = dt.timezone(dt.timedelta(hours=2))
SENT = dt.datetime(2025, 5, 2, 10, 0, 0, 123456, tzinfo=PARIS)


def addressing(**overrides: object) -> edxl.Addressing:
    values: dict[str, object] = {"sent_at": SENT}
    values.update(overrides)
    return edxl.Addressing.create(SAMU_A, SAMU_B, **values)  # type: ignore[arg-type]


# -- addressing ---------------------------------------------------------------------------------------------------
def test_addressing_defaults_an_id_prefixed_by_the_sender_and_keeps_the_local_offset() -> None:
    created = addressing(lifetime=dt.timedelta(hours=6))
    prefix, _, suffix = created.distribution_id.partition("_")
    assert prefix == SAMU_A and len(suffix) == 36
    assert created.sent == "2025-05-02T10:00:00+02:00"  # no fraction, offset kept, never Z
    assert created.expires == "2025-05-02T16:00:00+02:00"


@pytest.mark.parametrize(("overrides", "error"), [
    ({"sender": "samu050"}, "sender 'samu050' is not a client id"),
    ({"recipient": "fr.health"}, "recipient 'fr.health' is not a client id"),
    ({"kind": "Notice"}, "'Notice' is not a valid DistributionKind"),
    ({"status": "Draft"}, "'Draft' is not a valid DistributionStatus"),
    ({"lifetime": dt.timedelta(0)}, "would expire (2025-05-02T10:00:00+02:00) before it is sent"),
])
def test_bad_addressing_is_refused(overrides: dict[str, object], error: str) -> None:
    values: dict[str, object] = {"sender": SAMU_A, "recipient": SAMU_B, "sent_at": SENT}
    values.update(overrides)
    sender, recipient = values.pop("sender"), values.pop("recipient")
    with pytest.raises(edxl.EdxlError) as failure:
        edxl.Addressing.create(sender, recipient, **values)  # type: ignore[arg-type]
    assert error in str(failure.value)


def test_a_naive_date_time_is_refused() -> None:
    with pytest.raises(edxl.EdxlError, match="has no time zone"):
        edxl.edxl_datetime(dt.datetime(2025, 1, 1))


# -- building from the bundles' examples ---------------------------------------------------------------------------
@pytest.mark.parametrize("version", MODEL_VERSIONS)
def test_every_example_wrapped_with_fresh_addressing_is_valid(version: str) -> None:
    bundle = load_bundle(version)
    for example in edxl.bundle_examples(bundle_dir(version)):
        use_case = bundle.use_cases[example.key]
        document = edxl.json_message(example.use_case(), addressing(), with_header=use_case.has_header)
        assert bundle.is_valid_json(document), (example.path, bundle.json_problems(document))


def test_json_message_copies_the_use_case() -> None:
    use_case = {"createCase": {"caseId": "x"}}
    document = edxl.json_message(use_case, addressing())
    message_of(document)["createCase"]["caseId"] = "changed"
    assert use_case == {"createCase": {"caseId": "x"}}


@pytest.mark.parametrize("version", ["2.2", "3.4.1"])
def test_xml_message_around_a_bare_xml_example_is_valid_and_reads_like_its_json_twin(version: str) -> None:
    bundle = load_bundle(version)
    example = next(p for p in (bundle_dir(version) / "sample" / "examples" / "RC-EDA").glob("*.xml"))
    sent = addressing()
    body = edxl.xml_message(example.read_bytes(), bundle.message_model.namespace, sent)
    assert bundle.validate_xml(etree.fromstring(body)).valid
    from_xml = edxl.read_received(body, "application/xml")
    from_json = edxl.read_received(orjson.dumps(edxl.json_message({"createCase": {}}, sent)), "application/json")
    assert (from_xml.distribution_id, from_xml.sender_id, from_xml.recipient_id, from_xml.use_case) == (
        from_json.distribution_id, from_json.sender_id, from_json.recipient_id, from_json.use_case)
    assert from_xml.wants_ack and from_xml.format is edxl.ReceivedFormat.XML


# -- the functional acknowledgement -----------------------------------------------------------------------------------
@pytest.mark.parametrize("version", MODEL_VERSIONS)
@pytest.mark.parametrize("wire", ["json", "xml"])
def test_ack_of_a_received_message_is_a_valid_rc_ref_back_to_its_sender(version: str, wire: str) -> None:
    bundle = load_bundle(version)
    example = edxl.find_example(bundle_dir(version), "createCase")
    original = edxl.json_message(example.use_case(), edxl.Addressing.create(SDIS, SAMU_A, sent_at=SENT))
    body = orjson.dumps(original) if wire == "json" else to_bytes(bundle.codec.json_to_xml(original))

    ack = edxl.functional_ack(edxl.read_received(body, f"application/{wire}"), acknowledged_by=SAMU_A)

    assert bundle.is_valid_json(ack), bundle.json_problems(ack)
    read_back = edxl.read_received(orjson.dumps(ack), "application/json")
    assert read_back.is_ack and not read_back.wants_ack
    assert (read_back.sender_id, read_back.recipient_id) == (SAMU_A, SDIS)
    assert read_back.refers_to(original["distributionID"])


def test_acks_and_error_reports_are_never_acknowledged() -> None:
    ack = edxl.read_received(orjson.dumps(edxl.json_message(
        {"reference": {"distributionID": "fr.health.samu076_1"}}, addressing(kind="Ack"))), "application/json")
    with pytest.raises(edxl.EdxlError, match="is an ack: clients never acknowledge it"):
        edxl.functional_ack(ack, acknowledged_by=SAMU_B)
    report = {"distributionID": "fr.health.hub_1", "senderID": "fr.health.hub", "distributionKind": "Error",
              "content": [{"jsonContent": {"embeddedJsonContent": {"message": {"error": {
                  "errorCode": {"statusCode": 300, "statusString": "INVALID_MESSAGE"}, "errorCause": "bad",
                  "referencedDistributionID": "fr.health.samu050_9"}}}}}]}
    error = edxl.read_received(orjson.dumps(report), None)
    assert (error.error_code, error.error_status, error.error_cause) == (300, "INVALID_MESSAGE", "bad")
    assert error.refers_to("fr.health.samu050_9") and not error.refers_to("")
    with pytest.raises(edxl.EdxlError, match="is an error report"):
        edxl.functional_ack(error, acknowledged_by=SAMU_A)


@pytest.mark.parametrize(("body", "content_type", "error"), [
    (b"\xff not json", "application/json", "neither JSON nor XML"),
    (b"<other/>", "application/xml", "XML root is 'other', not an EDXL-DE edxlDistribution"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>', None, "DTD"),
])
def test_unreadable_bodies_are_refused_with_a_reason(body: bytes, content_type: str | None, error: str) -> None:
    with pytest.raises(edxl.EdxlError, match=error):
        edxl.read_received(body, content_type)


# -- finding examples ----------------------------------------------------------------------------------------------
def test_use_cases_are_found_by_key_or_model_name() -> None:
    assert edxl.use_case_key("createCase") == "createCase"
    assert edxl.use_case_key("rc-eda") == "createCase"
    assert edxl.use_case_key("RS-SAS-RDV") == "appointment"
    with pytest.raises(edxl.EdxlError, match=r"unknown use case 'RC-XYZ'; known: createCase \(RC-EDA\)"):
        edxl.use_case_key("RC-XYZ")


def test_example_choice_by_name_part() -> None:
    assert "FuiteDeGaz" in edxl.find_example(bundle_dir("3.4.1"), "RC-EDA", "fuitedegaz").name
    with pytest.raises(edxl.EdxlError, match="more than one example of createCase matches 'RC-EDA'; choose among"):
        edxl.find_example(bundle_dir("3.4.1"), "createCase", "RC-EDA")
    with pytest.raises(edxl.EdxlError, match="no example of createCase matches 'nothing'"):
        edxl.find_example(bundle_dir("3.4.1"), "createCase", "nothing")


def test_a_use_case_without_example_names_what_the_bundle_offers() -> None:
    with pytest.raises(edxl.EdxlError, match=r"model bundle 1.1 has no example of reference; examples exist for: .*createCase"):
        edxl.find_example(bundle_dir("1.1"), "RC-REF")


@pytest.mark.parametrize(("content", "error"), [
    ("{not json", "not a readable JSON example"),
    ('{"createCase": {}, "emsi": {}}', "exactly one use-case key"),
])
def test_a_bad_use_case_file_is_refused(tmp_path: Path, content: str, error: str) -> None:
    path = tmp_path / "mine.json"
    path.write_text(content)
    with pytest.raises(edxl.EdxlError, match=error):
        edxl.UseCaseExample(path).use_case()
