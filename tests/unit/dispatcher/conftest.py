"""Fixtures of the dispatcher unit tests: the real bundles and pipelines with a fixed clock and ids."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from itertools import count
from typing import Any

import pytest
from tests.unit.dispatcher.dispatch_support import NOW, VHOST_OF, load_bundle
from tests.helpers.hubsante_models import MODEL_VERSIONS, bundle_dir

from hub_dispatcher.bundle import ModelBundle
from hub_dispatcher.pipeline import Pipeline
from hub_dispatcher.preferences import Preferences
from hub_dispatcher.protocol import ProtocolProfile
from hub_dispatcher.settings import DispatcherSettings


@pytest.fixture(params=MODEL_VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def bundle(version: str) -> ModelBundle:
    return load_bundle(version)


PipelineFactory = Callable[..., Pipeline]


@pytest.fixture
def make_pipeline() -> PipelineFactory:
    """``make_pipeline("3.4.1", preferences={id: {"format": "xml"}}, profile=..., allowed=..., now=...)``."""

    def make(
        version: str = "3.4.1",
        *,
        preferences: dict[str, Any] | None = None,
        profile: ProtocolProfile = ProtocolProfile.CURRENT,
        allowed: frozenset[str] | None = None,
        now: datetime = NOW,
        **settings: Any,
    ) -> Pipeline:
        ids = count(1)
        return Pipeline(
            settings=DispatcherSettings(vhost=VHOST_OF[version], bundle_dir=bundle_dir(version), profile=profile,
                                        allowed_use_cases=allowed, **settings),
            bundle=load_bundle(version),
            preferences=Preferences.from_mapping({"clients": preferences or {}}),
            clock=lambda: now,
            new_uuid=lambda: f"00000000-0000-4000-8000-{next(ids):012d}",
        )

    return make
