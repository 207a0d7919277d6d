"""The broker side of the worker: where and how to connect, and AMQP frames to and from the pure core.

Connection: ``amqp_url`` gives scheme, host and port; the vhost always comes from the ``vhost`` setting (one
name, never spelled twice); with a client certificate the SASL mechanism is EXTERNAL (the broker takes the
username from the certificate CN, HUBSANTE.md §1).  Everything is checked at start-up: a bad URL or an
unreadable certificate is a :class:`SettingsError`, not a reconnect loop.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from pamqp.commands import Basic

from hub_dispatcher.amqpclient import Delivery
from hub_dispatcher.message import PERSISTENT_DELIVERY_MODE, Inbound
from hub_dispatcher.outcome import Publish
from hub_dispatcher.settings import DispatcherSettings, SettingsError

_SCHEMES: Final = ("amqp", "amqps")
TRANSIENT_DELIVERY_MODE: Final = 1


@dataclass(frozen=True)
class BrokerEndpoint:
    url: str
    """For :class:`hub_dispatcher.amqpclient.Connection`: vhost in the path, ``auth``, ``heartbeat`` and ``name``
    in the query."""
    ssl_context: ssl.SSLContext | None

    @property
    def display(self) -> str:
        """The URL for logs (it never holds a secret with EXTERNAL, but a PLAIN one might)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit((parts.scheme, f"{host}{port}", parts.path, "", ""))


def broker_endpoint(settings: DispatcherSettings) -> BrokerEndpoint:
    parts = urlsplit(settings.amqp_url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise SettingsError(f"amqp_url must look like amqps://host:5671, got {settings.amqp_url!r}")
    path = unquote(parts.path.lstrip("/"))
    if path and path != settings.vhost:
        raise SettingsError(f"amqp_url names vhost {path!r} but the vhost setting is {settings.vhost!r}: "
                            "leave the vhost out of amqp_url")
    has_client_cert = settings.tls_cert_file is not None
    if parts.scheme != "amqps" and (has_client_cert or settings.tls_ca_file is not None):
        raise SettingsError("TLS files are set but amqp_url is not amqps://: the hub's broker only speaks AMQPS")
    query = dict(parse_qsl(parts.query))
    if has_client_cert:
        query.setdefault("auth", "external")
    query.setdefault("heartbeat", str(settings.heartbeat_seconds))
    query.setdefault("name", f"hub-dispatcher {settings.vhost} {socket.gethostname()}")
    url = urlunsplit((parts.scheme, parts.netloc, "/" + quote(settings.vhost, safe=""), urlencode(query), ""))
    return BrokerEndpoint(url, _tls_context(settings) if parts.scheme == "amqps" else None)


def _tls_context(settings: DispatcherSettings) -> ssl.SSLContext:
    ca_file = settings.tls_ca_file
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as error:
        raise SettingsError(f"tls_ca_file {ca_file}: cannot load the CA certificate: {error}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        try:
            context.load_cert_chain(str(settings.tls_cert_file), str(settings.tls_key_file))
        except (OSError, ssl.SSLError) as error:
            raise SettingsError(f"tls_cert_file {settings.tls_cert_file} / tls_key_file {settings.tls_key_file}: "
                                f"cannot load the client certificate: {error}") from None
    return context


def inbound_of(message: Delivery) -> Inbound:
    """A delivery (or a returned message) as the pipeline reads it."""
    properties = message.header.properties
    return Inbound(
        body=message.body,
        routing_key=message.routing_key or "",
        content_type=properties.content_type,
        delivery_mode=properties.delivery_mode,
        headers=properties.headers or {},
        redelivered=bool(message.redelivered),
        exchange=message.exchange or "",
    )


def properties_of(publish: Publish) -> Basic.Properties:
    """Built from the outcome only: copying the input's properties could carry its ``user_id``, which the
    broker refuses from another user (406, channel closed)."""
    return Basic.Properties(
        content_type=publish.content_type,
        headers=dict(publish.headers),
        delivery_mode=PERSISTENT_DELIVERY_MODE if publish.persistent else TRANSIENT_DELIVERY_MODE,
        expiration=publish.expiration,
    )
