"""The AMQP loop around the pure pipeline, and its delivery guarantees.

* One connection per process; one channel per input queue (``dispatch``, ``dispatch.dlq``) that consumes it,
  publishes its outputs (publisher confirms, ``mandatory``) and acks it.  Several replicas consuming the same
  queues share the work (competing consumers).
* Window: the channel's prefetch bounds the deliveries in flight, hence the unconfirmed publishes; each
  delivery runs ``process`` at once (on the event loop: measured faster than a thread, docs/dispatcher.md),
  publishes, and waits for its own confirm while the next deliveries go on: confirms are pipelined.
* An input is acked only after its output is confirmed (one ``multiple`` ack per loop turn, :mod:`acks`).
  A publish the broker returns (NO_ROUTE) goes back to the pipeline (``process_returned``: a 501 report, or a
  drop) before the input is acked.  A publish the broker nacks gives the input back (nack + requeue): never
  lost, never acked without its output.
* Connection or channel lost: in-flight work is abandoned unacked (the broker redelivers it: at-least-once,
  so a message confirmed but not yet acked is forwarded twice), then reconnect with exponential backoff
  and jitter.
* Stop (SIGTERM): cancel the consumers, let in-flight deliveries finish (bounded by ``drain_timeout``), send
  the last acks, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from time import monotonic, perf_counter
from typing import Any, Final

from hub_dispatcher.acks import AckWindow
from hub_dispatcher.amqp import BrokerEndpoint, inbound_of, properties_of
from hub_dispatcher.amqpclient import AmqpError, Channel, Connection, Delivery, PublishRefused
from hub_dispatcher.backoff import Backoff
from hub_dispatcher.logs import log_outcome
from hub_dispatcher.message import Inbound
from hub_dispatcher.metrics import DispatcherMetrics
from hub_dispatcher.outcome import Drop, Forward, Outcome, Publish, Report
from hub_dispatcher.pipeline import Pipeline
from hub_dispatcher.preferences import PreferencesFile
from hub_dispatcher.protocol import DEAD_LETTER_QUEUE, DISPATCH_QUEUE
from hub_dispatcher.settings import DispatcherSettings

log = logging.getLogger(__name__)

#: Everything the broker or the network can throw at a connection, a channel or a publish.
BROKER_ERRORS: Final = (OSError, AmqpError)  # TimeoutError and ssl.SSLError are OSErrors
#: A publish the broker refused (nack: e.g. a full queue refusing publishes) is retried after this, not in a
#: hot loop: the input stays unacked meanwhile, so nothing is lost.
REQUEUE_DELAY_SECONDS: Final = 1.0
#: How often a session checks that its consumers still exist (the broker cancels them if a queue is deleted).
WATCH_INTERVAL_SECONDS: Final = 1.0
#: A returned forward becomes a report, which may be returned in turn and become a drop: never deeper.
_MAX_RETURN_DEPTH: Final = 2


@dataclass(frozen=True)
class InputQueue:
    name: str
    process: Callable[[Inbound], Outcome]


def input_queues(pipeline: Pipeline) -> tuple[InputQueue, ...]:
    return (InputQueue(DISPATCH_QUEUE, pipeline.process), InputQueue(DEAD_LETTER_QUEUE, pipeline.process_dead_letter))


@dataclass
class WorkerStatus:
    """What ``/readyz`` reports."""

    inputs: tuple[str, ...]
    consuming: frozenset[str] = frozenset()
    draining: bool = False
    problem: str = "not connected yet"

    def readiness(self) -> tuple[bool, str]:
        if self.draining:
            return False, "stopping"
        missing = [name for name in self.inputs if name not in self.consuming]
        if missing:
            return False, f"not consuming {', '.join(missing)}: {self.problem}"
        return True, ""


class InFlight:
    """Deliveries received and not yet settled, across the lanes of a process (the ``in_flight`` gauge reads
    ``count`` when scraped)."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


@dataclass
class LaneContext:
    """What every lane of a process shares."""

    pipeline: Pipeline
    metrics: DispatcherMetrics
    in_flight: InFlight
    requeue_delay: float = REQUEUE_DELAY_SECONDS


