"""A hub client for the dispatcher's integration tests: publishes as a client (mTLS, EXTERNAL, confirms,
``mandatory``) and reads its queues, through the real broker.

Synchronous (pika) on purpose: the tests wait for outcomes one at a time, and module-scoped fixtures (one
dispatcher per bundle) stay plain functions.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import pika
import pika.exceptions
import pika.spec
from pika.adapters.blocking_connection import BlockingChannel

from hub_devenv.rabbitmq import ClientCredentials, LocalBroker
from hub_dispatcher.edxl import ReceivedMessage, read_received

DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Delivered:
    """A message as a client received it."""

    queue: str
    body: bytes
    properties: pika.spec.BasicProperties

    @property
    def content_type(self) -> str:
        return self.properties.content_type or ""

    def read(self) -> ReceivedMessage:
        return read_received(self.body, self.properties.content_type)

    def json(self) -> Any:
        return orjson.loads(self.body)


class HubTestClient:
    def __init__(self, broker: LocalBroker, credentials: ClientCredentials, vhost: str) -> None:
        self.connection = pika.BlockingConnection(broker.pika_parameters(credentials, vhost, heartbeat=0))
        self.channel: BlockingChannel = self.connection.channel()
        self.channel.confirm_delivery()
        self.channel.basic_qos(prefetch_count=500)

    def close(self) -> None:
        if self.connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):  # e.g. closed by the broker meanwhile
                self.connection.close()

    def __enter__(self) -> HubTestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- publishing ------------------------------------------------------------------------------------------
    def publish(self, body: bytes | dict[str, Any], routing_key: str, *, content_type: str | None = "application/json",
                delivery_mode: int | None = 2, expiration: str | None = None, exchange: str = "hubsante") -> None:
        """Publishes and waits for the broker's confirm (pika raises if it is nacked or returned)."""
        payload = body if isinstance(body, bytes) else orjson.dumps(body)
        self.channel.basic_publish(exchange, routing_key, payload, pika.BasicProperties(
            content_type=content_type, delivery_mode=delivery_mode, expiration=expiration), mandatory=True)

    def publish_many(self, bodies: Iterable[bytes], routing_key: str, **kwargs: Any) -> int:
        count = 0
        for body in bodies:
            self.publish(body, routing_key, **kwargs)
            count += 1
        return count

    # -- reading ---------------------------------------------------------------------------------------------
    def count(self, queue: str) -> int:
        """Ready messages in ``queue`` (exact, unlike the management API's lagging counts)."""
        return int(self.channel.queue_declare(queue, passive=True).method.message_count)

    def get(self, queue: str) -> Delivered | None:
        method, properties, body = self.channel.basic_get(queue, auto_ack=True)
        return None if method is None else Delivered(queue, body, properties)

    def take(self, queue: str, count: int, *, timeout: float = DEFAULT_TIMEOUT) -> list[Delivered]:
        """Consumes exactly ``count`` messages (fails with what arrived if fewer come within ``timeout``)."""
        return self.take_until(queue, lambda received: len(received) >= count, timeout=timeout,
                               expectation=f"{count} messages")

    def take_until(self, queue: str, done: Callable[[list[Delivered]], bool], *, timeout: float = DEFAULT_TIMEOUT,
                   expectation: str = "the expected messages", strict: bool = True) -> list[Delivered]:
        """Consumes until ``done(received)``; after ``timeout``, fails (``strict``) or returns what came."""
        received: list[Delivered] = []
        deadline = time.monotonic() + timeout
        # Manual acks: what the broker pushed beyond ``done`` goes back to the queue on cancel (auto-ack loses it).
        for method, properties, body in self.channel.consume(queue, inactivity_timeout=0.2):
            if method is not None:
                self.channel.basic_ack(method.delivery_tag)
                received.append(Delivered(queue, body, properties))
            if done(received):
                break
            if time.monotonic() > deadline:
                self.channel.cancel()
                if not strict:
                    return received
                raise AssertionError(f"{queue}: expected {expectation} within {timeout:.0f}s, got {len(received)}: "
                                     f"{[describe(item) for item in received[:5]]}")
        self.channel.cancel()
        return received

    def wait_for(self, queue: str, match: Callable[[Delivered], bool], *, timeout: float = DEFAULT_TIMEOUT,
                 expectation: str = "a matching message") -> tuple[Delivered, list[Delivered]]:
        """The first message of ``queue`` that matches, and the ones consumed before it."""
        received = self.take_until(queue, lambda items: bool(items) and match(items[-1]), timeout=timeout,
                                   expectation=expectation)
        return received[-1], received[:-1]

    def reject_next(self, queue: str, *, timeout: float = DEFAULT_TIMEOUT) -> Delivered:
        """Consumes one message and rejects it without requeue, as a client refusing it (it dead-letters)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, properties, body = self.channel.basic_get(queue, auto_ack=False)
            if method is not None:
                self.channel.basic_reject(method.delivery_tag, requeue=False)
                return Delivered(queue, body, properties)
            self.connection.sleep(0.1)
        raise AssertionError(f"{queue}: nothing to reject within {timeout:.0f}s")

    def purge(self, queue: str) -> None:
        self.channel.queue_purge(queue)


def describe(delivered: Delivered) -> str:
    try:
        received = delivered.read()
    except ValueError:
        return f"<{len(delivered.body)} bytes, {delivered.content_type}>"
    if received.error_code is not None:
        return f"report {received.error_code} {received.error_status} about {received.referenced_distribution_id}"
    return f"{received.distribution_kind} {received.use_case} {received.distribution_id}"


def wait_until(condition: Callable[[], bool], *, timeout: float = DEFAULT_TIMEOUT, what: str) -> None:
    """Polls ``condition``; fails naming ``what`` if it never holds (a deadline for failure, never a measure)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)
