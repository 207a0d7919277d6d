"""Broker connections: the broker Secret of a namespace (or of a VHostVersion's brokerRef) -> a management client.

Clients are pooled per Secret and replaced when the Secret changes (its resourceVersion), so rotating the
management password takes effect on the next reconcile without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub_operator.api.broker import BrokerSecretKey
from hub_operator.certificates import decode_data
from hub_operator.clients.broker_api import BrokerManagement
from hub_operator.clients.kubernetes import KubernetesClient
from hub_operator.clients.rabbitmq import ManagementSettings, RabbitMQManagementClient

log = logging.getLogger(__name__)

_REQUIRED = (BrokerSecretKey.MANAGEMENT_URL, BrokerSecretKey.USERNAME, BrokerSecretKey.PASSWORD,
             BrokerSecretKey.AMQPS_HOST, BrokerSecretKey.AMQPS_PORT)


class BrokerConfigError(Exception):
    """The broker Secret is missing or unusable; ``reason`` is the condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class BrokerConnection:
    """What a broker Secret says (the password never leaves this object in a message)."""

    namespace: str
    secret_name: str
    management_url: str
    username: str
    password: str
    amqps_host: str
    amqps_port: int
    ca_pem: bytes | None

    @property
    def description(self) -> str:
        return f"{self.management_url} (Secret {self.namespace}/{self.secret_name})"


def parse_broker_secret(namespace: str, secret_name: str, secret: Mapping[str, Any]) -> BrokerConnection:
    data = decode_data(secret)
    missing = [key.value for key in _REQUIRED if not data.get(key.value, b"").strip()]
    if missing:
        raise BrokerConfigError(
            "BrokerSecretInvalid", f"broker Secret {namespace}/{secret_name} lacks {', '.join(missing)}"
        )
    text = {key: value.decode("utf-8", "replace").strip() for key, value in data.items()}
    url = text[BrokerSecretKey.MANAGEMENT_URL.value]
    if not url.startswith(("http://", "https://")):
        raise BrokerConfigError("BrokerSecretInvalid",
                                f"broker Secret {namespace}/{secret_name}: managementUrl {url!r} is not an http(s) URL")
    try:
        port = int(text[BrokerSecretKey.AMQPS_PORT.value])
        if not 1 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise BrokerConfigError(
            "BrokerSecretInvalid",
            f"broker Secret {namespace}/{secret_name}: amqpsPort {text[BrokerSecretKey.AMQPS_PORT.value]!r} is not a port",
        ) from None
    ca = data.get(BrokerSecretKey.CA_CERT.value)
    return BrokerConnection(
        namespace=namespace,
        secret_name=secret_name,
        management_url=url,
        username=text[BrokerSecretKey.USERNAME.value],
        password=data[BrokerSecretKey.PASSWORD.value].decode("utf-8").strip(),
        amqps_host=text[BrokerSecretKey.AMQPS_HOST.value],
        amqps_port=port,
        ca_pem=ca if ca and ca.strip() else None,
    )


@dataclass(frozen=True)
class Broker:
    connection: BrokerConnection
    management: BrokerManagement


ClientFactory = Callable[[BrokerConnection], BrokerManagement]


class BrokerPool:
    """Management clients by broker Secret (namespace, name)."""

    def __init__(
        self,
        kube: KubernetesClient,
        *,
        connect_timeout: float = 3.0,
        request_timeout: float = 15.0,
        factory: ClientFactory | None = None,
    ) -> None:
        self._kube = kube
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._factory = factory or self._http_client
        self._clients: dict[tuple[str, str], tuple[str, Broker]] = {}
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Future[None]] = set()
        self._ca_dir = Path(tempfile.mkdtemp(prefix="hub-operator-ca-"))

    def _http_client(self, connection: BrokerConnection) -> BrokerManagement:
        verify: bool | str = True
        if connection.management_url.startswith("https://") and connection.ca_pem:
            path = self._ca_dir / f"{connection.namespace}.{connection.secret_name}.crt"
            path.write_bytes(connection.ca_pem)
            os.chmod(path, 0o600)
            verify = str(path)
        return RabbitMQManagementClient(
            ManagementSettings(
                url=connection.management_url,
                username=connection.username,
                password=connection.password,
                connect_timeout=self._connect_timeout,
                request_timeout=self._request_timeout,
                verify=verify,
            )
        )

    async def get(self, namespace: str, secret_name: str) -> Broker:
        """The broker of this Secret; raises :class:`BrokerConfigError` when the Secret is missing or invalid."""
        secret = await self._kube.get_secret(namespace, secret_name)
        if secret is None:
            raise BrokerConfigError(
                "BrokerSecretNotFound",
                f"broker Secret {namespace}/{secret_name} does not exist (keys: managementUrl, username, password, "
                "amqpsHost, amqpsPort, ca.crt)",
            )
        version = str((secret.get("metadata") or {}).get("resourceVersion") or "")
        async with self._lock:
            cached = self._clients.get((namespace, secret_name))
            if cached is not None and cached[0] == version:
                return cached[1]
            connection = parse_broker_secret(namespace, secret_name, secret)
            broker = Broker(connection, self._factory(connection))
            self._clients[(namespace, secret_name)] = (version, broker)
        if cached is not None:
            # Reconciles of other vhosts may still be using the old client: close it a little later.
            stale = cached[1].management
            asyncio.get_running_loop().call_later(
                60, lambda: self._closing.add(asyncio.ensure_future(stale.aclose()))
            )
        return broker

    async def close(self) -> None:
        for _, broker in self._clients.values():
            await broker.management.aclose()
        self._clients.clear()
