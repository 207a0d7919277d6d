"""A numbered stream of hub messages through a real broker, published and consumed the way a hub client must
behave when something fails (fault-injection system tests).

* :class:`ConfirmingPublisher` publishes every message persistent and ``mandatory`` with publisher confirms (a
  window of unconfirmed publishes) and keeps the set of messages the broker confirmed.  When its connection is
  lost, or the broker refuses (nacks) a publish, it reconnects and republishes every message not confirmed yet:
  the client's half of at-least-once delivery.  A republished message may already be in the broker, so it may
  arrive twice.
* :class:`RecipientConsumer` reads the recipient's queue, acks each message after recording it, and reconnects
  after a lost connection.  It records every arrival in order, so that duplicates and order can be measured.

Each message carries its index in its ``distributionID`` (``<sender>_fault-<run>-<index>``): the consumer finds
it without parsing the message.  Both run on the caller's event loop; blocking fault injections (a broker
restart) go to a thread (``asyncio.to_thread``) meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import monotonic
from typing import Final, cast

import aiormq
from aiormq import Channel
from aiormq.abc import AbstractChannel, AbstractConnection, DeliveredMessage
from aiormq.exceptions import AMQPError, ChannelInvalidStateError, DeliveryError
from hub_devenv.rabbitmq import ClientCredentials, LocalBroker
from pamqp.commands import Basic

log = logging.getLogger(__name__)

#: What a broker going away can raise from a connection, a channel, a publish or a confirm.
CONNECTION_ERRORS: Final = (OSError, AMQPError, ChannelInvalidStateError)
#: Pause between two connection attempts while the broker is away (clients retry; this keeps the log short).
RECONNECT_DELAY_SECONDS: Final = 0.5
#: A connection attempt that gets no AMQP handshake (a broker still starting accepts TCP first) is given up
#: after this and tried again: without it a client waited forever after a broker restart (once in four runs).
CONNECT_TIMEOUT_SECONDS: Final = 10.0
#: Pause before republishing what the broker nacked (a nack is the broker saying "not now").
NACK_RETRY_DELAY_SECONDS: Final = 0.5


def stream_message_id(sender: str, run: str, index: int) -> str:
    """The ``distributionID`` of message ``index`` of a stream (valid: ``<senderID>_<anything>``)."""
    return f"{sender}_fault-{run}-{index:08d}"


def index_reader(run: str) -> Callable[[bytes], int | None]:
    """Reads a stream message's index from its body (None for a message of another stream)."""
    pattern = re.compile(rb"_fault-" + re.escape(run.encode()) + rb"-(\d{8})")

    def index_of(body: bytes) -> int | None:
        match = pattern.search(body)
        return int(match.group(1)) if match else None

    return index_of


@dataclass(frozen=True)
class AmqpEndpoint:
    """Where and as whom a client connects: AMQPS with its certificate (EXTERNAL)."""

    broker: LocalBroker
    vhost: str
    credentials: ClientCredentials

    async def connect(self) -> AbstractConnection:
        return await asyncio.wait_for(aiormq.connect(self.broker.amqps_url(self.vhost),
                                                     context=self.broker.ssl_context(self.credentials)),
                                      CONNECT_TIMEOUT_SECONDS)


async def connect_until_up(endpoint: AmqpEndpoint, stop: asyncio.Event | None = None) -> AbstractConnection | None:
    """Connects, retrying while the broker is away; None if ``stop`` is set first."""
    while stop is None or not stop.is_set():
        try:
            return await endpoint.connect()
        except CONNECTION_ERRORS as error:
            log.debug("cannot connect to %s yet: %s", endpoint.vhost, error)
            await asyncio.sleep(RECONNECT_DELAY_SECONDS)
    return None


