"""The Kubernetes API server restarts under a running operator.

* A restart shorter than the operator's leader Lease: the operator keeps running, its watches reconnect, and a
  HubClient applied once the API server is back becomes Ready.
* An outage longer than the Lease: the operator cannot renew it, so it steps down (exit code 3) rather than risk
  acting beside a successor; restarted, as its Deployment restarts it, it resumes.

The API server is restarted on a control plane of this module (etcd keeps the data), never the session's: the
session hub's operator and local node must not see it go.  The broker is the session's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from time import monotonic

import pytest
from hub_devenv.controlplane import LocalControlPlane
from hub_devenv.rabbitmq import LocalBroker
from hub_operator.main import EXIT_LEADERSHIP_LOST

from tests.helpers.hub_env import HubEnv, running_hub_env
from tests.integration.operator.operator_manifests import SmallHub

pytestmark = [pytest.mark.cluster, pytest.mark.broker, pytest.mark.slow]

#: Long enough to outlast a restart of the API server on a busy machine (a few seconds).
LONG_LEASE_SECONDS = 60
#: Short, so that an outage outlasts it quickly.
SHORT_LEASE_SECONDS = 5
#: Deadlines for failure only (the machine is shared and slow at times): never measured figures.
READY_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def own_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalControlPlane]:
    # No controller manager: nothing here needs garbage collection or ReplicaSets (the vhost has no dispatcher).
    plane = LocalControlPlane(tmp_path_factory.mktemp("fault-controlplane"), with_controller_manager=False)
    try:
        plane.start()
    except BaseException:
        plane.stop()
        raise
    yield plane
    plane.stop()


@pytest.fixture
def operator_on_own_control_plane(own_control_plane: LocalControlPlane, broker: LocalBroker, tmp_path: Path,
                                  request: pytest.FixtureRequest) -> Iterator[HubEnv]:
    lease_seconds: int = request.param
    namespace = f"t-apiserver-{os.urandom(3).hex()}"
    own_control_plane.kubectl("create", "namespace", namespace)
    settings = {"HUB_OPERATOR_LEASE_DURATION": f"{lease_seconds}s"}
    with running_hub_env(own_control_plane, broker, namespace, tmp_path, settings) as env:
        yield env


def onboard(env: HubEnv, hub: SmallHub, label: str) -> float:
    """Applies a new HubClient and waits until it is Ready; the monotonic time it was."""
    env.apply(hub.client(label))
    env.wait_condition("hubclient", label, timeout=READY_TIMEOUT)
    return monotonic()


@pytest.mark.parametrize("operator_on_own_control_plane", [LONG_LEASE_SECONDS], indirect=True)
def test_the_operator_rides_out_an_api_server_restart(operator_on_own_control_plane: HubEnv,
                                                      measure: Callable[[str], None]) -> None:
    env, plane = operator_on_own_control_plane, operator_on_own_control_plane.cluster
    hub = SmallHub()
    env.apply(*hub.base())
    onboard(env, hub, "before")

    stopped_at = monotonic()
    plane.stop_apiserver()
    plane.start_apiserver()
    back_at = monotonic()
    ready_at = onboard(env, hub, "after")

    assert env.operator.process is not None and env.operator.process.poll() is None, "the operator exited"
    assert env.condition("hubclient", "before")["status"] == "True"
    assert "stepping down" not in env.operator.log_text()
    measure(f"API server restart: down {back_at - stopped_at:.1f} s, operator kept running; a HubClient applied "
            f"once it was back Ready {ready_at - back_at:.1f} s after it was back (apply included)")


@pytest.mark.parametrize("operator_on_own_control_plane", [SHORT_LEASE_SECONDS], indirect=True)
def test_an_api_server_outage_longer_than_the_lease_stops_the_operator_and_a_restart_resumes(
    operator_on_own_control_plane: HubEnv, measure: Callable[[str], None]
) -> None:
    env, plane = operator_on_own_control_plane, operator_on_own_control_plane.cluster
    hub = SmallHub()
    env.apply(*hub.base())
    onboard(env, hub, "before")
    operator = env.operator.process
    assert operator is not None

    stopped_at = monotonic()
    plane.stop_apiserver()
    try:
        exit_code = operator.wait(timeout=SHORT_LEASE_SECONDS * 10)
        exited_at = monotonic()
    finally:
        plane.start_apiserver()
    back_at = monotonic()
    env.operator.start()  # what the Deployment does with an exited operator
    ready_at = onboard(env, hub, "after")

    assert exit_code == EXIT_LEADERSHIP_LOST
    assert "stepping down" in env.operator.log_text()
    measure(f"API server down {back_at - stopped_at:.1f} s with a {SHORT_LEASE_SECONDS} s Lease: the operator "
            f"stepped down (exit {exit_code}) {exited_at - stopped_at:.1f} s into the outage; restarted, a new "
            f"HubClient was Ready {ready_at - back_at:.1f} s after the API server was back (restart included)")
