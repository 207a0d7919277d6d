"""The security matrix (docs/security.md): every attack of a client, or of a stolen credential, against the hub
the operator provisioned, and the exact refusal it meets.

Two clients, A (``fr.health.samu050``) and B (``fr.health.samu076``), share two dispatched vhosts; B alone is
granted a third.  Each cell attacks as A (or with a vhost's dispatcher certificate) and checks the refusal to
the letter: AMQP reply code and text, TLS alert, the broker's own log line when the client is told nothing,
or the RS-ERROR report (status code, status string, cause) for what only the dispatcher can see.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
import pika
import pika.exceptions
import pytest
from hub_devenv.rabbitmq import ClientCredentials
from hub_dispatcher.protocol import DISPATCH_QUEUE, DISTRIBUTION_EXCHANGE, HUB_EXCHANGE, HUB_SENDER_ID, QueueKind
from hub_dispatcher.reports import ErrorCode
from hub_operator.broker_sync import REVOCATION_REASON
from hub_operator.pki import CertificateAuthority
from pika.adapters.blocking_connection import BlockingChannel
from pika.credentials import PlainCredentials

from tests.helpers.broker_refusals import (
    BrokerLog,
    ForcedPlainCredentials,
    connection_refusal,
    handshake_alert,
    wait_closed_by_broker,
)
from tests.integration.operator.operator_manifests import hub_client
from tests.system.conftest import (
    A_CLIENT_ID,
    B_CLIENT_ID,
    DISPATCHED_VHOSTS,
    IMPERSONATED_CLIENT_ID,
    SAMU_FIRE,
    SAMU_SAMU,
    SAMU_SMUR,
    SystemHub,
    SystemVHost,
)

pytestmark = [pytest.mark.cluster, pytest.mark.broker, pytest.mark.slow]

SECURITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
REVOCATION_TIMEOUT = 30.0


# -- refusals on a channel: permissions and topic permissions ----------------------------------------------------
class Identity(enum.Enum):
    CLIENT_A = "client A's certificate"
    DISPATCHER = "the vhost's dispatcher certificate"


@dataclass(frozen=True)
class Parties:
    """The names one cell involves in one vhost, as the broker spells them in its refusals."""

    vhost: str
    user: str
    """The attacking identity's username (its certificate CN)."""
    victim: str
    own_routing_key: str
    victim_routing_key: str
    own_queue: str
    victim_queue: str

    @classmethod
    def of(cls, vhost: SystemVHost, user: str) -> Parties:
        return cls(vhost.name, user, B_CLIENT_ID, vhost.routing_key(A_CLIENT_ID), vhost.routing_key(B_CLIENT_ID),
                   vhost.queue(A_CLIENT_ID), vhost.queue(B_CLIENT_ID))


Attack = Callable[[BlockingChannel, Parties, bytes], object]


@dataclass(frozen=True)
class ChannelCell:
    id: str
    identity: Identity
    attack: Attack
    reply_code: int
    reply_text: str
    """With ``{vhost}``, ``{user}``, ``{victim_queue}``... from :class:`Parties`."""

    def expected(self, parties: Parties) -> tuple[int, str]:
        return self.reply_code, self.reply_text.format(**asdict(parties))


def _publish(exchange: str, routing_key: str, *, user_id: Callable[[Parties], str | None] = lambda p: None) -> Attack:
    def attack(channel: BlockingChannel, parties: Parties, body: bytes) -> None:
        key = routing_key.format(**asdict(parties))
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=2, user_id=user_id(parties))
        channel.basic_publish(exchange, key, body, properties, mandatory=True)

    return attack


def _on_queue(operation: Callable[[BlockingChannel, str], object], queue: str) -> Attack:
    return lambda channel, parties, body: operation(channel, queue.format(**asdict(parties)))


REFUSED_QUEUE = "ACCESS_REFUSED - access to queue '{queue}' in vhost '{{vhost}}' refused for user '{{user}}'"
REFUSED_EXCHANGE = "ACCESS_REFUSED - access to exchange '{exchange}' in vhost '{{vhost}}' refused for user '{{user}}'"
SPY_QUEUE = "fr.health.samu050.spy"

