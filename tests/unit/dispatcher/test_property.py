"""Whatever arrives, the dispatcher never crashes and every input ends as a Forward, a Report or a Drop —
and never through the internal-error fallback."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub_dispatcher.message import Inbound
from hub_dispatcher.outcome import Drop, Forward, Report
from hub_dispatcher.pipeline import INTERNAL_STAGE, Pipeline
from hub_dispatcher.preferences import Preferences
from hub_dispatcher.settings import DispatcherSettings
from tests.helpers.hubsante_models import bundle_dir, envelope, json_examples
from tests.unit.dispatcher.dispatch_support import NOW, load_bundle
from tests.unit.dispatcher.test_xml_safety import BILLION_LAUGHS, EXTERNAL_ENTITY, deep

SAMU = "fr.health.samu050"


def pipeline() -> Pipeline:
    return Pipeline(
        settings=DispatcherSettings(vhost="15-15_v2.0", bundle_dir=bundle_dir("3.4.1"), max_message_bytes=256 * 1024),
        bundle=load_bundle("3.4.1"),
        # one XML recipient so that conversions are exercised too
        preferences=Preferences.from_mapping({"fr.health.samu076": {"format": "xml"}}),
        clock=lambda: NOW,
    )


VALID = envelope(next(iter(json_examples("3.4.1"))).use_case(), sender=SAMU, recipient="fr.health.samu076")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
paths = st.lists(st.sampled_from(["content", 0, "jsonContent", "embeddedJsonContent", "message", "descriptor",
                                  "explicitAddress", "emsi", "CONTEXT", "distributionID", "senderID",
                                  "dateTimeExpires", "distributionKind", "error"]), min_size=1, max_size=6)


def mutate(document: Any, path: list[Any], value: Any, delete: bool) -> Any:
    copy = orjson.loads(orjson.dumps(document))
    cursor = copy
    for step in path[:-1]:
        try:
            cursor = cursor[step]
        except (KeyError, IndexError, TypeError):
            return copy
    try:
        if delete:
            del cursor[path[-1]]
        else:
            cursor[path[-1]] = value
    except (KeyError, IndexError, TypeError):
        pass
    return copy


def nested(depth: int, kind: str) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value] if kind == "list" else {"x": value}
    return value


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str | None]:
    choice = draw(st.integers(0, 7))
    if choice == 0:
        return draw(st.binary(max_size=300)), draw(st.sampled_from(["application/json", "application/xml", None]))
    if choice == 1:
        mutated = mutate(VALID, draw(paths), draw(json_values), draw(st.booleans()))
        return json.dumps(mutated).encode(), "application/json"
    if choice == 2:
        return json.dumps(draw(json_values)).encode(), "application/json"
    if choice == 3:
        # deeply nested free content: valid JSON, hard to convert and to quote
        free = envelope({"customContent": {"deep": nested(draw(st.integers(50, 400)), draw(st.sampled_from(["list", "dict"])))}},
                        sender=SAMU, recipient="fr.health.samu076", with_header=False)
        return json.dumps(free).encode(), "application/json"  # orjson refuses to write past 255 levels
    if choice == 4:
        return b"[" * draw(st.integers(500, 3000)) + b"]" * 10, "application/json"
    if choice == 5:
        return draw(st.sampled_from([BILLION_LAUGHS, EXTERNAL_ENTITY, deep(300), deep(70),
                                     b"<edxlDistribution/>", b"<?xml version='1.0'?><a>\x00</a>"])), "application/xml"
    if choice == 6:
        return b'{"a": "' + b"x" * (300 * 1024) + b'"}', "application/json"
    text = draw(st.text(alphabet="<>/=\"' abcdexmlns:&;!-[]", max_size=200))
    return text.encode(), "application/xml"


@given(body=bodies(), routing_key=st.sampled_from([SAMU, "fr.health.samu076", "x", "", "fr.health.hub"]),
       delivery_mode=st.sampled_from([None, 1, 2]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_process_always_ends_in_an_outcome(body: tuple[bytes, str | None], routing_key: str, delivery_mode: int | None) -> None:
    raw, content_type = body
    outcome = pipeline().process(Inbound(body=raw, routing_key=routing_key, content_type=content_type,
                                         delivery_mode=delivery_mode))
    assert isinstance(outcome, (Forward, Report, Drop))
    if isinstance(outcome, Report):
        assert outcome.stage != INTERNAL_STAGE, outcome.cause
        assert outcome.body


header_values = st.none() | st.text(max_size=30) | st.binary(max_size=30) | st.integers() | st.lists(
    st.dictionaries(st.sampled_from(["reason", "queue", "count"]), st.text(max_size=20) | st.binary(max_size=20)),
    max_size=2)


@given(body=bodies(), headers=st.dictionaries(
    st.sampled_from(["x-death", "x-death-original-routing-key", "x-first-death-reason", "x-first-death-queue"]),
    header_values))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_dead_letters_and_returns_always_end_in_an_outcome(body: tuple[bytes, str | None], headers: dict[str, Any]) -> None:
    raw, content_type = body
    inbound = Inbound(body=raw, routing_key="fr.health.samu076.message", content_type=content_type,
                      delivery_mode=2, headers=headers)
    for outcome in (pipeline().process_dead_letter(inbound), pipeline().process_returned(inbound)):
        assert isinstance(outcome, (Report, Drop))
        assert not (isinstance(outcome, Drop) and outcome.reason.startswith("internal error")), outcome.reason
