"""Helpers of the dispatcher unit tests: bundles compiled once per session, inbound builders."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
import pytest
from tests.helpers.hubsante_models import bundle_dir, message_of

from hub_dispatcher.bundle import ModelBundle
from hub_dispatcher.message import Inbound

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
VHOST_OF = {"1.1": "15-15_v1.5", "2.2": "15-15_v2.0", "3.4.1": "15-nexsis_v2.0"}

_bundles: dict[str, ModelBundle] = {}


def load_bundle(version: str) -> ModelBundle:
    """Each real bundle is compiled once per test session (about a second each)."""
    if version not in _bundles:
        if not bundle_dir(version).is_dir():
            pytest.skip(f"model bundle {version} not found under {bundle_dir(version).parent}")
        _bundles[version] = ModelBundle.load(bundle_dir(version))
    return _bundles[version]


def json_inbound(document: Any, routing_key: str = "fr.health.samu050", *, delivery_mode: int | None = 2,
                 content_type: str = "application/json", headers: dict[str, Any] | None = None) -> Inbound:
    body = document if isinstance(document, bytes) else orjson.dumps(document)
    return Inbound(body=body, routing_key=routing_key, content_type=content_type, delivery_mode=delivery_mode,
                   headers=headers or {})


def xml_inbound(body: bytes, routing_key: str = "fr.fire.nexsis.sdis50", *, delivery_mode: int | None = 2,
                headers: dict[str, Any] | None = None) -> Inbound:
    return Inbound(body=body, routing_key=routing_key, content_type="application/xml", delivery_mode=delivery_mode,
                   headers=headers or {})


def error_of(report_body: bytes) -> dict[str, Any]:
    """The ``error`` object of a JSON report."""
    return message_of(orjson.loads(report_body))["error"]
