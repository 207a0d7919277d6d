"""Observing the broker's refusals exactly: TLS alerts, connections it closes, SASL mechanisms, its own log.

    handshake_alert(broker, credentials, ssl.TLSVersion.TLSv1_3)     # "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    closed = wait_closed_by_broker(connection, timeout=15)          # pika ConnectionClosedByBroker (320 ...)
    connection_refusal(error)                                       # (530, "NOT_ALLOWED - access to vhost ...")
    ForcedPlainCredentials(cn)                                      # sends PLAIN even when it is not offered
    log = BrokerLog(broker); ...; log.wait_for(text)                # what the node logged since the mark
"""

from __future__ import annotations

import ast
import re
import socket
import ssl
import time

import pika
import pika.exceptions
import pika.spec
from hub_devenv.rabbitmq import ClientCredentials, LocalBroker
from pika.credentials import PlainCredentials


def handshake_alert(broker: LocalBroker, credentials: ClientCredentials | None, version: ssl.TLSVersion) -> str:
    """The TLS alert the broker answers a handshake with, as OpenSSL names it (e.g. ``TLSV1_ALERT_UNKNOWN_CA``).

    The client sends nothing after its half of the handshake and waits for the broker's first byte: with TLS 1.3
    the broker checks the client certificate after the client considers the handshake done, so its alert is
    what that first read returns (a client writing first may see a broken connection instead of the alert).
    """
    context = broker.ssl_context(credentials)
    context.minimum_version = context.maximum_version = version
    with socket.create_connection((broker.host, broker.amqps_port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.recv(1)
        except ssl.SSLError as refused:
            return str(refused.reason)
    raise AssertionError(f"the broker accepted a {version.name} handshake it should have refused")


def wait_closed_by_broker(connection: pika.BlockingConnection, timeout: float) -> BaseException:
    """Serve ``connection`` until the broker closes it; the exception pika raised (fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection.process_data_events(time_limit=0.1)
        except pika.exceptions.AMQPConnectionError as closed:
            return closed
    raise AssertionError(f"the broker did not close the connection within {timeout} s")


#: How pika keeps the broker's ``connection.close`` when the connection fails while it opens (only its repr).
_BROKER_CLOSE_REPR = re.compile(r"ConnectionClosedByBroker: \((\d+)\) (.+)", re.DOTALL)


def connection_refusal(error: BaseException) -> tuple[int, str]:
    """(reply code, reply text) of the ``connection.close`` with which the broker refused to open a connection.

    pika raises ``ProbableAccessDeniedError`` (refused while opening the vhost) or ``ProbableAuthenticationError``
    (refused while authenticating) carrying only the repr of the broker's close; this reads it back exactly.
    """
    if isinstance(error, pika.exceptions.ConnectionClosedByBroker):
        return error.reply_code, error.reply_text
    match = _BROKER_CLOSE_REPR.fullmatch(str(error.args[0]) if error.args else "")
    if match is None:
        raise AssertionError(f"the broker did not refuse with a connection.close: {error!r}")
    return int(match.group(1)), str(ast.literal_eval(match.group(2)))


class ForcedPlainCredentials(PlainCredentials):
    """PLAIN credentials that answer ``connection.start`` with PLAIN whatever the broker offers.

    pika's own PlainCredentials refuse to when PLAIN is not offered (``AuthenticationError``), so the broker's
    answer could not be observed.  ``offered`` keeps the mechanisms the broker listed.
    """

    def __init__(self, username: str, password: str = "") -> None:
        super().__init__(username, password)
        self.offered: list[bytes] = []

    def __deepcopy__(self, memo: dict[int, object]) -> ForcedPlainCredentials:
        return self  # pika copies the credentials it is given: keep this one, which records what was offered

    def response_for(self, start: pika.spec.Connection.Start) -> tuple[bytes, bytes]:
        self.offered.append(bytes(start.mechanisms))
        return PlainCredentials.TYPE.encode(), b"\0" + self.username.encode() + b"\0" + self.password.encode()


class BrokerLog:
    """The node's log file from a mark on: what the broker says about a refusal it does not send the client."""

    def __init__(self, broker: LocalBroker) -> None:
        self.path = broker.log_path
        self._offset = self.path.stat().st_size if self.path.exists() else 0

    def since_mark(self) -> str:
        with open(self.path, "rb") as log:
            log.seek(self._offset)
            return log.read().decode(errors="replace")

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        """The log written since the mark, once it contains ``text`` (the node flushes its log asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            written = self.since_mark()
            if text in written:
                return written
            if time.monotonic() > deadline:
                raise AssertionError(f"the broker did not log {text!r} within {timeout} s; it logged:\n{written[-3000:]}")
            time.sleep(0.1)
