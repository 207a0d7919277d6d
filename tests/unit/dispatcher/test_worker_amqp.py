"""Where the worker connects, with which TLS identity, and how frames map to and from the pure core."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from hub_dispatcher.amqp import broker_endpoint, inbound_of, properties_of
from hub_dispatcher.amqpclient import Delivery
from hub_dispatcher.outcome import Forward
from hub_dispatcher.settings import DispatcherSettings, SettingsError
from hub_operator.pki import CertificateAuthority


@dataclass(frozen=True)
class Identity:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    folder = tmp_path_factory.mktemp("tls")
    ca = CertificateAuthority.generate("unit test CA")
    issued = ca.issue("dispatcher")
    paths = Identity(folder / "ca.crt", folder / "tls.crt", folder / "tls.key")
    paths.ca.write_bytes(ca.cert_pem)
    paths.cert.write_bytes(issued.cert_pem)
    paths.key.write_bytes(issued.key_pem)
    return paths


def settings(**values: Any) -> DispatcherSettings:
    return DispatcherSettings(vhost="15-15_v1.5", bundle_dir=Path("/models/1.1"), **values)


def query_of(url: str) -> dict[str, str]:
    return {key: value[0] for key, value in parse_qs(urlsplit(url).query).items()}


def test_a_client_certificate_means_external_auth_on_the_settings_vhost(identity: Identity) -> None:
    endpoint = broker_endpoint(settings(amqp_url="amqps://rabbitmq.hub:5671", tls_ca_file=identity.ca,
                                        tls_cert_file=identity.cert, tls_key_file=identity.key, heartbeat_seconds=15))

    parts = urlsplit(endpoint.url)
    assert (parts.scheme, parts.hostname, parts.port, parts.path) == ("amqps", "rabbitmq.hub", 5671, "/15-15_v1.5")
    query = query_of(endpoint.url)
    assert query["auth"] == "external" and query["heartbeat"] == "15"
    assert query["name"].startswith("hub-dispatcher 15-15_v1.5 ")
    assert endpoint.ssl_context is not None
    assert endpoint.display == "amqps://rabbitmq.hub:5671/15-15_v1.5"


def test_a_vhost_with_a_slash_is_percent_encoded() -> None:
    endpoint = broker_endpoint(DispatcherSettings(vhost="a/b", bundle_dir=Path("/m"), amqp_url="amqp://broker"))
    assert urlsplit(endpoint.url).path == "/a%2Fb"
    assert endpoint.ssl_context is None


def test_query_options_of_the_url_are_kept() -> None:
    endpoint = broker_endpoint(settings(amqp_url="amqp://broker:5672/?heartbeat=5&name=mine"))
    assert query_of(endpoint.url) == {"heartbeat": "5", "name": "mine"}


@pytest.mark.parametrize(("url", "problem"), [
    ("http://broker", "must look like amqps://"),
    ("amqps://", "must look like amqps://"),
    ("amqps://broker/other_v1.0", "names vhost 'other_v1.0'"),
])
def test_a_wrong_url_is_a_settings_error(url: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        broker_endpoint(settings(amqp_url=url))


def test_the_url_may_name_the_same_vhost() -> None:
    assert urlsplit(broker_endpoint(settings(amqp_url="amqp://broker/15-15_v1.5")).url).path == "/15-15_v1.5"


def test_tls_files_on_a_plain_url_are_refused(identity: Identity) -> None:
    with pytest.raises(SettingsError, match="not amqps"):
        broker_endpoint(settings(amqp_url="amqp://broker", tls_ca_file=identity.ca))


def test_an_unreadable_ca_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="tls_ca_file .*cannot load the CA certificate"):
        broker_endpoint(settings(tls_ca_file=tmp_path / "missing.crt"))


def test_a_key_that_does_not_match_the_certificate_is_a_settings_error(identity: Identity, tmp_path: Path) -> None:
    other_key = tmp_path / "other.key"
    other_key.write_bytes(CertificateAuthority.generate("other").issue("x").key_pem)
    with pytest.raises(SettingsError, match="cannot load the client certificate"):
        broker_endpoint(settings(tls_ca_file=identity.ca, tls_cert_file=identity.cert, tls_key_file=other_key))


@pytest.mark.parametrize(("values", "problem"), [
    ({"tls_cert_file": Path("/c")}, "go together"),
    ({"reconnect_initial_seconds": 5.0, "reconnect_max_seconds": 1.0}, "reconnect_max_seconds must not be below"),
    ({"drain_timeout_seconds": 0.0}, "drain_timeout_seconds must be positive"),
    ({"metrics_port": 70000}, "metrics_port must be a TCP port"),
    ({"log_level": "chatty"}, "log_level must be one of"),
    ({"heartbeat_seconds": 0}, "heartbeat_seconds must be positive"),
])
def test_worker_settings_are_checked(values: dict[str, Any], problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        settings(**values)


def test_worker_settings_come_from_the_environment() -> None:
    loaded = DispatcherSettings.load([], {
        "HUB_DISPATCHER_VHOST": "15-gps_v1.0", "HUB_DISPATCHER_BUNDLE_DIR": "/m",
        "HUB_DISPATCHER_DRAIN_TIMEOUT_SECONDS": "7.5", "HUB_DISPATCHER_HEARTBEAT_SECONDS": "20",
        "HUB_DISPATCHER_METRICS_HOST": "127.0.0.1", "HUB_DISPATCHER_LOG_LEVEL": "debug",
    })
    assert (loaded.drain_timeout_seconds, loaded.heartbeat_seconds, loaded.metrics_host) == (7.5, 20, "127.0.0.1")


def delivered(body: bytes = b"{}", **properties: Any) -> Delivery:
    return Delivery(delivery_tag=7, redelivered=True, exchange="hubsante", routing_key="fr.health.samu050",
                    header=ContentHeader(body_size=len(body), properties=Basic.Properties(**properties)), body=body)


def test_a_delivery_becomes_an_inbound_with_what_the_checks_read() -> None:
    inbound = inbound_of(delivered(b"{...}", content_type="application/json", delivery_mode=2,
                                   headers={"x-death": []}))

    assert inbound.body == b"{...}" and inbound.routing_key == "fr.health.samu050"
    assert (inbound.content_type, inbound.delivery_mode, inbound.redelivered) == ("application/json", 2, True)
    assert inbound.headers == {"x-death": []} and inbound.exchange == "hubsante"


def test_a_returned_message_becomes_an_inbound_too() -> None:
    returned = Delivery(delivery_tag=None, redelivered=False, exchange="distribution",
                        routing_key="fr.health.samu099.message",
                        header=ContentHeader(body_size=2, properties=Basic.Properties(headers=None)), body=b"{}",
                        reply_code=312, reply_text="NO_ROUTE")

    inbound = inbound_of(returned)

    assert (inbound.routing_key, inbound.exchange, inbound.headers, inbound.redelivered) == (
        "fr.health.samu099.message", "distribution", {}, False)


def test_published_properties_come_from_the_outcome_only() -> None:
    forward = Forward(exchange="distribution", routing_key="fr.health.samu076.message", body=b"{}",
                      content_type="application/xml", headers={"x-death-original-routing-key": "fr.health.samu050"},
                      expiration_ms=1500)

    properties = properties_of(forward)

    assert properties.delivery_mode == 2 and properties.expiration == "1500"
    assert properties.content_type == "application/xml"
    assert properties.headers == {"x-death-original-routing-key": "fr.health.samu050"}
    assert properties.user_id is None  # another user's id would make the broker close the channel (406)
