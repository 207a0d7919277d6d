"""The delivery rules of one input queue, against a scripted channel: ack only after the confirm, a returned
forward becomes a report, a refused publish gives the input back, a dead channel settles nothing."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from hub_dispatcher.amqpclient import ChannelClosed, ConsumeOk, Delivery, PublishRefused
from hub_dispatcher.message import Inbound
from hub_dispatcher.metrics import DispatcherMetrics
from hub_dispatcher.outcome import Drop, Forward, Outcome, Report
from hub_dispatcher.preferences import ClientPreference, MessageFormat, Preferences
from hub_dispatcher.reports import ErrorCode
from hub_dispatcher.worker import InFlight, InputQueue, Lane, LaneContext

SENDER, RECIPIENT = "fr.health.samu050", "fr.health.samu076"
CONFIRMED, RETURNED, REFUSED = "confirmed", "returned", "refused"


@dataclass
class ScriptedChannel:
    """Answers each publish as scripted (confirmed by default) and records acks and nacks."""

    answers: deque[object] = field(default_factory=deque)
    published: list[tuple[str, bytes]] = field(default_factory=list)
    acks: list[tuple[int, bool]] = field(default_factory=list)
    nacks: list[tuple[int, bool]] = field(default_factory=list)
    consumers: dict[str, Any] = field(default_factory=dict)
    is_closed: bool = False

    async def basic_qos(self, *, prefetch_count: int) -> None:
        self.prefetch = prefetch_count

    async def basic_consume(self, queue: str, callback: Any) -> ConsumeOk:
        self.consumers["ctag"] = callback
        return ConsumeOk("ctag")

    async def basic_publish(self, body: bytes, *, exchange: str, routing_key: str, properties: Any,
                            mandatory: bool) -> object:
        assert mandatory, "every publish is mandatory: an unroutable one must come back"
        self.published.append((routing_key, body))
        answer = self.answers.popleft() if self.answers else CONFIRMED
        if answer == CONFIRMED:
            return True
        if answer == RETURNED:
            return Delivery(None, False, exchange, routing_key,
                            ContentHeader(body_size=len(body), properties=properties), body,
                            reply_code=312, reply_text="NO_ROUTE")
        if answer == REFUSED:
            raise PublishRefused(f"the broker refused publish {len(self.published)} (basic.nack)")
        raise answer  # type: ignore[misc]

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.acks.append((delivery_tag, multiple))

    async def basic_nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        self.nacks.append((delivery_tag, requeue))

    def deliver(self, tag: int, body: bytes = b"{}") -> asyncio.Task[None]:
        """As the channel does: the consumer is called at once, its coroutine runs as a task."""
        message = Delivery(tag, False, "hubsante", SENDER,
                           ContentHeader(body_size=len(body), properties=Basic.Properties(
                               content_type="application/json", delivery_mode=2)), body)
        return asyncio.ensure_future(self.consumers["ctag"](message))


def forward(body: bytes = b"{}") -> Forward:
    return Forward(exchange="distribution", routing_key=f"{RECIPIENT}.message", body=body,
                   content_type="application/json", distribution_id=f"{SENDER}_1", sender_id=SENDER,
                   recipient_id=RECIPIENT, use_case="createCase")


def report(code: ErrorCode = ErrorCode.UNROUTABLE_MESSAGE) -> Report:
    return Report(exchange="distribution", routing_key=f"{SENDER}.info", body=b"{report}",
                  content_type="application/json", code=code, referenced_distribution_id=f"{SENDER}_1",
                  cause="no queue", reported_to=SENDER, stage="returned")


class StubPipeline:
    def __init__(self, outcome: Outcome | Exception, returned: Outcome | None = None) -> None:
        self.outcome = outcome
        self.returned_outcome = returned or report()
        self.returned: list[Inbound] = []
        self.config = SimpleNamespace(preferences=Preferences({SENDER: ClientPreference(MessageFormat.JSON, "acme")}))

    def process(self, inbound: Inbound) -> Outcome:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    def process_returned(self, inbound: Inbound) -> Outcome:
        self.returned.append(inbound)
        return self.returned_outcome


@dataclass
class Rig:
    lane: Lane
    channel: ScriptedChannel
    pipeline: StubPipeline
    metrics: DispatcherMetrics
    in_flight: InFlight

    async def run(self, *tags: int) -> None:
        tasks = [self.channel.deliver(tag) for tag in tags]
        await asyncio.gather(*tasks)
        await self.lane.finish()

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, {"vhost": "v", **labels}) or 0.0


async def rig(outcome: Outcome | Exception, *answers: object, returned: Outcome | None = None) -> Rig:
    channel = ScriptedChannel(deque(answers))
    pipeline = StubPipeline(outcome, returned)
    metrics = DispatcherMetrics("v")
    in_flight = InFlight()
    lane = Lane(InputQueue("dispatch", pipeline.process), channel,  # type: ignore[arg-type]
                LaneContext(pipeline, metrics, in_flight, requeue_delay=0))  # type: ignore[arg-type]
    await lane.start(prefetch=10)
    return Rig(lane, channel, pipeline, metrics, in_flight)


async def test_confirmed_forwards_are_acked_together_once_confirmed() -> None:
    r = await rig(forward())

    await r.run(1, 2, 3)

    assert [key for key, _ in r.channel.published] == [f"{RECIPIENT}.message"] * 3
    assert r.channel.acks == [(3, True)] and r.channel.nacks == []
    assert r.sample("hub_dispatcher_messages_routed_total", sender=SENDER, use_case="createCase",
                    editor="acme", format="json") == 3
    assert r.in_flight.count == 0


async def test_a_returned_forward_is_reported_to_its_sender_before_the_input_is_acked() -> None:
    r = await rig(forward(), RETURNED)

    await r.run(1)

    assert [key for key, _ in r.channel.published] == [f"{RECIPIENT}.message", f"{SENDER}.info"]
    assert r.pipeline.returned[0].routing_key == f"{RECIPIENT}.message"
    assert r.channel.acks == [(1, True)]
    assert r.sample("hub_dispatcher_returned_total") == 1
    assert r.sample("hub_dispatcher_reports_total", code="501", reason="UNROUTABLE_MESSAGE", stage="returned") == 1


async def test_a_returned_report_is_dropped_and_the_input_still_acked() -> None:
    r = await rig(forward(), RETURNED, RETURNED, returned=Drop("returned report: no loops"))

    await r.run(1)

    assert len(r.channel.published) == 1 and r.channel.acks == [(1, True)]
    assert r.sample("hub_dispatcher_dropped_total", input="dispatch") == 1


async def test_a_publish_the_broker_refuses_gives_the_input_back() -> None:
    r = await rig(forward(), REFUSED)

    await r.run(1)

    assert r.channel.nacks == [(1, True)] and r.channel.acks == []
    assert r.sample("hub_dispatcher_requeued_total", input="dispatch") == 1


async def test_a_refused_delivery_does_not_block_the_acks_of_the_next_ones() -> None:
    r = await rig(forward(), REFUSED)

    await r.run(1, 2)

    assert r.channel.nacks == [(1, True)] and r.channel.acks == [(2, True)]


async def test_a_drop_is_acked_without_publishing() -> None:
    r = await rig(Drop("a report on a report"))

    await r.run(1)

    assert r.channel.published == [] and r.channel.acks == [(1, True)]


async def test_an_unexpected_pipeline_error_gives_the_input_back() -> None:
    r = await rig(RuntimeError("bug"))

    await r.run(1)

    assert r.channel.nacks == [(1, True)] and r.channel.published == []


@pytest.mark.parametrize("failure", [ChannelClosed("closed"), ConnectionResetError("reset")])
async def test_a_dead_channel_settles_nothing_the_broker_redelivers(failure: Exception) -> None:
    r = await rig(forward(), failure)

    await asyncio.gather(r.channel.deliver(1))

    assert r.channel.acks == [] and r.channel.nacks == []
    assert r.in_flight.count == 0 and r.lane.acks.outstanding == 1
    r.lane.abandon()


async def test_a_delivery_is_in_flight_from_the_moment_it_arrives() -> None:
    r = await rig(forward())

    task = r.channel.deliver(1)  # the consumer was called, its task has not run yet

    assert r.in_flight.count == 1
    await task
    assert r.in_flight.count == 0
    await r.lane.finish()