CHANNEL_CELLS: tuple[ChannelCell, ...] = (
    ChannelCell("publish-with-b-routing-key", Identity.CLIENT_A, _publish(HUB_EXCHANGE, "{victim_routing_key}"), 403,
                "ACCESS_REFUSED - access to topic '{victim_routing_key}' in exchange 'hubsante' in vhost '{vhost}' "
                "refused for user '{user}'"),
    ChannelCell("publish-to-distribution-bypassing-the-dispatcher", Identity.CLIENT_A,
                _publish(DISTRIBUTION_EXCHANGE, "{victim_queue}"), 403,
                REFUSED_EXCHANGE.format(exchange=DISTRIBUTION_EXCHANGE)),
    ChannelCell("publish-to-b-queue-through-the-default-exchange", Identity.CLIENT_A, _publish("", "{victim_queue}"),
                403, REFUSED_EXCHANGE.format(exchange="amq.default")),
    ChannelCell("spoofed-user-id-property", Identity.CLIENT_A,
                _publish(HUB_EXCHANGE, "{own_routing_key}", user_id=lambda parties: parties.victim), 406,
                "PRECONDITION_FAILED - user_id property set to '{victim}' but authenticated user was '{user}'"),
    ChannelCell("get-from-b-queue", Identity.CLIENT_A, _on_queue(lambda c, q: c.basic_get(q), "{victim_queue}"),
                403, REFUSED_QUEUE.format(queue="{victim_queue}")),
    ChannelCell("consume-b-queue", Identity.CLIENT_A,
                _on_queue(lambda c, q: c.basic_consume(q, lambda *delivery: None), "{victim_queue}"),
                403, REFUSED_QUEUE.format(queue="{victim_queue}")),
    ChannelCell("consume-the-dispatch-queue", Identity.CLIENT_A, _on_queue(lambda c, q: c.basic_get(q), DISPATCH_QUEUE),
                403, REFUSED_QUEUE.format(queue=DISPATCH_QUEUE)),
    ChannelCell("purge-b-queue", Identity.CLIENT_A, _on_queue(lambda c, q: c.queue_purge(q), "{victim_queue}"),
                403, REFUSED_QUEUE.format(queue="{victim_queue}")),
    ChannelCell("declare-a-queue", Identity.CLIENT_A,
                _on_queue(lambda c, q: c.queue_declare(q, durable=True), SPY_QUEUE),
                403, REFUSED_QUEUE.format(queue=SPY_QUEUE)),
    ChannelCell("declare-an-exchange", Identity.CLIENT_A,
                lambda channel, parties, body: channel.exchange_declare("spy", "fanout"),
                403, REFUSED_EXCHANGE.format(exchange="spy")),
    ChannelCell("bind-own-queue-to-every-routing-key", Identity.CLIENT_A,
                _on_queue(lambda c, q: c.queue_bind(q, HUB_EXCHANGE, "#"), "{own_queue}"),
                403, REFUSED_QUEUE.format(queue="{own_queue}")),
    ChannelCell("delete-b-queue", Identity.CLIENT_A, _on_queue(lambda c, q: c.queue_delete(q), "{victim_queue}"),
                403, REFUSED_QUEUE.format(queue="{victim_queue}")),
    ChannelCell("delete-own-queue", Identity.CLIENT_A, _on_queue(lambda c, q: c.queue_delete(q), "{own_queue}"),
                403, REFUSED_QUEUE.format(queue="{own_queue}")),
    ChannelCell("delete-the-hubsante-exchange", Identity.CLIENT_A,
                lambda channel, parties, body: channel.exchange_delete(HUB_EXCHANGE),
                403, REFUSED_EXCHANGE.format(exchange=HUB_EXCHANGE)),
    ChannelCell("dispatcher-certificate-publishes-to-hubsante", Identity.DISPATCHER,
                _publish(HUB_EXCHANGE, "{own_routing_key}"), 403, REFUSED_EXCHANGE.format(exchange=HUB_EXCHANGE)),
    ChannelCell("dispatcher-certificate-reads-b-queue", Identity.DISPATCHER,
                _on_queue(lambda c, q: c.basic_get(q), "{victim_queue}"), 403,
                REFUSED_QUEUE.format(queue="{victim_queue}")),
    ChannelCell("dispatcher-certificate-declares-a-queue", Identity.DISPATCHER,
                _on_queue(lambda c, q: c.queue_declare(q, durable=True), SPY_QUEUE),
                403, REFUSED_QUEUE.format(queue=SPY_QUEUE)),
)


