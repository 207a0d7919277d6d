"""A hub client's AMQP connection (pika, AMQPS, SASL EXTERNAL): publish to ``hubsante`` with confirms, read
its own queues.  Every refusal the broker can answer is turned into a sentence naming the likely cause."""

from __future__ import annotations

import ssl
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.credentials import ExternalCredentials
from pika.spec import Basic, BasicProperties

from hub_dispatcher.protocol import HUB_EXCHANGE
from hub_operator.cli.errors import HubctlError
from hub_operator.cli.session import ClientSession

PERSISTENT = 2
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Delivery:
    queue: str
    body: bytes
    content_type: str | None
    delivery_tag: int
    redelivered: bool


class ClientConnection:
    """``with ClientConnection(session) as amqp: amqp.publish(...)``; the PEM material lives in a private
    temporary folder only while connecting (the ssl module loads keys from files)."""

    def __init__(self, session: ClientSession, *, timeout: float = CONNECT_TIMEOUT) -> None:
        self.session = session
        self.timeout = timeout
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    # -- connection -------------------------------------------------------------------------------------------
    def __enter__(self) -> ClientConnection:
        access, identity = self.session.access, self.session.identity
        with tempfile.TemporaryDirectory(prefix="hubctl-tls-") as folder:
            cert, key, ca = Path(folder) / "tls.crt", Path(folder) / "tls.key", Path(folder) / "ca.crt"
            cert.write_bytes(identity.cert_pem)
            key.touch(mode=0o600)
            key.write_bytes(identity.key_pem)
            ca.write_bytes(identity.broker_ca_pem)
            try:
                context = ssl.create_default_context(cafile=str(ca))
                context.minimum_version = ssl.TLSVersion.TLSv1_2
                context.load_cert_chain(str(cert), str(key))
            except (ssl.SSLError, ValueError) as error:
                raise HubctlError(f"the client certificate, key or broker CA is unusable: {error}") from None
        parameters = pika.ConnectionParameters(
            host=access.host,
            port=access.port,
            virtual_host=access.vhost,
            ssl_options=pika.SSLOptions(context, server_hostname=access.tls_server_name),
            credentials=ExternalCredentials(),
            connection_attempts=1,
            socket_timeout=self.timeout,
            stack_timeout=self.timeout,
            blocked_connection_timeout=30,
            heartbeat=30,
            client_properties={"connection_name": f"hubctl {self.session.client_id}"},
        )
        try:
            self._connection = pika.BlockingConnection(parameters)
        except pika.exceptions.AMQPConnectionError as error:
            raise _explain_connection_failure(error, self.session) from None
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if self._connection is not None and self._connection.is_open:
            try:
                self._connection.close()
            except pika.exceptions.AMQPError:
                pass  # closing a connection the broker already dropped

    @property
    def channel(self) -> BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            raise HubctlError("the AMQP channel is closed")
        return self._channel

    # -- publishing -------------------------------------------------------------------------------------------
    def publish(self, routing_key: str, body: bytes, content_type: str, message_id: str) -> None:
        """Persistent, mandatory, confirmed: returns once the broker has the message in a queue."""
        properties = BasicProperties(content_type=content_type, delivery_mode=PERSISTENT, message_id=message_id,
                                     app_id="hubctl")
        try:
            self.channel.basic_publish(HUB_EXCHANGE, routing_key, body, properties, mandatory=True)
        except pika.exceptions.UnroutableError:
            raise HubctlError(
                f"the broker routed the message to no queue (exchange {HUB_EXCHANGE}, routing key {routing_key})",
                hint=f"is {self.session.access.vhost} provisioned, and does it speak the "
                     f"{self.session.access.profile.value} protocol profile?") from None
        except pika.exceptions.NackError:
            raise HubctlError("the broker refused to take the message (negative confirm)") from None
        except pika.exceptions.ChannelClosedByBroker as error:
            raise _explain_channel_closed(error, self.session, routing_key) from None

    # -- reading ----------------------------------------------------------------------------------------------
    def depth(self, queue: str) -> int:
        try:
            return int(self.channel.queue_declare(queue, passive=True).method.message_count)
        except pika.exceptions.ChannelClosedByBroker as error:
            self._channel = self._connection.channel() if self._connection else None
            raise _explain_channel_closed(error, self.session, queue) from None

    def consume(self, queues: Iterable[str], handle: Callable[[Delivery], bool], *, timeout: float | None,
                prefetch: int = 10) -> None:
        """Calls ``handle`` for each delivery (acknowledged once it returns) until it returns False or
        ``timeout`` seconds pass (None: until interrupted)."""
        channel = self.channel
        channel.basic_qos(prefetch_count=prefetch)
        stop = False

        def on_message(queue: str) -> Callable[[BlockingChannel, Basic.Deliver, BasicProperties, bytes], None]:
            def callback(ch: BlockingChannel, method: Basic.Deliver, properties: BasicProperties, body: bytes) -> None:
                nonlocal stop
                if stop:
                    ch.basic_nack(method.delivery_tag, requeue=True)  # prefetched after the end: give it back
                    return
                keep_going = handle(Delivery(queue, body, properties.content_type, method.delivery_tag,
                                             method.redelivered))
                ch.basic_ack(method.delivery_tag)
                stop = not keep_going
            return callback

        for queue in queues:
            try:
                channel.basic_consume(queue, on_message(queue))
            except pika.exceptions.ChannelClosedByBroker as error:
                raise _explain_channel_closed(error, self.session, queue) from None
        deadline = None if timeout is None else time.monotonic() + timeout
        assert self._connection is not None
        while not stop:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            self._connection.process_data_events(time_limit=min(0.5, remaining) if remaining is not None else 0.5)


