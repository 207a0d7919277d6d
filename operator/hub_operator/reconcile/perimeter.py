"""Perimeters: their status, and rolling their changes (allow-list, TTL, dispatcher settings) out to their vhosts.

A Perimeter has no broker object of its own: every VHostVersion of the perimeter reads it at each run, so a
change reaches each vhost (TTL policy, dispatcher allow-list and replicas) by triggering a run of each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from hub_operator.api.perimeter import PerimeterStatus
from hub_operator.inventory import Inventory, PerimeterRecord
from hub_operator.metrics import Metrics
from hub_operator.reconcile.vhost import PLURAL as VHOSTVERSIONS
from hub_operator.reconcile.vhost import VhostReconciler
from hub_operator.status import (
    StatusPublisher,
    parse_previous,
    perimeter_status,
    ready_condition,
)

KIND = "Perimeter"
PLURAL = "perimeters"


class PerimeterReconciler:
    def __init__(
        self,
        *,
        inventory: Callable[[], Inventory],
        vhosts: VhostReconciler,
        publisher: StatusPublisher,
        metrics: Metrics,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._inventory = inventory
        self._vhosts = vhosts
        self._publisher = publisher
        self._metrics = metrics
        self._now = now
        vhosts.perimeter_changed = self.publish

    async def reconcile(self, record: PerimeterRecord) -> None:
        """Status now; every VHostVersion of the perimeter re-runs with the new spec (in the background)."""
        with self._metrics.timed(KIND):
            await self.publish(record.namespace, record.name)
            self.roll_out(record.namespace, record.name)
        self._metrics.reconciles.labels(KIND, "error" if record.spec is None else "success").inc()

    def roll_out(self, namespace: str, name: str) -> None:
        for vhost_version in self._inventory().vhost_versions_of_perimeter(namespace, name):
            if not vhost_version.deleting:
                self._vhosts.trigger(vhost_version.key)

    async def publish(self, namespace: str, name: str) -> None:
        inventory = self._inventory()
        record = inventory.perimeter(namespace, name)
        if record is None or record.deleting:
            return
        members = [
            (v, ready_condition(self._publisher.last(VHOSTVERSIONS, v.namespace, v.name, v.status)))
            for v in inventory.vhost_versions_of_perimeter(namespace, name)
        ]
        async with self._publisher.lock(PLURAL, namespace, name):
            stored = self._publisher.last(PLURAL, namespace, name, record.status)
            status = perimeter_status(record, members, parse_previous(PerimeterStatus, stored), now=self._now())
            await self._publisher.write(PLURAL, namespace, name, status.to_wire(), record.status)

    def forget(self, record: PerimeterRecord) -> None:
        self._publisher.forget(PLURAL, record.namespace, record.name)