def _identity_credentials(hub: SystemHub, identity: Identity, vhost: SystemVHost) -> ClientCredentials:
    return hub.a if identity is Identity.CLIENT_A else hub.dispatcher_credentials[vhost.name]


@pytest.mark.parametrize("cell", CHANNEL_CELLS, ids=lambda cell: cell.id)
@pytest.mark.parametrize("vhost", DISPATCHED_VHOSTS, ids=lambda vhost: vhost.name)
def test_the_broker_refuses_on_the_channel(system_hub: SystemHub, vhost: SystemVHost, cell: ChannelCell) -> None:
    credentials = _identity_credentials(system_hub, cell.identity, vhost)
    parties = Parties.of(vhost, credentials.cn)
    body = orjson.dumps(vhost.case_message(A_CLIENT_ID, B_CLIENT_ID))
    connection = system_hub.connect(credentials, vhost)
    try:
        channel = connection.channel()
        channel.confirm_delivery()  # a refused publish then fails the publish call itself
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            cell.attack(channel, parties, body)
        assert (refused.value.reply_code, refused.value.reply_text) == cell.expected(parties)
        assert connection.is_open, "a permission refusal closes the channel, not the connection"
    finally:
        connection.close()


# -- refusals when opening a connection: vhost access, SASL mechanism, TLS ------------------------------------------
def test_a_cannot_open_a_vhost_it_was_not_granted(system_hub: SystemHub) -> None:
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
        system_hub.connect(system_hub.a, SAMU_SMUR)
    assert connection_refusal(refused.value) == (
        530, f"NOT_ALLOWED - access to vhost '{SAMU_SMUR.name}' refused for user '{A_CLIENT_ID}'")
    system_hub.connect(system_hub.b, SAMU_SMUR).close()  # the vhost exists and serves the client granted there


def test_a_dispatcher_certificate_cannot_open_another_vhost(system_hub: SystemHub) -> None:
    credentials = system_hub.dispatcher_credentials[SAMU_SAMU.name]
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
        system_hub.connect(credentials, SAMU_FIRE)
    assert connection_refusal(refused.value) == (
        530, f"NOT_ALLOWED - access to vhost '{SAMU_FIRE.name}' refused for user '{credentials.cn}'")


def test_plain_login_with_the_cn_is_refused(system_hub: SystemHub) -> None:
    parameters = system_hub.broker.pika_parameters(system_hub.a, SAMU_SAMU.name)
    parameters.credentials = PlainCredentials(A_CLIENT_ID, "")
    with pytest.raises(pika.exceptions.AuthenticationError) as not_offered:
        pika.BlockingConnection(parameters)
    assert not_offered.value.args == ("PLAIN",), "a client library refuses PLAIN when the broker does not offer it"

    forced = ForcedPlainCredentials(A_CLIENT_ID)
    parameters.credentials = forced
    log = BrokerLog(system_hub.broker)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(parameters)
    assert forced.offered == [b"EXTERNAL"]
    logged = log.wait_for("invalid authentication mechanism 'PLAIN'")
    assert "{amqp_error,command_invalid," in logged and "'connection.start_ok'}}" in logged


class Certificate(enum.Enum):
    OTHER_CA = "a certificate for B's CN from another CA"
    EXPIRED = "A's certificate, expired"
    NONE = "no certificate"


