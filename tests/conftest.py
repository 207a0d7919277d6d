"""Session fixtures: a real private RabbitMQ broker and a real Kubernetes API server, started once per run.

Both are started lazily (only when a test asks for them), on loopback with free ports, in the run's temporary
folder, and stopped at the end.  A component that fails to start fails the tests that need it, with the tail
of its log in the error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from hub_devenv.controlplane import LocalControlPlane
from hub_devenv.rabbitmq import LocalBroker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    node = LocalBroker(tmp_path_factory.mktemp("rabbitmq"), node_name=f"hubtest{os.getpid()}")
    node.start()
    yield node
    node.stop(kill=True)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalControlPlane]:
    control_plane = LocalControlPlane(tmp_path_factory.mktemp("controlplane"))
    try:
        control_plane.start()
    except BaseException:
        control_plane.stop()
        raise
    yield control_plane
    control_plane.stop()


@pytest.fixture
def namespace(cluster: LocalControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test; deleted (without waiting) afterwards."""
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{os.urandom(3).hex()}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
