"""Provision a hub vhost on the test broker through the operator's own builders and apply path.

One definition of the topology for every test (dispatcher delivery tests included): never declare hub
exchanges, queues or permissions by hand in a test.

    provisioned = await provision_vhost(broker, "15-15_v1.5", clients=[("fr.health.samu050", ["fr.health.samu050"])])
    provisioned_blocking = provision_vhost_blocking(broker, ...)   # from synchronous tests
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from hub_dispatcher.protocol import ProtocolProfile, VHostProtocol
from hub_operator.broker_sync import SyncResult, apply_desired_state
from hub_operator.builders.broker import (
    DEFAULT_DISPATCHER_USERNAME,
    DEFAULT_MESSAGE_TTL_MS,
    ClientAccess,
    QueueType,
    VHostTopology,
    desired_vhost_state,
)
from hub_operator.clients.rabbitmq import ManagementSettings, RabbitMQManagementClient

#: A client as tests like to write it: (certificate CN, its client ids), or a ready ClientAccess.
ClientSpec = tuple[str, Sequence[str]] | ClientAccess


class ManagedBroker(Protocol):
    """What this helper needs from the ``broker`` fixture (hub_devenv's LocalBroker)."""

    management_url: str
    admin_user: str
    admin_password: str


@dataclass(frozen=True)
class ProvisionedVHost:
    topology: VHostTopology
    clients: tuple[ClientAccess, ...]
    result: SyncResult

    @property
    def vhost(self) -> str:
        return self.topology.vhost

    @property
    def protocol(self) -> VHostProtocol:
        return self.topology.protocol

    @property
    def dispatcher_cn(self) -> str:
        return self.topology.dispatcher_username

    def client(self, username: str) -> ClientAccess:
        return next(c for c in self.clients if c.username == username)


def management_settings(broker: ManagedBroker, **overrides: object) -> ManagementSettings:
    settings = ManagementSettings(broker.management_url, broker.admin_user, broker.admin_password)
    return dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]


def management_client(broker: ManagedBroker, **overrides: object) -> RabbitMQManagementClient:
    """An HTTP management client for the test broker; use ``async with``."""
    return RabbitMQManagementClient(management_settings(broker, **overrides))


def client_accesses(clients: Iterable[ClientSpec]) -> tuple[ClientAccess, ...]:
    return tuple(c if isinstance(c, ClientAccess) else ClientAccess(c[0], tuple(c[1])) for c in clients)


async def provision_vhost(
    broker: ManagedBroker,
    vhost: str,
    profile: ProtocolProfile | str = ProtocolProfile.CURRENT,
    clients: Iterable[ClientSpec] = (),
    *,
    dispatcher_cn: str = DEFAULT_DISPATCHER_USERNAME,
    ttl_ms: int = DEFAULT_MESSAGE_TTL_MS,
    queue_type: QueueType | str = QueueType.CLASSIC,
) -> ProvisionedVHost:
    """Create (or bring back to spec) ``vhost`` with its full topology, dispatcher and clients."""
    topology = VHostTopology(
        vhost,
        profile=ProtocolProfile(profile),
        queue_type=QueueType(queue_type),
        message_ttl_ms=ttl_ms,
        dispatcher_username=dispatcher_cn,
    )
    accesses = client_accesses(clients)
    async with management_client(broker) as management:
        result = await apply_desired_state(management, desired_vhost_state(topology, accesses))
    if not result.converged:
        raise RuntimeError(f"vhost {vhost} did not converge: {[c.describe() for c in result.changes]}")
    return ProvisionedVHost(topology, accesses, result)


def provision_vhost_blocking(broker: ManagedBroker, vhost: str, *args: object, **kwargs: object) -> ProvisionedVHost:
    """:func:`provision_vhost` for synchronous tests (not callable from a running event loop)."""
    return asyncio.run(provision_vhost(broker, vhost, *args, **kwargs))  # type: ignore[arg-type]


async def deprovision_vhost(broker: ManagedBroker, provisioned: ProvisionedVHost) -> None:
    """Delete the vhost and the users it created (the dispatcher user too: tests use their own CNs)."""
    async with management_client(broker) as management:
        await management.delete_vhost(provisioned.vhost)
        for username in {provisioned.dispatcher_cn, *(c.username for c in provisioned.clients)}:
            await management.delete_user(username)
