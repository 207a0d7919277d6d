"""The operator's parts, wired together once per process (and once per unit test, with fakes)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from hub_operator.brokers import BrokerPool, ClientFactory
from hub_operator.certificates import CertificateAuthorityStore
from hub_operator.clients.kubernetes import KubernetesClient
from hub_operator.events import EventRecorder
from hub_operator.inventory import Inventory
from hub_operator.metrics import Metrics
from hub_operator.reconcile.client import ClientReconciler
from hub_operator.reconcile.perimeter import PerimeterReconciler
from hub_operator.reconcile.vhost import VhostReconciler
from hub_operator.reconcile.workload import WorkloadManager
from hub_operator.settings import OperatorSettings
from hub_operator.status import StatusPublisher

#: Names of the kopf index handlers (kopf hands each index to handlers as a keyword argument of that name).
PERIMETER_INDEX = "hub_perimeters"
VHOSTVERSION_INDEX = "hub_vhost_versions"
CLIENT_INDEX = "hub_clients"


class InventoryNotReady(RuntimeError):
    """A reconcile was asked for before any kopf handler ran (kopf had not finished its initial listing)."""


class OperatorContext:
    def __init__(
        self,
        settings: OperatorSettings,
        kube: KubernetesClient,
        *,
        metrics: Metrics | None = None,
        broker_factory: ClientFactory | None = None,
        inventory: Inventory | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.metrics = metrics or Metrics()
        self._inventory = inventory
        self.authorities = CertificateAuthorityStore(
            kube, settings.operator_namespace, settings.ca_secret_name, autogenerate=settings.ca_autogenerate
        )
        self.brokers = BrokerPool(
            kube, connect_timeout=settings.broker_connect_timeout, request_timeout=settings.broker_request_timeout,
            factory=broker_factory,
        )
        self.publisher = StatusPublisher(kube)
        self.events = EventRecorder(kube)
        self.workloads = WorkloadManager(kube, self.authorities, settings)
        common: dict[str, Any] = {"inventory": self.inventory, "publisher": self.publisher, "metrics": self.metrics,
                                  "now": now}
        self.vhosts = VhostReconciler(settings=settings, brokers=self.brokers, workloads=self.workloads,
                                      events=self.events, **common)
        self.clients = ClientReconciler(settings=settings, kube=kube, authorities=self.authorities,
                                        brokers=self.brokers, vhosts=self.vhosts, events=self.events, **common)
        self.perimeters = PerimeterReconciler(vhosts=self.vhosts, **common)

    def inventory(self) -> Inventory:
        if self._inventory is None:
            raise InventoryNotReady("the inventory is not attached yet")
        return self._inventory

    @property
    def attached(self) -> bool:
        return self._inventory is not None

    def attach_indexes(self, handler_kwargs: Mapping[str, Any]) -> None:
        """Keep kopf's live indexes (the same objects for the whole run) from any handler's keyword arguments."""
        if self._inventory is None:
            self._inventory = Inventory(
                handler_kwargs[PERIMETER_INDEX], handler_kwargs[VHOSTVERSION_INDEX], handler_kwargs[CLIENT_INDEX]
            )

    def update_gauges(self) -> None:
        if self._inventory is None:
            return
        inventory = self._inventory
        self.metrics.managed_objects.labels("Perimeter").set(len(inventory.all_perimeters()))
        self.metrics.managed_objects.labels("VHostVersion").set(len(inventory.all_vhost_versions()))
        self.metrics.managed_objects.labels("HubClient").set(len(inventory.all_clients()))

    async def close(self) -> None:
        await self.vhosts.close()
        await self.events.drain()
        await self.brokers.close()
