"""Prometheus metrics of the operator (served on ``/metrics``, port ``HUB_OPERATOR_METRICS_PORT``).

Each :class:`Metrics` has its own registry, so several operators can live in one test process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

PREFIX = "hub_operator"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.reconciles = Counter(
            f"{PREFIX}_reconciles", "Reconciles by kind and result (success, error, skipped).",
            ["kind", "result"], registry=r,
        )
        self.reconcile_duration = Histogram(
            f"{PREFIX}_reconcile_duration_seconds", "Duration of reconciles by kind.", ["kind"], registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.errors = Counter(
            f"{PREFIX}_errors", "Reconcile failures by kind and condition reason (BrokerUnreachable...).",
            ["kind", "reason"], registry=r,
        )
        self.drift_repairs = Counter(
            f"{PREFIX}_drift_repairs", "Broker objects restored or corrected after a change behind the operator's back.",
            ["vhost", "kind"], registry=r,
        )
        self.broker_applies = Counter(
            f"{PREFIX}_broker_applies", "Bulk applies of a vhost's desired state (one per coalesced reconcile).",
            ["vhost"], registry=r,
        )
        self.broker_apply_duration = Histogram(
            f"{PREFIX}_broker_apply_duration_seconds", "Duration of one vhost apply (observe, diff, import).",
            registry=r, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
        )
        self.revocations = Counter(
            f"{PREFIX}_revocations", "Permissions revoked (suspension, deletion, stray access).", ["vhost"], registry=r,
        )
        self.closed_connections = Counter(
            f"{PREFIX}_closed_connections", "Client connections closed because their access ended.", ["vhost"],
            registry=r,
        )
        self.certificates_issued = Counter(
            f"{PREFIX}_certificates_issued", "Certificates issued (first issue or renewal).", ["kind"], registry=r,
        )
        self.certificates_expiring = Gauge(
            f"{PREFIX}_certificates_expiring", "Certificates due for renewal that were not renewed, by namespace.",
            ["namespace"], registry=r,
        )
        self.certificate_expiry = Gauge(
            f"{PREFIX}_certificate_expiry_timestamp_seconds", "notAfter of each known certificate (Unix time).",
            ["namespace", "name", "kind"], registry=r,
        )
        self.managed_objects = Gauge(
            f"{PREFIX}_managed_objects", "Custom resources known to the operator, by kind.", ["kind"], registry=r,
        )
        self.vhost_clients = Gauge(
            f"{PREFIX}_vhost_clients", "HubClients provisioned per vhost.", ["namespace", "vhost"], registry=r,
        )
        self.dispatcher_replicas = Gauge(
            f"{PREFIX}_dispatcher_replicas", "Dispatchers wanted per vhost (fixed or autoscaled).",
            ["namespace", "vhost"], registry=r,
        )
        self.leader = Gauge(f"{PREFIX}_leader", "1 while this process holds the leader Lease.", registry=r)

    @contextmanager
    def timed(self, kind: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.reconcile_duration.labels(kind).observe(time.perf_counter() - started)

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)
