"""The broker of a vhost, as its Secret describes it (``hub_operator.api.broker.BrokerSecretKey``), and the
queue depths hubctl shows, read through the management API with the operator's own client."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hub_operator.api.broker import BrokerSecretKey
from hub_operator.cli.errors import HubctlError
from hub_operator.cli.kube import HubReader
from hub_operator.clients.broker_api import BrokerError, BrokerUnreachable, QueueDepth
from hub_operator.clients.rabbitmq import ManagementSettings, RabbitMQManagementClient

#: hubctl is interactive: an unreachable management API must fail within seconds.
CONNECT_TIMEOUT = 3.0
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class BrokerOverrides:
    """Addresses to use instead of the Secret's (e.g. through ``kubectl port-forward`` from a laptop)."""

    management_url: str | None = None
    amqps_host: str | None = None
    amqps_port: int | None = None
    tls_server_name: str | None = None
    """Name checked against the broker's certificate when ``amqps_host`` is a tunnel (e.g. 127.0.0.1)."""


@dataclass(frozen=True)
class BrokerEndpoint:
    secret_name: str
    management_url: str
    username: str
    password: str
    amqps_host: str
    amqps_port: int
    ca_pem: bytes
    tls_server_name: str

    @classmethod
    def from_secret(cls, secret_name: str, data: Mapping[str, bytes],
                    overrides: BrokerOverrides = BrokerOverrides()) -> BrokerEndpoint:
        missing = [key.value for key in BrokerSecretKey if not data.get(key.value)]
        if missing:
            raise HubctlError(f"broker Secret {secret_name} lacks {', '.join(missing)}",
                              hint=f"it needs the keys {', '.join(key.value for key in BrokerSecretKey)}")

        def text(key: BrokerSecretKey) -> str:
            try:
                return data[key.value].decode("utf-8").strip()
            except UnicodeDecodeError:
                raise HubctlError(f"broker Secret {secret_name}: {key.value} is not UTF-8 text") from None

        port_text = text(BrokerSecretKey.AMQPS_PORT)
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise HubctlError(f"broker Secret {secret_name}: amqpsPort {port_text!r} is not a port number")
        management_url = overrides.management_url or text(BrokerSecretKey.MANAGEMENT_URL)
        if urlsplit(management_url).scheme not in ("http", "https"):
            raise HubctlError(f"broker management URL {management_url!r} is not an http(s) URL")
        if b"BEGIN CERTIFICATE" not in data[BrokerSecretKey.CA_CERT.value]:
            raise HubctlError(f"broker Secret {secret_name}: ca.crt is not a PEM certificate")
        secret_host = text(BrokerSecretKey.AMQPS_HOST)
        return cls(
            secret_name=secret_name,
            management_url=management_url,
            username=text(BrokerSecretKey.USERNAME),
            password=text(BrokerSecretKey.PASSWORD),
            amqps_host=overrides.amqps_host or secret_host,
            amqps_port=overrides.amqps_port or int(port_text),
            ca_pem=data[BrokerSecretKey.CA_CERT.value],
            tls_server_name=overrides.tls_server_name or secret_host,
        )


def load_broker(reader: HubReader, secret_name: str, overrides: BrokerOverrides = BrokerOverrides()) -> BrokerEndpoint:
    data = reader.secret(secret_name)
    if data is None:
        raise HubctlError(f"broker Secret {secret_name} not found in namespace {reader.namespace}")
    return BrokerEndpoint.from_secret(secret_name, data, overrides)


def queue_depths(broker: BrokerEndpoint, vhosts: Iterable[str]) -> dict[str, dict[str, QueueDepth] | str]:
    """Per vhost: its queues by name, or why they could not be read (a vhost not created yet, no access...)."""
    return asyncio.run(_queue_depths(broker, list(vhosts)))


async def _queue_depths(broker: BrokerEndpoint, vhosts: list[str]) -> dict[str, dict[str, QueueDepth] | str]:
    with tempfile.TemporaryDirectory(prefix="hubctl-") as folder:
        settings = ManagementSettings(broker.management_url, broker.username, broker.password,
                                      connect_timeout=CONNECT_TIMEOUT, request_timeout=REQUEST_TIMEOUT)
        if urlsplit(broker.management_url).scheme == "https":
            ca_file = Path(folder) / "ca.crt"
            ca_file.write_bytes(broker.ca_pem)
            settings = dataclasses.replace(settings, verify=str(ca_file))
        depths: dict[str, dict[str, QueueDepth] | str] = {}
        async with RabbitMQManagementClient(settings) as management:
            for index, vhost in enumerate(vhosts):
                try:
                    depths[vhost] = {queue.name: queue for queue in await management.queue_depths(vhost)}
                except BrokerUnreachable as error:
                    # Same answer for every other vhost of this broker: do not wait for each one.
                    depths.update({other: str(error) for other in vhosts[index:]})
                    break
                except BrokerError as error:
                    depths[vhost] = str(error)
        return depths
