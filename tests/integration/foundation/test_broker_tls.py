"""The test broker is real and configured like the hub: mutual TLS, username = certificate CN, EXTERNAL only."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator

import httpx
import pika
import pika.exceptions
import pytest

from hub_devenv.rabbitmq import LocalBroker
from hub_operator.pki import CertificateAuthority
from tests.helpers.broker_refusals import handshake_alert

VHOST = "foundation_v1.0"
CLIENT_CN = "fr.health.samu050"


@pytest.fixture(scope="module")
def admin(broker: LocalBroker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=broker.management_url, auth=(broker.admin_user, broker.admin_password)) as http:
        http.put(f"/api/vhosts/{VHOST}").raise_for_status()
        http.put(f"/api/users/{CLIENT_CN}", json={"password_hash": "", "tags": ""}).raise_for_status()
        http.put(
            f"/api/permissions/{VHOST}/{CLIENT_CN}", json={"configure": "^$", "write": "^$", "read": "^$"}
        ).raise_for_status()
        yield http
        http.delete(f"/api/vhosts/{VHOST}")
        http.delete(f"/api/users/{CLIENT_CN}")


def _connections_of(admin: httpx.Client, user: str) -> list[dict[str, object]]:
    """The management API lists connections with a delay of up to its statistics interval."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [c for c in admin.get("/api/connections").json() if c.get("user") == user]
        if found:
            return found
        time.sleep(0.2)
    return []


def test_client_with_a_certificate_from_the_test_ca_connects_with_external(broker: LocalBroker, admin: httpx.Client) -> None:
    credentials = broker.mint_client_cert(CLIENT_CN)
    connection = pika.BlockingConnection(broker.pika_parameters(credentials, VHOST))
    try:
        assert connection.is_open
        ours = _connections_of(admin, CLIENT_CN)
        assert ours, "the broker must take the username from the certificate CN"
        assert {c["vhost"] for c in ours} == {VHOST}
        assert {c["auth_mechanism"] for c in ours} == {"EXTERNAL"}
        assert all(c["ssl"] and c["peer_cert_subject"].endswith(f"CN={CLIENT_CN}") for c in ours)
    finally:
        connection.close()


def test_certificate_from_another_ca_is_refused_at_the_handshake(broker: LocalBroker, admin: httpx.Client) -> None:
    rogue_ca = CertificateAuthority.generate("rogue CA")
    credentials = broker.mint_client_cert(CLIENT_CN, ca=rogue_ca)
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(broker.pika_parameters(credentials, VHOST))
    assert handshake_alert(broker, credentials, ssl.TLSVersion.TLSv1_2) == "TLSV1_ALERT_UNKNOWN_CA"


def test_connection_without_a_certificate_is_refused(broker: LocalBroker, admin: httpx.Client) -> None:
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(broker.pika_parameters(None, VHOST))
    assert handshake_alert(broker, None, ssl.TLSVersion.TLSv1_2) == "SSLV3_ALERT_HANDSHAKE_FAILURE"


def test_amqps_is_the_only_amqp_listener(broker: LocalBroker) -> None:
    listeners = httpx.get(
        f"{broker.management_url}/api/overview", auth=(broker.admin_user, broker.admin_password)
    ).json()["listeners"]
    amqp = {(entry["protocol"], entry["port"]) for entry in listeners if entry["protocol"].startswith("amqp")}
    assert amqp == {("amqp/ssl", broker.amqps_port)}
