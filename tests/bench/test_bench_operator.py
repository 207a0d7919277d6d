"""Operator benchmarks (``make bench``): onboarding latency, and convergence of 200 HubClients from a cold start.

* time from ``kubectl apply`` of a new HubClient to its ``Ready=True``, median of 20 (one at a time, on a vhost
  that already serves 20 clients);
* time for a freshly started operator to bring 200 HubClients, each on 3 vhosts (600 accesses, 1,800 client
  queues), to ``Ready`` when nothing exists on the broker yet.

Ready is observed through a watch, not by polling, so the figures are not rounded up to a polling interval.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest
import yaml
from hub_dispatcher import protocol

from tests.integration.operator.conftest import HubEnv, hub_env  # noqa: F401 - fixtures
from tests.integration.operator.operator_manifests import (
    SmallHub,
    hub_client,
    perimeter,
    vhost_version,
)
from tests.system.scale_measure import ReadyWatch

pytestmark = [pytest.mark.cluster, pytest.mark.broker, pytest.mark.slow]

ONBOARDINGS = 20
COLD_CLIENTS = 200
COLD_VHOSTS = 3


def ready_watch(hub_env: HubEnv) -> ReadyWatch:  # noqa: F811 - not the fixture
    """The scale tests' watch: it resumes when the API server closes it during a burst of status updates."""
    return ReadyWatch(hub_env.cluster, hub_env.namespace)


@pytest.fixture
def operator_settings() -> dict[str, str]:  # noqa: F811 - overrides the integration default
    """The production renewal-check interval: the test default (5 s) makes hundreds of timers read Secrets."""
    return {"HUB_OPERATOR_CERTIFICATE_CHECK_INTERVAL": "5m"}


def test_onboarding_latency_median_of_20(hub_env: HubEnv) -> None:  # noqa: F811 - the fixture
    hub = SmallHub()
    hub_env.apply(*hub.base(), *(hub.client(f"base{i:02d}") for i in range(20)))
    hub_env.wait_for(lambda: all(hub_env.condition("hubclient", f"base{i:02d}").get("status") == "True"
                                 for i in range(20)), timeout=60, what="20 existing clients")
    ready = ready_watch(hub_env)
    latencies = []
    try:
        for i in range(ONBOARDINGS):
            name = f"new{i:02d}"
            started = time.monotonic()
            hub_env.kubectl("apply", "-f", "-", input=yaml.safe_dump(hub.client(name)))
            latencies.append(ready.wait({name}, timeout=30) - started)
    finally:
        ready.stop()
    median = statistics.median(latencies)
    print(f"\n[bench] kubectl apply -> Ready: median {median * 1000:.0f} ms over {ONBOARDINGS} HubClients "
          f"(min {min(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms; kubectl itself included)")
    assert median < 5


def test_cold_start_200_clients_across_3_vhosts(hub_env: HubEnv) -> None:  # noqa: F811 - the fixture
    hub = SmallHub()
    names = [f"{hub.perimeter}-v1.{v}" for v in range(COLD_VHOSTS)]
    hub_env.operator.stop()  # everything is created while no operator runs
    manifests: list[dict[str, Any]] = [perimeter(hub.perimeter, dispatcher={"replicas": 0})]
    manifests += [vhost_version(hub.perimeter, f"1.{v}") for v in range(COLD_VHOSTS)]
    clients = [hub_client(f"c{i:03d}", hub.client_id(f"c{i:03d}"), names) for i in range(COLD_CLIENTS)]
    hub_env.apply(*manifests, *clients)
    ready = ready_watch(hub_env)
    try:
        started = time.monotonic()
        hub_env.operator.start()
        live = time.monotonic() - started
        finished = ready.wait({c["metadata"]["name"] for c in clients}, timeout=300)
    finally:
        ready.stop()
    elapsed = finished - started
    for name in names:
        hub_env.wait_condition("vhostversion", name, reason="ScaledToZero", timeout=30)
    vhost = f"{hub.perimeter}_v1.0"
    queues = hub_env.rabbit("GET", "queues", vhost, params={"columns": "name"})
    assert len(queues) == 2 + 3 * COLD_CLIENTS
    assert "Traceback" not in hub_env.operator.log_text()
    metrics = _metric(hub_env, "hub_operator_broker_applies_total")
    print(f"\n[bench] cold start: {COLD_CLIENTS} HubClients x {COLD_VHOSTS} vhosts "
          f"({COLD_CLIENTS * COLD_VHOSTS} accesses, {COLD_CLIENTS * COLD_VHOSTS * 3} client queues) Ready "
          f"{elapsed:.1f} s after the operator started (live after {live:.1f} s); {metrics:.0f} vhost applies")
    assert protocol.CURRENT.client_queues(hub.client_id("c000"))[0] in {q["name"] for q in queues}


def _metric(hub_env: HubEnv, name: str) -> float:  # noqa: F811 - not the fixture
    import urllib.request

    with urllib.request.urlopen(hub_env.operator.metrics_url, timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))