@dataclass
class ConfirmingPublisher:
    endpoint: AmqpEndpoint
    exchange: str
    routing_key: str
    bodies: Sequence[bytes]
    message_ids: Sequence[str]
    window: int = 256
    rate: float | None = None
    """Messages per second (a sender's steady flow); None: as fast as the confirm window allows."""
    confirmed: set[int] = field(default_factory=set)
    republished: int = 0
    """Publishes of a message already published once (after a lost connection or a nack)."""
    nacked: int = 0
    returned: int = 0
    """Publishes the broker returned (NO_ROUTE), never published again: none is expected, ``dispatch`` takes
    every routing key."""
    connections: int = 0
    lost_connections: list[str] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def total(self) -> int:
        return len(self.bodies)

    async def run(self) -> None:
        """Returns once the broker confirmed (or returned) every message, however many connections it took."""
        to_publish = list(range(self.total))
        published_once: set[int] = set()
        self.started_at = monotonic()
        while to_publish:
            connection = await connect_until_up(self.endpoint)
            assert connection is not None
            self.connections += 1
            try:
                to_publish = await self._publish_on(connection, to_publish, published_once)
            finally:
                with contextlib.suppress(*CONNECTION_ERRORS, asyncio.CancelledError):
                    await connection.close()
        self.finished_at = monotonic()

    async def _publish_on(self, connection: AbstractConnection, to_publish: list[int],
                          published_once: set[int]) -> list[int]:
        """Publishes until every message is confirmed or the connection is lost; what is left to publish."""
        try:
            # The concrete channel: its basic_publish can leave the confirm to be awaited (wait=False).
            channel = cast(Channel, await connection.channel(publisher_confirms=True))
        except CONNECTION_ERRORS as error:
            self.lost_connections.append(f"{type(error).__name__}: {error}")
            return to_publish
        window = asyncio.Semaphore(self.window)
        lost = asyncio.Event()
        refused: list[int] = []
        pending = list(to_publish)
        while pending and not lost.is_set():
            tasks: set[asyncio.Task[None]] = set()
            for position, index in enumerate(pending):
                if index not in published_once:
                    await self._pace(index)
                await window.acquire()
                if lost.is_set():  # the rest goes out on the next connection
                    window.release()
                    refused.extend(pending[position:])
                    break
                self.republished += index in published_once
                published_once.add(index)
                task = asyncio.create_task(self._publish_one(channel, index, window, lost, refused))
                tasks.add(task)
            await asyncio.gather(*tasks)
            # Republish in index order what was refused, or cut off with the connection.
            pending, refused = sorted(refused), []
            if pending and not lost.is_set():
                await asyncio.sleep(NACK_RETRY_DELAY_SECONDS)
        return pending

    async def _pace(self, index: int) -> None:
        """At ``rate``, message ``index`` goes out ``index / rate`` seconds after the start, not before."""
        if self.rate is not None and self.started_at is not None:
            delay = self.started_at + index / self.rate - monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _publish_one(self, channel: Channel, index: int, window: asyncio.Semaphore,
                           lost: asyncio.Event, refused: list[int]) -> None:
        properties = Basic.Properties(content_type="application/json", delivery_mode=2,
                                      message_id=self.message_ids[index])
        try:
            confirmation = await channel.basic_publish(self.bodies[index], exchange=self.exchange,
                                                       routing_key=self.routing_key, properties=properties,
                                                       mandatory=True, wait=False)
        except DeliveryError:  # basic.nack: the broker did not take it, publish it again
            self.nacked += 1
            refused.append(index)
        except CONNECTION_ERRORS as error:
            if not lost.is_set():
                self.lost_connections.append(f"{type(error).__name__}: {error}")
            lost.set()
            refused.append(index)
        else:
            if isinstance(confirmation, Basic.Ack):
                self.confirmed.add(index)
            else:  # returned (NO_ROUTE): a topology error, not a fault to ride out; the test fails on it
                self.returned += 1
        finally:
            window.release()


@dataclass(frozen=True)
class Arrival:
    index: int
    redelivered: bool
    """The broker's flag: this consumer (or a previous connection of it) had been given this copy before."""
    at: float


