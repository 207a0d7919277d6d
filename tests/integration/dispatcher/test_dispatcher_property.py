"""Property through the real broker (a small sibling of the unit-level one): whatever a client publishes, the
dispatcher survives, consumes it, and it ends as a forward to the recipient or a report to the sender."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub_dispatcher.reports import UNKNOWN_DISTRIBUTION_ID
from tests.helpers.dispatcher_process import DispatcherProcess
from tests.integration.dispatcher.conftest import JSON_RECIPIENT, SENDER, Hub, HubFactory
from tests.integration.dispatcher.hubclient import Delivered, HubTestClient
from tests.integration.dispatcher.messages import case_message, use_case_body

pytestmark = [pytest.mark.broker]

VERSION = "3.4.1"
OUTCOME_TIMEOUT = 30.0

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),  # orjson: 64-bit ints
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
#: Where a mutation lands: envelope fields the checks read, and the use case itself.
FIELDS = st.sampled_from([
    ("distributionID",), ("senderID",), ("dateTimeExpires",), ("distributionKind",), ("distributionStatus",),
    ("descriptor", "explicitAddress", "explicitAddressValue"), ("descriptor", "explicitAddress"), ("content",),
    ("use case",),
])


@st.composite
def inputs(draw: st.DrawFn, hub: Hub) -> tuple[bytes, str | None, int | None, str]:
    """(body, content type, delivery mode, the distributionID the body carries if any)."""
    document = case_message(hub.bundle_dir)
    kind = draw(st.sampled_from(["valid", "mutated", "mutated", "garbage"]))
    if kind == "garbage":
        body = draw(st.binary(max_size=300))
    else:
        if kind == "mutated":
            path, value = draw(FIELDS), draw(JSON_VALUES)
            if path == ("distributionKind",) and value == "Error":
                value = "Report"  # an Error-kind message is a report: dropped, never reported on (tested apart)
            target = use_case_body(document) if path == ("use case",) else document
            keys = ("anyField",) if path == ("use case",) else path
            for key in keys[:-1]:
                target = target[key]
            target[keys[-1]] = value
        body = orjson.dumps(document)
    claimed = document.get("distributionID") if kind != "garbage" else None
    distribution_id = claimed if isinstance(claimed, str) else ""
    # Mostly right, so that some inputs get through to the recipient.
    content_type = draw(st.sampled_from(["application/json"] * 3 + ["application/json; charset=utf-8",
                                                                   "application/xml", "text/plain", None]))
    delivery_mode = draw(st.sampled_from([2, 2, 2, 1, None]))
    return body, content_type, delivery_mode, distribution_id


@pytest.fixture(scope="module")
def hub(hub_factory: HubFactory) -> Hub:
    hub = hub_factory(VERSION)
    hub.dispatcher()
    return hub


@pytest.fixture(scope="module")
def dispatcher(hub: Hub) -> DispatcherProcess:
    return hub.dispatchers[0]


def test_any_input_ends_as_a_forward_or_a_report(hub: Hub, dispatcher: DispatcherProcess) -> None:
    sender = hub.client(SENDER)
    watcher = hub.client(JSON_RECIPIENT)
    forwards, reports = hub.queue(JSON_RECIPIENT), hub.queue(SENDER, "info")
    seen: dict[str, int] = {"forward": 0, "report": 0}

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def check(data: Any) -> None:
        body, content_type, delivery_mode, distribution_id = data.draw(inputs(hub))
        sender.publish(body, SENDER, content_type=content_type, delivery_mode=delivery_mode)

        delivered = _outcome_of(sender, watcher, forwards, reports)

        if delivered.queue == forwards:
            assert delivered.read().distribution_id == distribution_id
            seen["forward"] += 1
        else:
            report = delivered.read()
            assert report.error_code is not None and report.referenced_distribution_id in (
                distribution_id, UNKNOWN_DISTRIBUTION_ID), report
            seen["report"] += 1

    check()

    assert dispatcher.alive and dispatcher.metric("hub_dispatcher_in_flight") == 0
    assert dispatcher.metric("hub_dispatcher_requeued_total") == 0
    assert seen["report"] > 0  # most random inputs are refused; forwards depend on the draw


def _outcome_of(sender: HubTestClient, watcher: HubTestClient, forwards: str, reports: str) -> Delivered:
    """The first forward or report to appear (one input at a time: it is this input's outcome)."""
    deadline = time.monotonic() + OUTCOME_TIMEOUT
    while time.monotonic() < deadline:
        delivered = watcher.get(forwards) or sender.get(reports)
        if delivered is not None:
            return delivered
        time.sleep(0.02)
    raise AssertionError(f"no forward and no report within {OUTCOME_TIMEOUT:.0f}s")