class Lane:
    """One input queue on its own channel: consume, process, publish with confirm, ack after the confirm."""

    def __init__(self, queue: InputQueue, channel: Channel, context: LaneContext) -> None:
        self.queue = queue
        self.channel = channel
        self.context = context
        self.acks = AckWindow()
        self.consumer_tag: str | None = None
        self._settled = asyncio.Event()
        self._finishing = False
        self._acker: asyncio.Task[None] | None = None
        self._observe_dispatch = context.metrics.dispatch_observer(queue.name)

    async def start(self, prefetch: int) -> None:
        await self.channel.basic_qos(prefetch_count=prefetch)
        self._acker = asyncio.create_task(self._ack_settled(), name=f"acker {self.queue.name}")
        consume_ok = await self.channel.basic_consume(self.queue.name, self._on_delivery)
        self.consumer_tag = consume_ok.consumer_tag

    @property
    def consuming(self) -> bool:
        return (not self.channel.is_closed and self.consumer_tag is not None
                and self.consumer_tag in self.channel.consumers)

    async def stop_consuming(self) -> None:
        """No delivery follows the broker's cancel-ok; those before it are already counted in flight."""
        if self.consuming:
            assert self.consumer_tag is not None
            await self.channel.basic_cancel(self.consumer_tag)

    async def finish(self) -> None:
        """Lets the acker send its last ack, then sends what is left (graceful stop only; the session closes
        the channel next, which the broker answers once it has handled these acks)."""
        self._finishing = True
        self._settled.set()
        if self._acker is not None:
            await self._acker
        ack_up_to = self.acks.take()
        if ack_up_to is not None:
            await self.channel.basic_ack(ack_up_to, multiple=True)

    def abandon(self) -> None:
        if self._acker is not None:
            self._acker.cancel()

    # -- per delivery ------------------------------------------------------------------------------------
    def _on_delivery(self, message: Delivery) -> Coroutine[Any, Any, None]:
        """Called synchronously by the channel for each delivery, in order: the delivery is in flight from here,
        so a drain can never miss one whose task has not started yet."""
        tag = message.delivery_tag
        assert tag is not None
        self.acks.received(tag)
        self.context.in_flight.enter()
        return self._handle(message, tag)

    async def _handle(self, message: Delivery, tag: int) -> None:
        started = perf_counter()
        try:
            inbound = inbound_of(message)
            try:
                acked = await self._deliver(inbound, self.queue.process(inbound), started)
            except BROKER_ERRORS:
                raise
            except Exception:
                # The pipeline never raises; should it anyway, give the message back rather than lose it.
                log.exception("unexpected error on a delivery from %s; it is given back to the queue",
                              self.queue.name)
                acked = False
            if not acked:
                await asyncio.sleep(self.context.requeue_delay)
                await self.channel.basic_nack(tag, requeue=True)
                self.context.metrics.count_requeued(self.queue.name)
            self.acks.settle(tag, acked=acked)
            self._settled.set()
            self._observe_dispatch(perf_counter() - started)
        except BROKER_ERRORS as error:
            # The channel is gone: the broker gives the unacked delivery to a consumer again.
            log.debug("delivery %s from %s abandoned (%s): the broker will redeliver it",
                      tag, self.queue.name, error)
        finally:
            self.context.in_flight.leave()

    async def _deliver(self, inbound: Inbound, outcome: Outcome, started: float, depth: int = 0) -> bool:
        """Publishes the outcome and waits for its confirm; True when the input may be acked."""
        metrics = self.context.metrics
        if isinstance(outcome, Drop):
            metrics.count_dropped(self.queue.name)
            log_outcome(self.queue.name, inbound, outcome, event="dropped", seconds=perf_counter() - started)
            return True
        try:
            confirmation = await self._publish(outcome)
        except PublishRefused as error:
            log.warning("the broker refused a publish to %s (%s): the input goes back to %s",
                        outcome.routing_key, error, self.queue.name)
            return False
        if isinstance(confirmation, Delivery):
            metrics.count_returned()
            log_outcome(self.queue.name, inbound, outcome, event="returned", seconds=perf_counter() - started)
            if depth >= _MAX_RETURN_DEPTH:
                log.error("returned publish to %s dropped: returns nested too deep", outcome.routing_key)
                return True
            followup = self.context.pipeline.process_returned(inbound_of(confirmation))
            return await self._deliver(inbound, followup, started, depth + 1)
        if isinstance(outcome, Forward):
            sender_editor = self.context.pipeline.config.preferences.for_client(outcome.sender_id).editor
            metrics.count_routed(outcome, sender_editor)
            log_outcome(self.queue.name, inbound, outcome, event="routed", seconds=perf_counter() - started)
        elif isinstance(outcome, Report):
            metrics.count_report(outcome)
            log_outcome(self.queue.name, inbound, outcome, event="reported", seconds=perf_counter() - started)
        return True

    async def _publish(self, publish: Publish) -> object:
        """The broker's confirm, or the message itself if the broker returned it."""
        started = perf_counter()
        confirmation = await self.channel.basic_publish(
            publish.body, exchange=publish.exchange, routing_key=publish.routing_key,
            properties=properties_of(publish), mandatory=True,
        )
        self.context.metrics.observe_confirm(perf_counter() - started)
        return confirmation

    async def _ack_settled(self) -> None:
        """Acks the settled prefix once per wake-up: every delivery settled meanwhile shares one frame."""
        while not self._finishing:
            await self._settled.wait()
            self._settled.clear()
            ack_up_to = self.acks.take()
            if ack_up_to is not None:
                try:
                    await self.channel.basic_ack(ack_up_to, multiple=True)
                except BROKER_ERRORS:
                    return  # the session is ending; unacked deliveries are redelivered