@dataclass
class RecipientConsumer:
    endpoint: AmqpEndpoint
    queue: str
    index_of: Callable[[bytes], int | None]
    prefetch: int = 256
    arrivals: list[Arrival] = field(default_factory=list)
    foreign: int = 0
    """Messages on the queue that belong to no stream of this run (none is expected)."""
    connections: int = 0
    _seen: set[int] = field(default_factory=set)

    @property
    def distinct(self) -> int:
        return len(self._seen)

    def has(self, count: int) -> bool:
        return len(self._seen) >= count

    async def run(self, stop: asyncio.Event) -> None:
        """Consumes until ``stop`` is set, reconnecting whenever the connection is lost."""
        while not stop.is_set():
            connection = await connect_until_up(self.endpoint, stop)
            if connection is None:
                return
            self.connections += 1
            try:
                await self._consume_on(connection, stop)
            finally:
                with contextlib.suppress(*CONNECTION_ERRORS, asyncio.CancelledError):
                    await connection.close()

    async def _consume_on(self, connection: AbstractConnection, stop: asyncio.Event) -> None:
        try:
            channel = await connection.channel()
            await channel.basic_qos(prefetch_count=self.prefetch)
            await channel.basic_consume(self.queue, lambda message: self._on_message(channel, message))
        except CONNECTION_ERRORS:
            return
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([stopping, connection.closing, channel.closing], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()

    async def _on_message(self, channel: AbstractChannel, message: DeliveredMessage) -> None:
        index = self.index_of(message.body)
        if index is None:
            self.foreign += 1
        else:
            self.arrivals.append(Arrival(index, bool(message.redelivered), monotonic()))
            self._seen.add(index)
        assert message.delivery_tag is not None
        with contextlib.suppress(*CONNECTION_ERRORS):  # a lost ack: the broker redelivers, we count it again
            await channel.basic_ack(message.delivery_tag)


@dataclass(frozen=True)
class StreamOutcome:
    """What a stream of ``total`` messages gave at the recipient."""

    total: int
    confirmed: frozenset[int]
    arrivals: tuple[Arrival, ...]

    @property
    def copies(self) -> Counter[int]:
        return Counter(arrival.index for arrival in self.arrivals)

    @property
    def missing(self) -> list[int]:
        """Messages never received (an empty list is the at-least-once promise for what was confirmed)."""
        return sorted(set(range(self.total)) - self.copies.keys())

    @property
    def duplicates(self) -> int:
        return len(self.arrivals) - len(self.copies)

    @property
    def redelivered_duplicates(self) -> int:
        """Duplicates flagged ``redelivered``: the recipient's own unacknowledged copy given again (its ack was
        lost with a connection, or the broker restarted before it recorded it)."""
        first: set[int] = set()
        count = 0
        for arrival in self.arrivals:
            if arrival.index in first:
                count += arrival.redelivered
            first.add(arrival.index)
        return count

    @property
    def out_of_order(self) -> int:
        """First arrivals of a message published before one already received (0: publish order kept)."""
        seen: set[int] = set()
        highest = -1
        late = 0
        for arrival in self.arrivals:
            if arrival.index in seen:
                continue
            seen.add(arrival.index)
            if arrival.index < highest:
                late += 1
            highest = max(highest, arrival.index)
        return late

    @property
    def largest_lag(self) -> int:
        """How many places behind publish order the latest first arrival was (0: publish order kept)."""
        seen: set[int] = set()
        highest = -1
        lag = 0
        for arrival in self.arrivals:
            if arrival.index in seen:
                continue
            seen.add(arrival.index)
            lag = max(lag, highest - arrival.index)
            highest = max(highest, arrival.index)
        return lag

    def describe(self) -> str:
        return (f"{self.total:,} messages, {len(self.confirmed):,} confirmed, {len(self.arrivals):,} received: "
                f"{len(self.missing)} missing, {self.duplicates} duplicates "
                f"({self.redelivered_duplicates} redelivered to the recipient, "
                f"{self.duplicates - self.redelivered_duplicates} extra copies), "
                f"{self.out_of_order} out of publish order (at most {self.largest_lag} places late)")
