"""Acceptance over the real bundles: every example of sample/examples, wrapped in header and envelope, is
routed to its recipient in JSON, and, for an XML-preferring recipient, in XML that validates against the
same bundle's XSD and converts back to the same JSON."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.unit.dispatcher.dispatch_support import json_inbound, load_bundle, xml_inbound
from tests.helpers.hubsante_models import MODEL_VERSIONS, Example, envelope, json_examples, xml_envelope, xml_examples
from lxml import etree

from hub_dispatcher.bundle import XmlVariant
from hub_dispatcher.outcome import Forward, Report
from hub_dispatcher.reports import ErrorCode

JSON_EXAMPLES = [example for version in MODEL_VERSIONS for example in json_examples(version)]
XML_EXAMPLES = [example for version in MODEL_VERSIONS for example in xml_examples(version)]
SENDER = "fr.health.samu050"
HEALTH_RECIPIENT = "fr.health.samu076"
FIRE_RECIPIENT = "fr.fire.nexsis.sdis76"  # non-health: XML by default


def without_empty_arrays(value: Any) -> Any:
    """XML has no empty repeated element: an empty JSON array cannot survive a trip through XML."""
    if isinstance(value, dict):
        return {key: without_empty_arrays(item) for key, item in value.items() if item != []}
    if isinstance(value, list):
        return [without_empty_arrays(item) for item in value]
    return value


def wrapped(example: Example, recipient: str = HEALTH_RECIPIENT) -> dict[str, Any]:
    use_case = example.use_case()
    key = next(iter(use_case))
    return envelope(use_case, sender=SENDER, recipient=recipient,
                    with_header=load_bundle(example.version).use_cases[key].has_header)


def test_the_three_bundles_provide_examples() -> None:
    versions = {example.version for example in JSON_EXAMPLES}
    assert versions == set(MODEL_VERSIONS)
    assert len(JSON_EXAMPLES) > 200


@pytest.mark.parametrize("example", JSON_EXAMPLES, ids=lambda example: example.id)
def test_json_example_is_routed_unchanged_to_a_json_recipient(example: Example, make_pipeline: Any) -> None:
    document = wrapped(example)
    inbound = json_inbound(document, SENDER)

    outcome = make_pipeline(example.version).process(inbound)

    assert isinstance(outcome, Forward), getattr(outcome, "cause", outcome)
    assert outcome.routing_key == f"{HEALTH_RECIPIENT}.message"
    assert outcome.content_type == "application/json"
    assert outcome.body is inbound.body  # no re-serialisation on the hot path
    assert outcome.headers == {"x-death-original-routing-key": SENDER}
    assert outcome.persistent and not outcome.converted


@pytest.mark.parametrize("example", JSON_EXAMPLES, ids=lambda example: example.id)
def test_json_example_reaches_an_xml_recipient_as_valid_xml_that_converts_back(example: Example,
                                                                               make_pipeline: Any) -> None:
    bundle = load_bundle(example.version)
    document = wrapped(example, FIRE_RECIPIENT)
    key = next(iter(example.use_case()))
    pipeline = make_pipeline(example.version)

    outcome = pipeline.process(json_inbound(document, SENDER))

    if bundle.use_cases[key].xml_variant is None:
        # e.g. model 1.1 gives createCaseHealthUpdate and resourcesStatus no XML form at all
        assert isinstance(outcome, Report)
        assert outcome.code is ErrorCode.MESSAGE_CONVERSION_ERROR
        assert f"use case {key} has no XML form in model {example.version}" in outcome.cause
        return
    assert isinstance(outcome, Forward), getattr(outcome, "cause", outcome)
    assert outcome.content_type == "application/xml" and outcome.converted
    assert outcome.routing_key == f"{FIRE_RECIPIENT}.message"
    root = etree.fromstring(outcome.body)
    assert bundle.is_valid_xml(root, bundle.use_cases[key].xml_variant), bundle.xml_problems(
        root, bundle.use_cases[key].xml_variant)
    assert bundle.codec.xml_to_json(root) == without_empty_arrays(document)


@pytest.mark.parametrize("example", XML_EXAMPLES, ids=lambda example: example.id)
def test_xml_example_reaches_a_json_recipient_as_valid_json(example: Example, make_pipeline: Any) -> None:
    bundle = load_bundle(example.version)
    fire_sender = "fr.fire.nexsis.sdis50"
    root = etree.fromstring(example.path.read_bytes())
    use_case = bundle.use_case_for_tag(root.tag)
    assert use_case is not None, f"{root.tag} is not a use case of model {example.version}"
    body = xml_envelope(example.path.read_bytes(), bundle.message_model.namespace, sender=fire_sender,
                        recipient=HEALTH_RECIPIENT, with_header=use_case.xml_variant is XmlVariant.FULL)

    outcome = make_pipeline(example.version).process(xml_inbound(body, fire_sender))

    assert isinstance(outcome, Forward), getattr(outcome, "cause", outcome)
    assert outcome.content_type == "application/json"
    document = orjson.loads(outcome.body)
    assert bundle.is_valid_json(document), bundle.json_problems(document)
    # and back to XML: the same elements in the same order
    without_indentation = etree.XMLParser(remove_blank_text=True)
    assert etree.tostring(bundle.codec.json_to_xml(document), method="c14n") == etree.tostring(
        etree.fromstring(body, without_indentation), method="c14n")


@pytest.mark.parametrize("example", XML_EXAMPLES[:3], ids=lambda example: example.id)
def test_xml_to_an_xml_recipient_is_forwarded_unchanged(example: Example, make_pipeline: Any) -> None:
    bundle = load_bundle(example.version)
    sender = "fr.fire.nexsis.sdis50"
    body = xml_envelope(example.path.read_bytes(), bundle.message_model.namespace, sender=sender,
                        recipient=HEALTH_RECIPIENT)
    pipeline = make_pipeline(example.version, preferences={HEALTH_RECIPIENT: {"format": "xml"}})

    outcome = pipeline.process(xml_inbound(body, sender))

    assert isinstance(outcome, Forward)
    assert outcome.body == body and not outcome.converted
