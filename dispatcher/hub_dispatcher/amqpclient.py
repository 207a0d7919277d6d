"""A lean AMQP 0-9-1 client: what the dispatcher needs, parsed in one loop per socket read.

Why not aiormq (used before): its frame plumbing — an asyncio queue hop and a reader task per frame, a lock, a
timeout scope and a random message id per publish, a scheduled callback per confirmed tag — cost about 0.25 ms
of CPU per routed message, three quarters of the dispatcher's (docs/dispatcher.md).  Here one ``data_received``
call parses every complete frame it was given, deliveries go straight to the consumer callback, publisher
confirms resolve plain futures, and a publish is one ``transport.write``.

Scope, and nothing more: one connection with a few channels; SASL EXTERNAL (the client certificate; the
broker takes the username from its CN) or PLAIN; heartbeats; publisher confirms; ``mandatory`` publishes and
their returns; consumers with manual acks; what the broker may start on its own (channel or connection close,
consumer cancel, flow, blocked/unblocked).  The hot methods (deliver, publish, ack, nack) are encoded and
decoded here; every other method and the message properties go through pamqp, the codec aiormq used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import struct
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from pamqp import commands, frame as pamqp_frame
from pamqp.base import Frame as Method
from pamqp.header import ContentHeader

log = logging.getLogger(__name__)

FRAME_METHOD: Final = 1
FRAME_HEADER: Final = 2
FRAME_BODY: Final = 3
FRAME_HEARTBEAT: Final = 8
FRAME_END: Final = b"\xce"
PROTOCOL_HEADER: Final = b"AMQP\x00\x00\x09\x01"
#: Frame size we propose; the broker's limit wins when smaller (RabbitMQ: 128 KiB by default).
FRAME_MAX: Final = 131072
REPLY_SUCCESS: Final = 200
CLOSE_TIMEOUT_SECONDS: Final = 5.0

_FRAME_HEADER = struct.Struct(">BHI")
_METHOD_ID = struct.Struct(">HH")
_DELIVERY_TAG_AND_BITS = struct.Struct(">QB")
_CONTENT_HEADER = struct.Struct(">HHQ")
_PUBLISH_PREFIX = struct.pack(">HHH", 60, 40, 0)
_BASIC_ACK = struct.pack(">HH", 60, 80)
_BASIC_NACK = struct.pack(">HH", 60, 120)
_HEARTBEAT_FRAME = _FRAME_HEADER.pack(FRAME_HEARTBEAT, 0, 0) + FRAME_END
_DELIVER, _ACK, _NACK = (60, 60), (60, 80), (60, 120)

CLIENT_CAPABILITIES: Final = {
    "publisher_confirms": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "basic.nack": True,
    "authentication_failure_close": True,
}


class AmqpError(Exception):
    """The broker or the connection failed the operation."""


class ConnectionClosed(AmqpError):
    """The connection is gone (closed by the broker, lost, or closed by us)."""


class ChannelClosed(AmqpError):
    """The channel is gone: the broker closed it (e.g. 404, 403, 406) or its connection went."""


class PublishRefused(AmqpError):
    """The broker nacked a publish (a queue refusing it): it was not taken."""


class ProtocolError(AmqpError):
    """The broker sent something this client cannot make sense of."""


def _reply(method: Any) -> str:
    return f"{method.reply_code} {method.reply_text}".strip()


def _read_short_string(payload: bytes, offset: int) -> tuple[str, int]:
    """The AMQP short string at ``offset``, and the offset after it."""
    end = offset + 1 + payload[offset]
    return payload[offset + 1:end].decode(), end


def _short_string(value: str) -> bytes:
    encoded = value.encode()
    if len(encoded) > 255:
        raise ValueError(f"AMQP short string longer than 255 bytes: {value[:40]!r}...")
    return bytes((len(encoded),)) + encoded


@dataclass(slots=True)
class Delivery:
    """A message the broker delivered to a consumer, or returned (``delivery_tag`` None, ``reply_*`` set)."""

    delivery_tag: int | None
    redelivered: bool
    exchange: str
    routing_key: str
    header: ContentHeader
    body: bytes = b""
    reply_code: int = 0
    reply_text: str = ""


@dataclass(frozen=True, slots=True)
class ConsumeOk:
    consumer_tag: str


Consumer = Callable[[Delivery], Coroutine[Any, Any, None]]


class _Incoming:
    """A delivery (``consumer_tag`` set) or a return (None) whose header and body frames are still coming."""

    __slots__ = ("delivery", "consumer_tag", "remaining", "parts")

    def __init__(self, delivery: Delivery, consumer_tag: str | None) -> None:
        self.delivery = delivery
        self.consumer_tag = consumer_tag
        self.remaining = -1
        self.parts: list[bytes] = []


class Channel:
    """One AMQP channel: confirms on, consumers, publishes.  Created by :meth:`Connection.channel`."""

    def __init__(self, connection: Connection, number: int) -> None:
        self.connection = connection
        self.number = number
        self.consumers: dict[str, Consumer] = {}
        self._closed: asyncio.Future[None] = connection.loop.create_future()
        self._closed.add_done_callback(_retrieve)
        self._rpc: deque[tuple[type[Method], asyncio.Future[Method]]] = deque()
        self._incoming: _Incoming | None = None
        self._publish_seq = 0
        #: publish sequence number -> its confirmation and, when mandatory, its message id (to match a return)
        self._confirms: dict[int, tuple[asyncio.Future[object], str | None]] = {}
        self._confirm_order: deque[int] = deque()
        self._returnable: dict[str, int] = {}
        self._message_id_prefix = os.urandom(6).hex() + "-"
        self._tasks: set[asyncio.Task[None]] = set()
        self._close_error: AmqpError | None = None

    @property
    def is_closed(self) -> bool:
        return self._closed.done()

    @property
    def closing(self) -> asyncio.Future[None]:
        """Done when the channel is closed: None when the client closed it, else the error.  Shielded: a waiter
        that gives up (and cancels what it waited on) does not close the channel."""
        return asyncio.shield(self._closed)

    # -- synchronous methods -------------------------------------------------------------------------------
    async def _call(self, method: Method, reply: type[Method]) -> Method:
        self._check_open()
        waiter: asyncio.Future[Method] = self.connection.loop.create_future()
        waiter.add_done_callback(_retrieve)
        self._rpc.append((reply, waiter))
        self.connection.write(pamqp_frame.marshal(method, self.number))
        return await waiter

    async def open(self) -> None:
        await self._call(commands.Channel.Open(), commands.Channel.OpenOk)
        await self._call(commands.Confirm.Select(), commands.Confirm.SelectOk)

    async def basic_qos(self, *, prefetch_count: int) -> None:
        await self._call(commands.Basic.Qos(prefetch_count=prefetch_count), commands.Basic.QosOk)

    async def basic_consume(self, queue: str, callback: Consumer) -> ConsumeOk:
        # The consumer is known before the broker can deliver: a delivery may follow Consume-Ok in the same read.
        tag = f"hub-dispatcher.{queue}.{os.urandom(4).hex()}"
        self.consumers[tag] = callback
        try:
            await self._call(commands.Basic.Consume(queue=queue, consumer_tag=tag), commands.Basic.ConsumeOk)
        except BaseException:
            self.consumers.pop(tag, None)
            raise
        return ConsumeOk(tag)

    async def basic_cancel(self, consumer_tag: str) -> None:
        await self._call(commands.Basic.Cancel(consumer_tag=consumer_tag), commands.Basic.CancelOk)
        self.consumers.pop(consumer_tag, None)

    async def close(self) -> None:
        if self.is_closed or self.connection.is_closed:
            return
        with contextlib.suppress(AmqpError, TimeoutError):
            await asyncio.wait_for(self._call(commands.Channel.Close(reply_code=REPLY_SUCCESS, reply_text="bye",
                                                                     class_id=0, method_id=0),
                                              commands.Channel.CloseOk), CLOSE_TIMEOUT_SECONDS)
        self._fail(ChannelClosed("channel closed by the client"), clean=True)

    # -- asynchronous methods --------------------------------------------------------------------------------
    def basic_publish(self, body: bytes, *, exchange: str, routing_key: str, properties: commands.Basic.Properties,
                      mandatory: bool = False) -> asyncio.Future[object]:
        """Writes the message; the future gives True once the broker confirmed it, the returned
        :class:`Delivery` if the broker could not route a ``mandatory`` one, or raises :class:`PublishRefused`
        (nack) or :class:`ChannelClosed`."""
        self._check_open()
        seq = self._publish_seq + 1
        if properties.message_id is None:
            # How a return is matched to its publish (as aiormq did: one id per publish).
            properties.message_id = f"{self._message_id_prefix}{seq}"
        method = b"".join((_PUBLISH_PREFIX, _short_string(exchange), _short_string(routing_key),
                           b"\x01" if mandatory else b"\x00"))
        header = _CONTENT_HEADER.pack(60, 0, len(body)) + properties.marshal()
        parts = [_FRAME_HEADER.pack(FRAME_METHOD, self.number, len(method)), method, FRAME_END,
                 _FRAME_HEADER.pack(FRAME_HEADER, self.number, len(header)), header, FRAME_END]
        chunk = self.connection.frame_max - 8
        for start in range(0, len(body), chunk):
            piece = body[start:start + chunk]
            parts += (_FRAME_HEADER.pack(FRAME_BODY, self.number, len(piece)), piece, FRAME_END)
        self.connection.write(b"".join(parts))
        # Registered once written: the broker's answer cannot come before this returns (one event loop).
        self._publish_seq = seq
        confirmation: asyncio.Future[object] = self.connection.loop.create_future()
        returnable = properties.message_id if mandatory else None
        self._confirms[seq] = (confirmation, returnable)
        self._confirm_order.append(seq)
        if returnable is not None:
            self._returnable[returnable] = seq
        return confirmation

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Written at once; :meth:`close` makes sure the broker handled it (Close-Ok comes after it)."""
        self._write_method(_BASIC_ACK + _DELIVERY_TAG_AND_BITS.pack(delivery_tag, 1 if multiple else 0))

    async def basic_nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        bits = (1 if multiple else 0) | (2 if requeue else 0)
        self._write_method(_BASIC_NACK + _DELIVERY_TAG_AND_BITS.pack(delivery_tag, bits))

    def _write_method(self, payload: bytes) -> None:
        self._check_open()
        self.connection.write(_FRAME_HEADER.pack(FRAME_METHOD, self.number, len(payload)) + payload + FRAME_END)

    def _check_open(self) -> None:
        if self._close_error is not None:
            raise self._close_error
        if self.connection.is_closed:
            raise ConnectionClosed("the connection is closed")

    # -- frames from the broker ---------------------------------------------------------------------------------
    def on_frame(self, frame_type: int, payload: bytes) -> None:
        if frame_type == FRAME_METHOD:
            self._on_method(payload)
        elif frame_type == FRAME_HEADER:
            self._on_header(payload)
        elif frame_type == FRAME_BODY:
            self._on_body(payload)
        else:
            raise ProtocolError(f"unexpected frame type {frame_type} on channel {self.number}")

    def _on_method(self, payload: bytes) -> None:
        if self._incoming is not None:
            raise ProtocolError(f"method frame on channel {self.number} in the middle of a message")
        method_id = _METHOD_ID.unpack_from(payload)
        if method_id == _DELIVER:
            self._on_deliver(payload)
        elif method_id == _ACK:
            tag, bits = _DELIVERY_TAG_AND_BITS.unpack_from(payload, 4)
            self._settle(tag, bool(bits & 1), None)
        elif method_id == _NACK:
            tag, bits = _DELIVERY_TAG_AND_BITS.unpack_from(payload, 4)
            self._settle(tag, bool(bits & 1), PublishRefused(f"the broker refused publish {tag} (basic.nack)"))
        else:
            self._on_other_method(_unmarshal_method(payload))

    def _on_deliver(self, payload: bytes) -> None:
        consumer_tag, offset = _read_short_string(payload, 4)
        delivery_tag, bits = _DELIVERY_TAG_AND_BITS.unpack_from(payload, offset)
        exchange, offset = _read_short_string(payload, offset + 9)
        routing_key, _ = _read_short_string(payload, offset)
        delivery = Delivery(delivery_tag, bool(bits & 1), exchange, routing_key, _NO_HEADER)
        self._incoming = _Incoming(delivery, consumer_tag)

    def _on_other_method(self, method: Method) -> None:
        if isinstance(method, commands.Basic.Return):
            delivery = Delivery(None, False, method.exchange, method.routing_key or "", _NO_HEADER,
                                reply_code=method.reply_code or 0, reply_text=method.reply_text)
            self._incoming = _Incoming(delivery, consumer_tag=None)
        elif isinstance(method, commands.Channel.Close):
            self.connection.write(pamqp_frame.marshal(commands.Channel.CloseOk(), self.number))
            log.warning("the broker closed channel %d: %s", self.number, _reply(method))
            self._fail(ChannelClosed(f"the broker closed the channel: {_reply(method)}"), clean=False)
        elif isinstance(method, commands.Basic.Cancel):
            # The broker cancels a consumer whose queue was deleted; the worker sees it as not consuming.
            self.consumers.pop(method.consumer_tag or "", None)
            log.warning("the broker cancelled consumer %s on channel %d", method.consumer_tag, self.number)
        elif isinstance(method, commands.Channel.Flow):
            self.connection.write(pamqp_frame.marshal(commands.Channel.FlowOk(active=method.active), self.number))
        elif self._rpc and isinstance(method, self._rpc[0][0]):
            _, waiter = self._rpc.popleft()
            if not waiter.done():
                waiter.set_result(method)
        else:
            raise ProtocolError(f"unexpected {method.name} on channel {self.number}")

    def _on_header(self, payload: bytes) -> None:
        incoming = self._incoming
        if incoming is None:
            raise ProtocolError(f"content header without a method on channel {self.number}")
        header = ContentHeader()
        header.unmarshal(payload)
        incoming.delivery.header = header
        incoming.remaining = header.body_size
        if incoming.remaining == 0:
            self._complete(incoming)

    def _on_body(self, payload: bytes) -> None:
        incoming = self._incoming
        if incoming is None or incoming.remaining < 0:
            raise ProtocolError(f"content body without a header on channel {self.number}")
        incoming.parts.append(payload)
        incoming.remaining -= len(payload)
        if incoming.remaining <= 0:
            self._complete(incoming)

    def _complete(self, incoming: _Incoming) -> None:
        self._incoming = None
        delivery = incoming.delivery
        parts = incoming.parts
        delivery.body = parts[0] if len(parts) == 1 else b"".join(parts)
        if incoming.consumer_tag is None:
            self._on_return(delivery)
            return
        consumer = self.consumers.get(incoming.consumer_tag)
        if consumer is None:
            log.warning("delivery %s for unknown consumer %s on channel %d: left unacked for redelivery",
                        delivery.delivery_tag, incoming.consumer_tag, self.number)
            return
        task = self.connection.loop.create_task(consumer(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._consumer_done)

    def _consumer_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a consumer callback failed", exc_info=task.exception())

    def _on_return(self, returned: Delivery) -> None:
        message_id = returned.header.properties.message_id
        seq = self._returnable.pop(message_id, None) if message_id else None
        pending = self._confirms.pop(seq, None) if seq is not None else None
        if pending is None:
            log.error("the broker returned a message this channel cannot match to a publish (%s)", message_id)
            return
        # The broker's confirm of a returned publish follows; it finds nothing left to settle.
        if not pending[0].done():
            pending[0].set_result(returned)

    def _settle(self, tag: int, multiple: bool, refused: PublishRefused | None) -> None:
        order, confirms = self._confirm_order, self._confirms
        tags: list[int] = []
        if multiple:
            while order and order[0] <= tag:
                tags.append(order.popleft())
        else:
            tags.append(tag)
        for seq in tags:
            pending = confirms.pop(seq, None)
            if pending is None:
                continue  # returned already, or settled by an earlier single confirm
            confirmation, returnable = pending
            if returnable is not None:
                self._returnable.pop(returnable, None)
            if refused is None:
                confirmation.set_result(True)
            else:
                confirmation.set_exception(refused)
        while order and order[0] not in confirms:
            order.popleft()  # settled one by one: keep the order queue as short as what is pending

    def _fail(self, error: AmqpError, *, clean: bool) -> None:
        """The channel is gone: everything waiting on it fails with ``error``; ``closing`` fails too unless
        the client closed it (``clean``)."""
        if self._close_error is not None:
            return
        self._close_error = error
        self._incoming = None
        for _, waiter in self._rpc:
            if not waiter.done():
                waiter.set_exception(error)
        self._rpc.clear()
        for confirmation, _ in self._confirms.values():
            if not confirmation.done():
                confirmation.set_exception(error)
                confirmation.add_done_callback(_retrieve)
        self._confirms.clear()
        self._confirm_order.clear()
        self._returnable.clear()
        self.consumers.clear()
        if not self._closed.done():
            if clean:
                self._closed.set_result(None)
            else:
                self._closed.set_exception(error)


_NO_HEADER: Final = ContentHeader()


def _unmarshal_method(payload: bytes) -> Method:
    index = struct.unpack_from(">I", payload)[0]
    method_class = commands.INDEX_MAPPING.get(index)
    if method_class is None:
        raise ProtocolError(f"unknown AMQP method 0x{index:08x}")
    method = method_class()
    method.unmarshal(payload[4:])
    return method


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Marks a future's exception as seen: a failure nobody awaited is not a bug worth a log line here."""
    if not future.cancelled():
        future.exception()


@dataclass(frozen=True)
class ConnectionParameters:
    host: str
    port: int
    vhost: str
    mechanism: str
    response: str
    heartbeat: int
    name: str

    @classmethod
    def from_url(cls, url: str) -> ConnectionParameters:
        """``amqps://host:port/<vhost>?auth=external&heartbeat=60&name=...`` (the form :mod:`amqp` builds)."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        external = query.get("auth", "").lower() == "external"
        user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (5671 if parts.scheme == "amqps" else 5672),
            vhost=unquote(parts.path[1:]) if len(parts.path) > 1 else "/",
            mechanism="EXTERNAL" if external else "PLAIN",
            response="" if external else f"\0{user}\0{password}",
            heartbeat=int(query.get("heartbeat", "60")),
            name=query.get("name", "hub-dispatcher"),
        )


class Connection(asyncio.Protocol):
    """One AMQP connection.  ``await Connection.open(url, ssl_context, timeout)``."""

    def __init__(self, parameters: ConnectionParameters) -> None:
        self.parameters = parameters
        self.loop = asyncio.get_running_loop()
        self.frame_max = FRAME_MAX
        self.heartbeat = 0
        self.blocked: str | None = None
        self._closed: asyncio.Future[None] = self.loop.create_future()
        self._closed.add_done_callback(_retrieve)
        self.channels: dict[int, Channel] = {}
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._handshake: deque[tuple[type[Method], asyncio.Future[Method]]] = deque()
        self._close_error: ConnectionClosed | None = None
        self._last_received = self.loop.time()
        self._heartbeat_timer: asyncio.TimerHandle | None = None

    # -- opening -------------------------------------------------------------------------------------------------
    @classmethod
    async def open(cls, url: str, ssl_context: ssl.SSLContext | None, timeout: float) -> Connection:
        parameters = ConnectionParameters.from_url(url)
        connection = cls(parameters)
        try:
            await asyncio.wait_for(connection._open(ssl_context), timeout)
        except BaseException:
            connection.abort()
            raise
        return connection

    async def _open(self, ssl_context: ssl.SSLContext | None) -> None:
        p = self.parameters
        start = self._expect(commands.Connection.Start)
        await self.loop.create_connection(lambda: self, p.host, p.port, ssl=ssl_context,
                                          server_hostname=p.host if ssl_context else None)
        await start
        tune = self._expect(commands.Connection.Tune)
        self.write(pamqp_frame.marshal(commands.Connection.StartOk(
            client_properties={"product": "hub-dispatcher", "connection_name": p.name,
                               "capabilities": CLIENT_CAPABILITIES},
            mechanism=p.mechanism, response=p.response), 0))
        proposed = await tune
        assert isinstance(proposed, commands.Connection.Tune)
        self.frame_max = min(FRAME_MAX, proposed.frame_max or FRAME_MAX)
        self.heartbeat = min(p.heartbeat, proposed.heartbeat) if p.heartbeat and proposed.heartbeat else 0
        self.write(pamqp_frame.marshal(commands.Connection.TuneOk(
            channel_max=proposed.channel_max, frame_max=self.frame_max, heartbeat=self.heartbeat), 0))
        opened = self._expect(commands.Connection.OpenOk)
        self.write(pamqp_frame.marshal(commands.Connection.Open(virtual_host=p.vhost), 0))
        await opened
        if self.heartbeat:
            self._heartbeat_timer = self.loop.call_later(self.heartbeat / 2, self._beat)

    def _expect(self, reply: type[Method]) -> asyncio.Future[Method]:
        waiter: asyncio.Future[Method] = self.loop.create_future()
        waiter.add_done_callback(_retrieve)  # a handshake that fails early leaves later waiters unawaited
        self._handshake.append((reply, waiter))
        return waiter

    async def channel(self) -> Channel:
        """A new channel with publisher confirms on."""
        number = next(n for n in range(1, len(self.channels) + 2) if n not in self.channels)
        channel = Channel(self, number)
        self.channels[number] = channel
        try:
            await channel.open()
        except BaseException:
            self.channels.pop(number, None)
            raise
        return channel

    # -- closing -------------------------------------------------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        return self._close_error is not None

    @property
    def closing(self) -> asyncio.Future[None]:
        """As :attr:`Channel.closing`, for the connection."""
        return asyncio.shield(self._closed)

    async def close(self) -> None:
        """Clean close: what was written before (acks) reaches the broker first."""
        if self.is_closed or self._transport is None:
            return
        closed = self._expect(commands.Connection.CloseOk)
        self.write(pamqp_frame.marshal(commands.Connection.Close(reply_code=REPLY_SUCCESS, reply_text="bye",
                                                                 class_id=0, method_id=0), 0))
        with contextlib.suppress(AmqpError, OSError, TimeoutError):
            await asyncio.wait_for(closed, CLOSE_TIMEOUT_SECONDS)
        self._lose(ConnectionClosed("connection closed by the client"), clean=True)
        self._transport.close()

    def abort(self) -> None:
        self._lose(ConnectionClosed("connection aborted"), clean=False)
        if self._transport is not None:
            self._transport.abort()

    def _lose(self, error: ConnectionClosed, *, clean: bool) -> None:
        if self._close_error is not None:
            return
        self._close_error = error
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
        for _, waiter in self._handshake:
            if not waiter.done():
                waiter.set_exception(error)
        self._handshake.clear()
        for channel in self.channels.values():
            channel._fail(ChannelClosed(str(error)), clean=clean)
        if not self._closed.done():
            if clean:
                self._closed.set_result(None)
            else:
                self._closed.set_exception(error)

    # -- asyncio.Protocol ----------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(PROTOCOL_HEADER)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "connection closed by the broker"
        self._lose(ConnectionClosed(reason), clean=False)

    def data_received(self, data: bytes) -> None:
        self._last_received = self.loop.time()
        buffer = self._buffer
        buffer += data
        position, available = 0, len(buffer)
        try:
            while available - position >= 8:
                frame_type, channel_number, size = _FRAME_HEADER.unpack_from(buffer, position)
                end = position + 7 + size
                if end >= available:
                    break
                if buffer[end] != 0xCE:
                    raise ProtocolError("frame without its end octet")
                payload = bytes(buffer[position + 7:end])
                position = end + 1
                if frame_type == FRAME_HEARTBEAT:
                    continue
                if channel_number == 0:
                    self._on_connection_method(payload)
                else:
                    channel = self.channels.get(channel_number)
                    if channel is None:
                        raise ProtocolError(f"frame for channel {channel_number}, which is not open")
                    channel.on_frame(frame_type, payload)
        except ProtocolError as error:
            log.error("AMQP protocol error, closing the connection: %s", error)
            self.abort()
            return
        except Exception:
            # A bug here must not leave a half-read stream: drop the connection, the broker redelivers.
            log.exception("unexpected error while reading from the broker; closing the connection")
            self.abort()
            return
        del buffer[:position]

    def _on_connection_method(self, payload: bytes) -> None:
        method = _unmarshal_method(payload)
        if isinstance(method, commands.Connection.Close):
            self.write(pamqp_frame.marshal(commands.Connection.CloseOk(), 0))
            self._lose(ConnectionClosed(f"the broker closed the connection: {_reply(method)}"), clean=False)
            if self._transport is not None:
                self._transport.close()
        elif isinstance(method, commands.Connection.Blocked):
            self.blocked = method.reason or "blocked"
            log.warning("the broker blocked this connection's publishes: %s", self.blocked)
        elif isinstance(method, commands.Connection.Unblocked):
            self.blocked = None
            log.warning("the broker unblocked this connection")
        elif self._handshake and isinstance(method, self._handshake[0][0]):
            _, waiter = self._handshake.popleft()
            if not waiter.done():
                waiter.set_result(method)
        else:
            raise ProtocolError(f"unexpected {method.name} on channel 0")

    # -- writing and heartbeats ---------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise self._close_error or ConnectionClosed("the connection is closed")
        self._transport.write(data)

    def _beat(self) -> None:
        if self.is_closed or self._transport is None:
            return
        if self.loop.time() - self._last_received > 2 * self.heartbeat:
            log.warning("no frame from the broker for %ds (heartbeat %ds): the connection is dead",
                        2 * self.heartbeat, self.heartbeat)
            self.abort()
            return
        with contextlib.suppress(AmqpError):
            self.write(_HEARTBEAT_FRAME)
        self._heartbeat_timer = self.loop.call_later(self.heartbeat / 2, self._beat)