def _causes(error: BaseException) -> list[BaseException]:
    """pika wraps the real failure (socket, TLS, AMQP refusal) in workflow errors: unwrap them all."""
    found: list[BaseException] = []
    pending: list[object] = [error]
    while pending:
        item = pending.pop(0)
        if isinstance(item, BaseException) and item not in found:
            found.append(item)
            pending += [*item.args, *getattr(item, "exceptions", ()), getattr(item, "exception", None)]
    return found


def _explain_connection_failure(error: Exception, session: ClientSession) -> HubctlError:
    access = session.access
    where = f"amqps://{access.host}:{access.port}/{access.vhost}"
    causes = _causes(error)
    text = " ".join(repr(cause) for cause in causes)
    leaf = causes[-1]
    reason = f"{type(leaf).__name__}: {leaf}" if str(leaf) else type(leaf).__name__
    if any(isinstance(c, pika.exceptions.ProbableAccessDeniedError) for c in causes) or "NOT_ALLOWED" in text:
        return HubctlError(f"{session.identity.username} may not open vhost {access.vhost} ({where})",
                           hint="is the HubClient provisioned on this vhost (hubctl status), and not suspended?")
    if any(isinstance(c, pika.exceptions.ProbableAuthenticationError) for c in causes) or "ACCESS_REFUSED" in text:
        return HubctlError(f"the broker refused the login of {session.identity.username} ({where})",
                           hint="the certificate CN must be a broker user: is the HubClient provisioned (hubctl status)?")
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return HubctlError(f"the broker's certificate at {where} is not trusted or does not name {access.tls_server_name}",
                           hint="check the broker CA, or pass --tls-server-name when connecting through a tunnel")
    if "unknown ca" in text.lower() or "IncompatibleProtocolError" in text or "certificate required" in text.lower():
        return HubctlError(f"the TLS handshake with {where} failed: the broker does not accept this client certificate",
                           hint="is the certificate issued by the CA the broker trusts, and not expired?")
    if "refused" in text.lower() or "timed out" in text.lower() or "gaierror" in text or "Name or service" in text:
        return HubctlError(f"cannot reach the broker at {where}: {reason}",
                           hint="check the address (--amqps-host / --amqps-port, e.g. through kubectl port-forward)")
    return HubctlError(f"cannot connect to {where}: {reason}")


def _explain_channel_closed(error: pika.exceptions.ChannelClosedByBroker, session: ClientSession,
                            subject: str) -> HubctlError:
    if error.reply_code == 403:
        return HubctlError(f"access refused for {subject} on {session.access.vhost}: {error.reply_text}",
                           hint=f"{session.identity.username} may only publish with its own client ids "
                                f"({', '.join(session.identity.client_ids)}) and read its own queues")
    if error.reply_code == 404:
        return HubctlError(f"{subject} does not exist on {session.access.vhost}: {error.reply_text}",
                           hint="is the client provisioned on this vhost (hubctl status)?")
    return HubctlError(f"the broker closed the channel ({error.reply_code}): {error.reply_text}")