#: (certificate, TLS version) -> the alert the client reads, and the lines the broker logs about the alert it sent.
TLS_REFUSALS: dict[tuple[Certificate, ssl.TLSVersion], tuple[str, tuple[str, ...]]] = {
    (Certificate.OTHER_CA, ssl.TLSVersion.TLSv1_2): ("TLSV1_ALERT_UNKNOWN_CA", ("Fatal - Unknown CA",)),
    (Certificate.OTHER_CA, ssl.TLSVersion.TLSv1_3): ("TLSV1_ALERT_UNKNOWN_CA", ("Fatal - Unknown CA",)),
    (Certificate.EXPIRED, ssl.TLSVersion.TLSv1_2): ("SSLV3_ALERT_CERTIFICATE_EXPIRED", ("Fatal - Certificate Expired",)),
    (Certificate.EXPIRED, ssl.TLSVersion.TLSv1_3): ("SSLV3_ALERT_CERTIFICATE_EXPIRED", ("Fatal - Certificate Expired",)),
    (Certificate.NONE, ssl.TLSVersion.TLSv1_2): ("SSLV3_ALERT_HANDSHAKE_FAILURE",
                                                 ("Fatal - Handshake Failure", " - no_client_certificate_provided")),
    (Certificate.NONE, ssl.TLSVersion.TLSv1_3): ("TLSV13_ALERT_CERTIFICATE_REQUIRED",
                                                 ("Fatal - Certificate required", " - certificate_required")),
}


def _attacking_certificate(hub: SystemHub, certificate: Certificate) -> ClientCredentials | None:
    if certificate is Certificate.OTHER_CA:
        return hub.broker.mint_client_cert(B_CLIENT_ID, ca=CertificateAuthority.generate("attacker's own CA"))
    if certificate is Certificate.EXPIRED:
        # Issued by the operator's CA (the broker's CA in this environment), valid for a day ten days ago.
        return hub.broker.mint_client_cert(A_CLIENT_ID, not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=10),
                                           valid_for=dt.timedelta(days=1))
    return None


@pytest.mark.parametrize(("certificate", "version"), list(TLS_REFUSALS),
                         ids=[f"{c.name.lower().replace('_', '-')}-{v.name}" for c, v in TLS_REFUSALS])
def test_the_tls_handshake_refuses(system_hub: SystemHub, certificate: Certificate, version: ssl.TLSVersion) -> None:
    alert, (logged_alert, *logged_details) = TLS_REFUSALS[certificate, version]
    credentials = _attacking_certificate(system_hub, certificate)
    log = BrokerLog(system_hub.broker)
    assert handshake_alert(system_hub.broker, credentials, version) == alert
    logged = log.wait_for(f"generated SERVER ALERT: {logged_alert}\n")
    assert all(detail in logged for detail in logged_details), logged
    # An AMQP client with the same certificate gets no further: pika reports the lost stream while it opens.
    with pytest.raises(pika.exceptions.IncompatibleProtocolError):
        system_hub.connect(credentials, SAMU_SAMU)


# -- revocation of live connections -----------------------------------------------------------------------------
def _connected_client(hub: SystemHub, name: str, **spec: object) -> tuple[ClientCredentials, pika.BlockingConnection]:
    hub.env.apply(hub_client(name, name, [SAMU_SAMU.vhost_version], **spec))
    hub.env.wait_condition("hubclient", name, timeout=60)
    credentials = hub.env.credentials(name)
    connection = hub.connect(credentials, SAMU_SAMU)
    connection.channel().queue_declare(SAMU_SAMU.queue(name), passive=True)  # in use: it reads its own queue
    return credentials, connection


def test_a_suspended_client_loses_its_live_connection_and_cannot_reconnect(
    system_hub: SystemHub, measure: Callable[[str], None]
) -> None:
    name = "fr.health.samu027"
    try:
        credentials, connection = _connected_client(system_hub, name)
        started = time.monotonic()
        system_hub.env.kubectl("patch", "hubclient", name, "--type=merge", "-p", '{"spec":{"suspended":true}}')
        closed = wait_closed_by_broker(connection, timeout=REVOCATION_TIMEOUT)
        measure(f"suspended client's live connection closed {time.monotonic() - started:.2f} s after kubectl patch")
        assert isinstance(closed, pika.exceptions.ConnectionClosedByBroker)
        assert (closed.reply_code, closed.reply_text) == (320, f"CONNECTION_FORCED - {REVOCATION_REASON}")
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
            system_hub.connect(credentials, SAMU_SAMU)
        assert connection_refusal(refused.value) == (
            530, f"NOT_ALLOWED - access to vhost '{SAMU_SAMU.name}' refused for user '{name}'")
        system_hub.env.wait_condition("hubclient", name, reason="Suspended", timeout=30)
    finally:
        system_hub.env.kubectl("delete", "hubclient", name, "--wait=false", check=False)


