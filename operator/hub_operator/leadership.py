"""Leader election with a ``coordination.k8s.io/v1`` Lease: at most one operator acts at a time.

kopf's peering only pauses operators of *lower* priority and warns about equal ones, so it cannot make a rolling
update or a stuck old pod safe.  The Lease works like client-go's: the holder renews it every third of its
duration; a candidate takes it over only once it has seen it unchanged for a whole duration (measured on its own
monotonic clock, so clock skew between nodes does not matter), or at once when it was released or is held under
its own identity (a restarted container of the same pod).  An operator that cannot renew in time stops acting.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub_operator.clients.kubernetes import (
    KubernetesClient,
    KubernetesConflict,
    KubernetesError,
)

log = logging.getLogger(__name__)


def _micro_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Observation:
    record: tuple[Any, ...]
    since: float


class LeaseElector:
    def __init__(
        self,
        kube: KubernetesClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        duration: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self._clock = clock
        self._observed: _Observation | None = None
        self._resource_version: str | None = None
        self._renewed_at: float | None = None
        self.transitions = 0

    @property
    def renew_interval(self) -> float:
        return max(self.duration / 3, 0.2)

    def _body(self, lease: dict[str, Any] | None, acquire: bool) -> dict[str, Any]:
        now = _micro_time(dt.datetime.now(dt.UTC))
        spec = dict((lease or {}).get("spec") or {})
        if acquire:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if lease else 0)
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=max(1, round(self.duration)), renewTime=now)
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if lease is not None:
            metadata["resourceVersion"] = lease["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    async def try_acquire(self) -> bool:
        """One attempt; True when this process holds the Lease afterwards."""
        lease = await self._kube.get_lease(self.namespace, self.name)
        started = self._clock()
        if lease is None:
            try:
                created = await self._kube.create_lease(self.namespace, self._body(None, acquire=True))
            except KubernetesConflict:
                return False
            self._held(created, started)
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        if self._observed is None or self._observed.record != record:
            self._observed = _Observation(record, started)
        duration = float(spec.get("leaseDurationSeconds") or self.duration)
        expired = started - self._observed.since >= duration
        if holder and holder != self.identity and not expired:
            return False
        try:
            replaced = await self._kube.replace_lease(self.namespace, self.name,
                                                      self._body(lease, acquire=holder != self.identity))
        except KubernetesConflict:
            return False
        if holder and holder != self.identity:
            log.warning("took over Lease %s/%s from %s (not renewed for %.0fs)", self.namespace, self.name, holder,
                        duration)
        self._held(replaced, started)
        return True

    def _held(self, lease: dict[str, Any], at: float) -> None:
        self._resource_version = lease["metadata"]["resourceVersion"]
        self._renewed_at = at

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this process leads (True), or until ``stop`` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if await self.try_acquire():
                    log.info("leading as %s (Lease %s/%s)", self.identity, self.namespace, self.name)
                    return True
            except KubernetesError as error:
                log.warning("cannot read Lease %s/%s: %s", self.namespace, self.name, error)
            if not announced:
                log.info("waiting for Lease %s/%s, held by another operator", self.namespace, self.name)
                announced = True
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.renew_interval)
            except TimeoutError:
                pass
        return False

    async def renew(self) -> bool:
        """Renew once; False when the Lease was lost to another holder."""
        lease = await self._kube.get_lease(self.namespace, self.name)
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return False
        started = self._clock()
        try:
            renewed = await self._kube.replace_lease(self.namespace, self.name, self._body(lease, acquire=False))
        except KubernetesConflict:
            return False
        self._held(renewed, started)
        return True

    async def hold(self, lost: asyncio.Event) -> None:
        """Renew until cancelled; sets ``lost`` when leadership cannot be kept (then the operator must stop)."""
        while True:
            await asyncio.sleep(self.renew_interval)
            try:
                if not await self.renew():
                    log.error("lost Lease %s/%s to another operator", self.namespace, self.name)
                    lost.set()
                    return
            except KubernetesError as error:
                log.warning("could not renew Lease %s/%s: %s", self.namespace, self.name, error)
            if self._renewed_at is not None and self._clock() - self._renewed_at >= self.duration:
                # Others may take over from now on: stop acting before they start.
                log.error("Lease %s/%s not renewed for %.0fs: stepping down", self.namespace, self.name, self.duration)
                lost.set()
                return

    async def release(self) -> None:
        """Give the Lease up at shutdown, so that a successor starts at once."""
        try:
            lease = await self._kube.get_lease(self.namespace, self.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            body = self._body(lease, acquire=False)
            body["spec"]["holderIdentity"] = ""
            body["spec"]["leaseDurationSeconds"] = 1
            await self._kube.replace_lease(self.namespace, self.name, body)
            log.info("released Lease %s/%s", self.namespace, self.name)
        except KubernetesError as error:
            log.warning("could not release Lease %s/%s: %s", self.namespace, self.name, error)
