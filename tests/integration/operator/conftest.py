"""The operator as a process against the real API server and the real broker, one per test namespace.

``hub_env`` runs :func:`tests.helpers.hub_env.running_hub_env` in the test's namespace: CRDs, broker and operator
CA Secrets, an identity holding exactly the RBAC of ``hub_operator.rbac``, and ``hub-operator`` under it,
watching only that namespace.  Its log is printed when a test fails.  At the end the operator stops and what it
created on the shared broker is removed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_devenv.controlplane import LocalControlPlane
from hub_devenv.hub_resources import broker_secret
from hub_devenv.operator_process import OperatorProcess
from hub_devenv.rabbitmq import LocalBroker

from tests.helpers.hub_env import HubEnv, running_hub_env, unique_suffix

__all__ = ["HubEnv", "OperatorProcess", "broker_secret", "unique_suffix"]


@pytest.fixture
def operator_settings() -> dict[str, str]:
    """Extra HUB_OPERATOR_* variables for this test's operator (override in a test module)."""
    return {}


@pytest.fixture
def hub_env(
    cluster: LocalControlPlane, broker: LocalBroker, namespace: str, tmp_path: Path, operator_settings: dict[str, str]
) -> Iterator[HubEnv]:
    with running_hub_env(cluster, broker, namespace, tmp_path, operator_settings) as env:
        yield env