def test_a_deleted_client_loses_its_live_connection_and_cannot_log_in(
    system_hub: SystemHub, measure: Callable[[str], None]
) -> None:
    name = "fr.health.samu061"
    credentials, connection = _connected_client(system_hub, name, deletionPolicy="delete")
    started = time.monotonic()
    system_hub.env.kubectl("delete", "hubclient", name, "--wait=false")
    closed = wait_closed_by_broker(connection, timeout=REVOCATION_TIMEOUT)
    measure(f"deleted client's live connection closed {time.monotonic() - started:.2f} s after kubectl delete")
    assert isinstance(closed, pika.exceptions.ConnectionClosedByBroker)
    # The deletion first runs the client's vhosts without it (so that no later run can restore its access): they
    # revoke its permissions and close its connections, with the revocation's reason; then the user is deleted.
    assert (closed.reply_code, closed.reply_text) == (320, f"CONNECTION_FORCED - {REVOCATION_REASON}")
    system_hub.env.wait_for(lambda: system_hub.env.get("hubclient", name) is None, timeout=30,
                            what=f"HubClient {name} to be gone (its user deleted)")
    log = BrokerLog(system_hub.broker)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as refused:
        system_hub.connect(credentials, SAMU_SAMU)
    assert connection_refusal(refused.value) == (
        403, ("ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL. "
              "For details see the broker logfile."))
    log.wait_for(f"EXTERNAL login refused: user '{name}' - invalid credentials")


# -- what only the dispatcher can refuse ----------------------------------------------------------------------------
@pytest.mark.parametrize("vhost", DISPATCHED_VHOSTS, ids=lambda vhost: vhost.name)
def test_a_spoofed_sender_id_is_reported_to_its_real_sender_and_reaches_nobody(
    system_hub: SystemHub, vhost: SystemVHost
) -> None:
    routing_key = vhost.routing_key(A_CLIENT_ID)
    spoofed = vhost.case_message(IMPERSONATED_CLIENT_ID, B_CLIENT_ID)
    genuine = vhost.case_message(A_CLIENT_ID, B_CLIENT_ID)
    with system_hub.client(system_hub.a, vhost) as a, system_hub.client(system_hub.b, vhost) as b:
        a.purge(vhost.queue(A_CLIENT_ID, QueueKind.INFO))
        b.purge(vhost.queue(B_CLIENT_ID))
        a.publish(spoofed, routing_key)  # A's own routing key: the broker lets it through to the dispatcher
        a.publish(genuine, routing_key)

        _genuine, before = b.wait_for(vhost.queue(B_CLIENT_ID),
                                      lambda item: item.read().distribution_id == genuine["distributionID"])
        assert before == [], f"B received {[item.read().distribution_id for item in before]} before A's genuine message"
        report_delivery, other_reports = a.wait_for(
            vhost.queue(A_CLIENT_ID, QueueKind.INFO),
            lambda item: item.read().referenced_distribution_id == spoofed["distributionID"])
        assert other_reports == []
    report = report_delivery.read()
    assert (report.error_code, report.error_status) == (200, ErrorCode.SENDER_INCONSISTENCY.name)
    assert report.error_cause == (f"senderID {IMPERSONATED_CLIENT_ID} does not match the routing key {routing_key} "
                                  f"you published with (client id {A_CLIENT_ID})")
    assert (report.sender_id, report.recipient_id, report.distribution_kind) == (HUB_SENDER_ID, A_CLIENT_ID, "Error")


# -- the documented matrix --------------------------------------------------------------------------------------
def test_the_documented_matrix_names_every_cell() -> None:
    """docs/security.md lists each cell of this module by its test name or id, so the doc cannot drift."""
    documented = SECURITY_DOC.read_text()
    module = sys.modules[__name__]
    tests = [name for name, _ in inspect.getmembers(module, inspect.isfunction) if name.startswith("test_")
             and name != "test_the_documented_matrix_names_every_cell"]
    missing = [name for name in tests + [cell.id for cell in CHANNEL_CELLS] if f"`{name}`" not in documented]
    assert not missing, f"docs/security.md does not list {missing}"
