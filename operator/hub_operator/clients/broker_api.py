"""The contract of a RabbitMQ management client: errors, value types and the :class:`BrokerManagement` protocol.

Two implementations: :class:`~.rabbitmq.RabbitMQManagementClient` (HTTP) and
:class:`~.fake_rabbitmq.FakeRabbitMQ` (in memory, for unit tests).  Definitions travel as the management API's
JSON documents; :mod:`hub_operator.builders.broker_definitions` gives them a comparable form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


class BrokerError(Exception):
    """Base of every error raised by a broker management client."""


class BrokerUnreachable(BrokerError):
    """No answer: connection refused, timeout, TLS failure, or the node says it is unavailable (502-504)."""

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(f"RabbitMQ management API at {url} is unreachable: {cause}")
        self.url = url
        self.cause = cause


class BrokerAuthenticationFailed(BrokerError):
    """The management API refused the operator's credentials."""

    def __init__(self, url: str, username: str) -> None:
        super().__init__(f"RabbitMQ management API at {url} refused the credentials of {username!r}")
        self.url = url
        self.username = username


class BrokerRejected(BrokerError):
    """The management API answered with an error status."""

    def __init__(self, status: int, reason: str, path: str, method: str = "GET") -> None:
        super().__init__(f"{method} {path} was rejected with HTTP {status}: {reason}")
        self.status = status
        self.reason = reason
        self.path = path
        self.method = method


class BrokerNotFound(BrokerRejected):
    """HTTP 404: the object (or its vhost) does not exist."""


class BrokerAccessRefused(BrokerRejected):
    """Authenticated, but not allowed (e.g. deleting a queue in a vhost where the operator has no permission)."""


@dataclass(frozen=True)
class ConnectionInfo:
    name: str
    user: str
    vhost: str


@dataclass(frozen=True)
class QueueDepth:
    name: str
    ready: int
    unacknowledged: int
    consumers: int

    @property
    def total(self) -> int:
        return self.ready + self.unacknowledged


@dataclass(frozen=True)
class BrokerOverview:
    rabbitmq_version: str
    cluster_name: str
    node: str


@dataclass(frozen=True)
class BrokerHealth:
    """Result of the node's health checks (alarms, vhosts running); ``failures`` names what failed and why."""

    failures: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.failures


@runtime_checkable
class BrokerManagement(Protocol):
    """What the operator needs from a broker.  Deletions answer False when there was nothing to delete."""

    @property
    def username(self) -> str:
        """The management identity (it needs full permissions in the vhosts it manages)."""
        ...

    async def export_definitions(self, vhost: str | None = None) -> dict[str, Any]:
        """The global export, or one vhost's (items then carry no ``vhost``); BrokerNotFound if it is absent."""
        ...

    async def import_definitions(self, definitions: Mapping[str, Any]) -> None:
        """Bulk import (global format: every entry names its vhost)."""
        ...

    async def list_users(self) -> list[dict[str, Any]]: ...

    async def list_permissions(self, vhost: str) -> list[dict[str, Any]]: ...

    async def list_topic_permissions(self, vhost: str) -> list[dict[str, Any]]: ...

    async def get_vhost(self, vhost: str) -> dict[str, Any] | None:
        """The vhost (``name``, ``description``, ``tags``...), None when it does not exist."""
        ...

    async def create_vhost(self, vhost: str, description: str = "") -> bool:
        """True when created, False when it already existed (its description is then updated)."""
        ...

    async def delete_vhost(self, vhost: str) -> bool: ...

    async def delete_queue(self, vhost: str, queue: str) -> bool: ...

    async def delete_exchange(self, vhost: str, exchange: str) -> bool: ...

    async def delete_user(self, username: str) -> bool: ...

    async def delete_permission(self, vhost: str, username: str) -> bool: ...

    async def delete_topic_permissions(self, vhost: str, username: str) -> bool: ...

    async def unbind(
        self,
        vhost: str,
        source: str,
        destination: str,
        routing_key: str,
        arguments: Mapping[str, Any] | None = None,
        destination_type: str = "queue",
    ) -> bool: ...

    async def list_connections(self, *, vhost: str | None = None, username: str | None = None) -> list[ConnectionInfo]:
        """Open AMQP connections.  With ``username`` the answer is complete and immediate (connection tracking);
        otherwise it comes from statistics and misses connections younger than the statistics interval."""
        ...

    async def close_connection(self, name: str, reason: str) -> bool:
        """Close one connection by name; False if unknown, which includes a connection younger than the
        statistics interval (the API finds connections by name in its statistics)."""
        ...

    async def close_user_connections(self, username: str, reason: str) -> None:
        """Close every connection of a user, immediately (connection tracking), in every vhost."""
        ...

    async def queue_depths(self, vhost: str) -> list[QueueDepth]:
        """Messages ready / unacknowledged per queue (the management API's figures lag by seconds)."""
        ...

    async def overview(self) -> BrokerOverview: ...

    async def check_health(self) -> BrokerHealth: ...

    async def aclose(self) -> None: ...
