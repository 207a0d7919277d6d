"""The pinned helm binary for the chart's unit tests (no cluster: lint and template only)."""

from __future__ import annotations

import pytest

from tests.unit.chart.chart_support import Helm


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.create(tmp_path_factory.mktemp("helm"))
