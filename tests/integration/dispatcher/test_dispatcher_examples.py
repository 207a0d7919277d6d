"""Acceptance through the real broker (TLS/EXTERNAL, topology of HUBSANTE.md §3): for every bundle, one example
of every use case, wrapped in header and envelope, reaches a JSON recipient unchanged and an XML-preferring
recipient as XML that validates against the bundle's XSD and converts back to the same JSON; the XML examples
reach a JSON recipient as valid JSON.  (The pure pipeline is checked on every example by the unit tests.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from lxml import etree

from hub_dispatcher.bundle import ModelBundle, XmlVariant
from hub_dispatcher.edxl import new_distribution_id
from hub_dispatcher.reports import ErrorCode
from tests.helpers.hubsante_models import MODEL_VERSIONS, Example, envelope, json_examples, xml_envelope, xml_examples
from tests.integration.dispatcher.conftest import (
    FIRE_SENDER,
    JSON_RECIPIENT,
    SENDER,
    XML_RECIPIENT,
    Hub,
    HubFactory,
)
from tests.integration.dispatcher.hubclient import Delivered
from tests.unit.dispatcher.test_examples_routing import without_empty_arrays

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def one_example_per_use_case(examples: list[Example]) -> list[Example]:
    first: dict[str, Example] = {}
    for example in examples:
        first.setdefault(example.path.parent.name, example)
    return list(first.values())


@dataclass
class Sent:
    example: Example
    distribution_id: str
    body: bytes
    document: Any = None
    use_case: str = ""


@dataclass
class Routed:
    """What one dispatcher did with every example of its bundle."""

    hub: Hub
    bundle: ModelBundle
    to_json: list[Sent]
    to_xml: list[Sent]
    from_xml: list[Sent]
    received: dict[str, Delivered]
    """By distributionID (for reports: the referenced one) of everything that reached a watched queue."""


@pytest.fixture(scope="module", params=MODEL_VERSIONS)
def routed(request: pytest.FixtureRequest, hub_factory: HubFactory) -> Routed:
    hub = hub_factory(request.param)
    bundle = ModelBundle.load(hub.bundle_dir)
    hub.dispatcher()
    sender, fire_sender = hub.client(SENDER), hub.client(FIRE_SENDER)

    def send_json(example: Example, recipient: str) -> Sent:
        use_case = example.use_case()
        key = next(iter(use_case))
        document = envelope(use_case, sender=SENDER, recipient=recipient, with_header=bundle.use_cases[key].has_header)
        body = orjson.dumps(document)
        sender.publish(body, SENDER)
        return Sent(example, document["distributionID"], body, document, key)

    examples = one_example_per_use_case(list(json_examples(hub.version)))
    to_json = [send_json(example, JSON_RECIPIENT) for example in examples]
    to_xml = [send_json(example, XML_RECIPIENT) for example in examples]
    from_xml = []
    for example in one_example_per_use_case(list(xml_examples(hub.version))):
        use_case = bundle.use_case_for_tag(etree.fromstring(example.path.read_bytes()).tag)
        assert use_case is not None, f"{example.id}: not a use case of model {hub.version}"
        distribution_id = new_distribution_id(FIRE_SENDER)
        body = xml_envelope(example.path.read_bytes(), bundle.message_model.namespace, sender=FIRE_SENDER,
                            recipient=JSON_RECIPIENT, distribution_id=distribution_id,
                            with_header=use_case.xml_variant is XmlVariant.FULL)
        fire_sender.publish(body, FIRE_SENDER, content_type="application/xml")
        from_xml.append(Sent(example, distribution_id, body, use_case=use_case.key))

    without_xml_form = sum(1 for sent in to_xml if bundle.use_cases[sent.use_case].xml_variant is None)
    received: dict[str, Delivered] = {}
    expected = {
        (JSON_RECIPIENT, "message"): len(to_json) + len(from_xml),
        (XML_RECIPIENT, "message"): len(to_xml) - without_xml_form,
        (SENDER, "info"): without_xml_form,
    }
    for (client_id, kind), count in expected.items():
        queue = hub.queue(client_id, kind)
        # Not strict: whatever is missing fails the test that expects it, naming the example.
        def enough(items: list[Delivered], wanted: int = count) -> bool:
            return len(items) >= wanted

        for delivered in hub.client(client_id).take_until(queue, enough, timeout=60, strict=False):
            message = delivered.read()
            received[message.referenced_distribution_id if kind == "info" else message.distribution_id] = delivered
    return Routed(hub, bundle, to_json, to_xml, from_xml, received)


def failures_of(routed: Routed, sent: list[Sent], check: Any) -> list[str]:
    failures = []
    for item in sent:
        delivered = routed.received.get(item.distribution_id)
        if delivered is None:
            failures.append(f"{item.example.id}: never arrived")
            continue
        problem = check(item, delivered)
        if problem:
            failures.append(f"{item.example.id}: {problem}")
    return failures


def test_every_use_case_reaches_a_json_recipient_unchanged(routed: Routed) -> None:
    def check(sent: Sent, delivered: Delivered) -> str:
        if delivered.queue != routed.hub.queue(JSON_RECIPIENT):
            return f"landed on {delivered.queue}"
        if delivered.body != sent.body or delivered.content_type != "application/json":
            return f"body or content type changed ({delivered.content_type})"
        headers = delivered.properties.headers or {}
        if headers.get("x-death-original-routing-key") != SENDER or delivered.properties.delivery_mode != 2:
            return f"properties {headers}, delivery_mode {delivered.properties.delivery_mode}"
        if delivered.properties.expiration is None or int(delivered.properties.expiration) > 24 * 3600 * 1000:
            return f"expiration {delivered.properties.expiration!r} is not capped by the queue TTL"
        return ""

    assert len(routed.to_json) >= 12  # every bundle defines at least a dozen use cases with examples
    assert failures_of(routed, routed.to_json, check) == []


def test_every_use_case_reaches_an_xml_recipient_as_valid_xml_that_converts_back(routed: Routed) -> None:
    bundle = routed.bundle

    def check(sent: Sent, delivered: Delivered) -> str:
        variant = bundle.use_cases[sent.use_case].xml_variant
        if variant is None:
            report = delivered.read()
            if report.error_code != ErrorCode.MESSAGE_CONVERSION_ERROR:
                return f"expected a 600 report (no XML form in model {bundle.version}), got {report.error_code}"
            return ""
        if delivered.queue != routed.hub.queue(XML_RECIPIENT) or delivered.content_type != "application/xml":
            return f"landed on {delivered.queue} as {delivered.content_type}"
        root = etree.fromstring(delivered.body)
        if not bundle.is_valid_xml(root, variant):
            return f"invalid XML: {bundle.xml_problems(root, variant)[:3]}"
        if bundle.codec.xml_to_json(root) != without_empty_arrays(sent.document):
            return "the XML does not convert back to the JSON that was sent"
        return ""

    assert failures_of(routed, routed.to_xml, check) == []


def test_xml_examples_reach_a_json_recipient_as_valid_json(routed: Routed) -> None:
    if not routed.from_xml:
        pytest.skip(f"model {routed.bundle.version} ships no XML examples")
    bundle = routed.bundle
    without_indentation = etree.XMLParser(remove_blank_text=True)

    def check(sent: Sent, delivered: Delivered) -> str:
        if delivered.content_type != "application/json":
            return f"content type {delivered.content_type}"
        document = delivered.json()
        if not bundle.is_valid_json(document):
            return f"invalid JSON: {bundle.json_problems(document)[:3]}"
        back = etree.tostring(bundle.codec.json_to_xml(document), method="c14n")
        if back != etree.tostring(etree.fromstring(sent.body, without_indentation), method="c14n"):
            return "the JSON does not convert back to the XML that was sent"
        return ""

    assert failures_of(routed, routed.from_xml, check) == []