@dataclass
class Session:
    """One connection to the broker and its lanes."""

    connection: Connection
    lanes: list[Lane] = field(default_factory=list)
    opened_at: float = field(default_factory=monotonic)

    @classmethod
    async def open(cls, endpoint: BrokerEndpoint, settings: DispatcherSettings, queues: tuple[InputQueue, ...],
                   context: LaneContext) -> Session:
        connection = await Connection.open(endpoint.url, endpoint.ssl_context, settings.connect_timeout_seconds)
        session = cls(connection)
        try:
            for queue in queues:
                lane = Lane(queue, await connection.channel(), context)
                session.lanes.append(lane)
                await lane.start(settings.prefetch)
        except BaseException:
            await session.close()
            raise
        return session

    @property
    def consuming(self) -> frozenset[str]:
        return frozenset(lane.queue.name for lane in self.lanes if lane.consuming)

    @property
    def unacked(self) -> int:
        return sum(lane.acks.outstanding for lane in self.lanes)

    async def wait_until_lost(self, stop: asyncio.Event) -> str | None:
        """Returns None when ``stop`` is set, or why the session ended."""
        closings: list[Awaitable[Any]] = [lane.channel.closing for lane in self.lanes]
        closings.append(self.connection.closing)
        watched = [asyncio.ensure_future(closing) for closing in closings]
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                done, _ = await asyncio.wait([stopping, *watched], timeout=WATCH_INTERVAL_SECONDS,
                                             return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    return None
                if done:
                    return _describe_closing(done.pop())
                cancelled = [lane.queue.name for lane in self.lanes if not lane.consuming]
                if cancelled:
                    return f"the broker cancelled the consumer of {', '.join(cancelled)} (queue deleted?)"
        finally:
            for future in (stopping, *watched):
                future.cancel()

    async def drain(self, in_flight: InFlight, timeout: float) -> bool:
        """Graceful stop: True when every delivery in flight settled in time."""
        try:
            for lane in self.lanes:
                await lane.stop_consuming()
        except BROKER_ERRORS as error:
            log.warning("could not cancel the consumers cleanly: %s", error)
        try:
            await asyncio.wait_for(in_flight.wait_idle(), timeout)
            drained = True
        except TimeoutError:
            log.warning("%d deliveries still in flight after %.0fs: the broker will redeliver them",
                        in_flight.count, timeout)
            drained = False
        for lane in self.lanes:
            try:
                await lane.finish()
            except BROKER_ERRORS as error:
                log.warning("last acks of %s not sent (%s): those messages will be redelivered",
                            lane.queue.name, error)
        return drained

    async def close(self) -> None:
        for lane in self.lanes:
            lane.abandon()
        with contextlib.suppress(*BROKER_ERRORS, asyncio.CancelledError):
            # Channels first: the broker answers Channel.Close-Ok once it has handled the acks sent before it,
            # which a Connection.Close alone does not promise.
            for lane in self.lanes:
                await lane.channel.close()
            await self.connection.close()


def _describe_closing(future: asyncio.Future[Any]) -> str:
    if future.cancelled():
        return "connection closed"
    error = future.exception()
    return f"{type(error).__name__}: {error}" if error is not None else "closed by the broker"


class Worker:
    """Serves one vhost until stopped: connect, consume, and reconnect with backoff when the broker goes."""

    def __init__(self, *, settings: DispatcherSettings, pipeline: Pipeline, metrics: DispatcherMetrics,
                 endpoint: BrokerEndpoint, backoff: Backoff | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.metrics = metrics
        self.endpoint = endpoint
        self.queues = input_queues(pipeline)
        self.status = WorkerStatus(tuple(queue.name for queue in self.queues))
        self.backoff = backoff or Backoff(settings.reconnect_initial_seconds, settings.reconnect_max_seconds)
        self.in_flight = InFlight()
        metrics.watch_in_flight(lambda: self.in_flight.count)
        self.context = LaneContext(pipeline, metrics, self.in_flight)

    async def run(self, stop: asyncio.Event) -> bool:
        """Returns once ``stop`` is set and the work in flight is drained: True if it all settled."""
        reloader = asyncio.create_task(self._reload_preferences(stop), name="preferences reloader")
        try:
            while not stop.is_set():
                session = await self._open_session(stop)
                if session is None:
                    continue
                lost = await session.wait_until_lost(stop)
                if lost is None:
                    return await self._stop(session)
                await self._lose(session, lost)
            return True
        finally:
            reloader.cancel()

    async def _open_session(self, stop: asyncio.Event) -> Session | None:
        try:
            session = await Session.open(self.endpoint, self.settings, self.queues, self.context)
        except BROKER_ERRORS as error:
            self.metrics.connect_failures.inc()
            self.status.problem = f"{type(error).__name__}: {error}"
            delay = self.backoff.next_delay()
            log.warning("cannot consume from %s (%s); retrying in %.1fs", self.endpoint.display,
                        self.status.problem, delay)
            await _sleep_unless(stop, delay)
            return None
        self.status.consuming = session.consuming
        self.metrics.connected.set(1)
        log.info("consuming %s on %s (prefetch %d per queue)", ", ".join(self.status.consuming),
                 self.endpoint.display, self.settings.prefetch)
        return session

    async def _lose(self, session: Session, reason: str) -> None:
        self.status.consuming = frozenset()
        self.status.problem = reason
        self.metrics.connected.set(0)
        self.metrics.connection_losses.inc()
        if monotonic() - session.opened_at >= self.backoff.maximum:
            self.backoff.reset()  # it had been stable: start again from short delays
        log.warning("lost the broker (%s); its %d unacked deliveries will be redelivered", reason,
                    session.unacked)
        await session.close()

    async def _stop(self, session: Session) -> bool:
        self.status.draining = True
        log.info("stopping: %d deliveries in flight", self.in_flight.count)
        drained = await session.drain(self.in_flight, self.settings.drain_timeout_seconds)
        await session.close()
        self.status.consuming = frozenset()
        self.metrics.connected.set(0)
        log.info("stopped%s", "" if drained else " (some deliveries left to the broker)")
        return drained

    async def _reload_preferences(self, stop: asyncio.Event) -> None:
        preferences = self.pipeline.config.preferences
        if not isinstance(preferences, PreferencesFile):
            return
        while not stop.is_set():
            await _sleep_unless(stop, self.settings.preferences_reload_seconds)
            if preferences.reload_if_changed():
                log.info("client preferences reloaded from %s (%d clients)", preferences.path,
                         len(preferences.current.clients))
            self.metrics.preferences_valid.set(0 if preferences.last_error else 1)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
