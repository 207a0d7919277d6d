"""The lean AMQP client against a scripted broker: frames as pamqp (the reference codec) writes and reads them,
fed in pieces of any size, and every promise the worker builds on (confirms, returns, nacks, closes)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pamqp import commands, frame as pamqp_frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from hub_dispatcher.amqpclient import (
    Channel,
    ChannelClosed,
    Connection,
    ConnectionClosed,
    ConnectionParameters,
    Delivery,
    PublishRefused,
)

PARAMETERS = ConnectionParameters(host="broker", port=5671, vhost="15-15_v1.5", mechanism="EXTERNAL", response="",
                                  heartbeat=0, name="test")


@dataclass
class RecordingTransport:
    """Stands in for the TLS socket: keeps what the client writes."""

    written: bytearray = field(default_factory=bytearray)
    closed: bool = False
    aborted: bool = False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def frames(self) -> Iterator[tuple[int, Any]]:
        """(channel, frame) of everything written so far, decoded by pamqp; then forgotten."""
        data = bytes(self.written)
        self.written.clear()
        while data:
            consumed, channel, decoded = pamqp_frame.unmarshal(data)
            data = data[consumed:]
            yield channel, decoded


@dataclass
class Rig:
    connection: Connection
    channel: Channel
    transport: RecordingTransport
    delivered: list[Delivery] = field(default_factory=list)

    def feed(self, *frames: tuple[Any, int], piece: int | None = None) -> None:
        """The broker sends ``frames`` ((frame, channel) pairs); ``piece``: in reads of that many bytes."""
        data = b"".join(pamqp_frame.marshal(value, channel) for value, channel in frames)
        step = piece or len(data)
        for start in range(0, len(data), step):
            self.connection.data_received(data[start:start + step])

    async def consumer(self, delivery: Delivery) -> None:
        self.delivered.append(delivery)


@pytest.fixture
async def rig() -> Rig:
    connection = Connection(PARAMETERS)
    transport = RecordingTransport()
    connection._transport = transport  # type: ignore[assignment]
    channel = Channel(connection, 1)
    connection.channels[1] = channel
    rig = Rig(connection, channel, transport)
    channel.consumers["ctag"] = rig.consumer
    return rig


def delivery_frames(tag: int, body: bytes, *, channel: int = 1, frame_max: int = 131072,
                    **properties: Any) -> list[tuple[Any, int]]:
    frames: list[tuple[Any, int]] = [
        (commands.Basic.Deliver(consumer_tag="ctag", delivery_tag=tag, redelivered=tag % 2 == 0,
                                exchange="hubsante", routing_key="fr.health.samu050"), channel),
        (ContentHeader(body_size=len(body), properties=commands.Basic.Properties(**properties)), channel),
    ]
    frames += [(ContentBody(body[i:i + frame_max]), channel) for i in range(0, len(body), frame_max)]
    return frames


def publish(rig: Rig, body: bytes = b"{}", routing_key: str = "fr.health.samu076.message",
            mandatory: bool = True) -> asyncio.Future[object]:
    return rig.channel.basic_publish(body, exchange="distribution", routing_key=routing_key, mandatory=mandatory,
                                     properties=commands.Basic.Properties(content_type="application/json",
                                                                          delivery_mode=2))


async def settle_tasks() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


@pytest.mark.parametrize("piece", [None, 1, 7, 100])
async def test_deliveries_arrive_whole_and_in_order_however_the_bytes_are_cut(rig: Rig, piece: int | None) -> None:
    big = bytes(range(256)) * 40  # 10 KiB: three body frames of 4 KiB
    rig.feed(*delivery_frames(1, b'{"a": 1}', content_type="application/json", delivery_mode=2,
                              headers={"x-death": [{"reason": "expired", "count": 1}]}),
             *delivery_frames(2, big, frame_max=4096, content_type="application/xml"),
             *delivery_frames(3, b"", delivery_mode=1), piece=piece)
    await settle_tasks()

    assert [d.delivery_tag for d in rig.delivered] == [1, 2, 3]
    first, second, third = rig.delivered
    assert first.body == b'{"a": 1}' and first.routing_key == "fr.health.samu050" and first.exchange == "hubsante"
    assert first.header.properties.headers == {"x-death": [{"reason": "expired", "count": 1}]}
    assert (first.redelivered, second.redelivered) == (False, True)
    assert second.body == big and second.header.properties.content_type == "application/xml"
    assert third.body == b"" and third.header.properties.delivery_mode == 1


async def test_a_publish_is_the_frames_pamqp_reads_back_split_at_the_frame_size(rig: Rig) -> None:
    rig.connection.frame_max = 4096
    body = b"x" * 10000

    publish(rig, body)

    frames = list(rig.transport.frames())
    method, header, *bodies = (value for _, value in frames)
    assert isinstance(method, commands.Basic.Publish)
    assert (method.exchange, method.routing_key, method.mandatory) == ("distribution",
                                                                        "fr.health.samu076.message", True)
    assert isinstance(header, ContentHeader) and header.body_size == 10000
    assert header.properties.content_type == "application/json" and header.properties.delivery_mode == 2
    assert header.properties.message_id  # what a return is matched by
    assert [len(b.value) for b in bodies] == [4088, 4088, 1824]
    assert all(channel == 1 for channel, _ in frames)


async def test_confirms_single_and_multiple_resolve_exactly_their_publishes(rig: Rig) -> None:
    futures = [publish(rig) for _ in range(5)]

    rig.feed((commands.Basic.Ack(delivery_tag=2), 1))
    assert [f.done() for f in futures] == [False, True, False, False, False]
    rig.feed((commands.Basic.Ack(delivery_tag=4, multiple=True), 1))
    assert [f.done() for f in futures] == [True, True, True, True, False]
    rig.feed((commands.Basic.Nack(delivery_tag=5), 1))

    assert all(f.result() is True for f in futures[:4])
    with pytest.raises(PublishRefused):
        futures[4].result()
    assert not rig.channel._confirms and not rig.channel._confirm_order and not rig.channel._returnable


async def test_a_returned_publish_resolves_to_the_returned_message_and_its_confirm_changes_nothing(rig: Rig) -> None:
    routed, unroutable = publish(rig), publish(rig, b'{"to": "nobody"}', "fr.health.samu099.message")
    frames = list(rig.transport.frames())
    returned_properties = frames[4][1].properties  # the second publish's header, as the broker sends it back

    rig.feed((commands.Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="distribution",
                                    routing_key="fr.health.samu099.message"), 1),
             (ContentHeader(body_size=16, properties=returned_properties), 1), (ContentBody(b'{"to": "nobody"}'), 1),
             (commands.Basic.Ack(delivery_tag=2), 1), (commands.Basic.Ack(delivery_tag=1), 1))

    returned = unroutable.result()
    assert isinstance(returned, Delivery) and returned.delivery_tag is None
    assert (returned.reply_code, returned.reply_text, returned.routing_key) == (312, "NO_ROUTE",
                                                                               "fr.health.samu099.message")
    assert returned.body == b'{"to": "nobody"}'
    assert routed.result() is True
    assert not rig.channel._confirms and not rig.channel._returnable


async def test_the_broker_closing_the_channel_fails_what_waits_on_it(rig: Rig) -> None:
    pending = publish(rig)
    closing = rig.channel.closing

    rig.feed((commands.Channel.Close(reply_code=406, reply_text="PRECONDITION_FAILED - unknown delivery tag 9",
                                     class_id=60, method_id=80), 1))

    with pytest.raises(ChannelClosed, match="406 PRECONDITION_FAILED - unknown delivery tag 9"):
        pending.result()
    with pytest.raises(ChannelClosed):
        await closing
    assert [type(value) for _, value in rig.transport.frames()][-1] is commands.Channel.CloseOk
    with pytest.raises(ChannelClosed):
        publish(rig)
    assert not rig.connection.is_closed


async def test_the_broker_closing_the_connection_fails_every_channel(rig: Rig) -> None:
    pending = publish(rig)

    rig.feed((commands.Connection.Close(reply_code=320, reply_text="CONNECTION_FORCED - shutdown",
                                        class_id=0, method_id=0), 0))

    with pytest.raises(ChannelClosed, match="320 CONNECTION_FORCED"):
        pending.result()
    with pytest.raises(ConnectionClosed, match="320 CONNECTION_FORCED"):
        await rig.connection.closing
    assert [type(value) for _, value in rig.transport.frames()][-1] is commands.Connection.CloseOk
    assert rig.transport.closed and rig.channel.is_closed


async def test_a_corrupt_stream_drops_the_connection_rather_than_guessing(rig: Rig) -> None:
    pending = publish(rig)
    frame = bytearray(pamqp_frame.marshal(commands.Basic.Ack(delivery_tag=1), 1))
    frame[-1] = 0x00  # not the frame-end octet

    rig.connection.data_received(bytes(frame))

    assert rig.transport.aborted and rig.connection.is_closed
    with pytest.raises(ChannelClosed):
        pending.result()


async def test_a_consumer_cancelled_by_the_broker_is_forgotten(rig: Rig) -> None:
    rig.feed((commands.Basic.Cancel(consumer_tag="ctag"), 1))

    assert "ctag" not in rig.channel.consumers and not rig.channel.is_closed


async def test_giving_up_waiting_on_closing_does_not_close_anything(rig: Rig) -> None:
    waiter = asyncio.ensure_future(rig.channel.closing)
    connection_waiter = asyncio.ensure_future(rig.connection.closing)
    await asyncio.sleep(0)

    waiter.cancel()
    connection_waiter.cancel()
    await asyncio.sleep(0)

    assert not rig.channel.is_closed and not rig.connection.is_closed
    publish(rig)  # still usable


async def test_acks_and_nacks_are_the_frames_the_broker_expects(rig: Rig) -> None:
    await rig.channel.basic_ack(42, multiple=True)
    await rig.channel.basic_nack(43, requeue=True)

    ack, nack = (value for _, value in rig.transport.frames())
    assert isinstance(ack, commands.Basic.Ack) and (ack.delivery_tag, ack.multiple) == (42, True)
    assert isinstance(nack, commands.Basic.Nack) and (nack.delivery_tag, nack.multiple, nack.requeue) == (
        43, False, True)


def test_the_url_gives_host_vhost_mechanism_and_heartbeat() -> None:
    external = ConnectionParameters.from_url(
        "amqps://broker.hub:5671/15-15_v1.5?auth=external&heartbeat=30&name=hub-dispatcher%20x")
    assert (external.host, external.port, external.vhost, external.mechanism, external.response) == (
        "broker.hub", 5671, "15-15_v1.5", "EXTERNAL", "")
    assert (external.heartbeat, external.name) == (30, "hub-dispatcher x")
    plain = ConnectionParameters.from_url("amqp://user:p%40ss@localhost/%2F")
    assert (plain.port, plain.vhost, plain.mechanism, plain.response) == (5672, "/", "PLAIN", "\0user\0p@ss")


async def test_heartbeats_are_sent_and_a_silent_broker_is_given_up(rig: Rig) -> None:
    rig.connection.heartbeat = 10
    rig.connection._beat()
    assert [value.name for _, value in rig.transport.frames()] == ["Heartbeat"]
    assert not rig.transport.aborted

    rig.connection._last_received -= 21  # nothing from the broker for more than two heartbeats

    rig.connection._beat()
    assert rig.transport.aborted and rig.connection.is_closed
    with pytest.raises(ConnectionClosed):
        await rig.connection.closing
