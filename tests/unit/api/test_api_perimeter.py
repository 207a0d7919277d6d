"""Perimeter spec: defaults, allow-list, TTL and dispatcher settings."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from hub_dispatcher import usecases
from hub_operator.api.dispatching import DispatcherSettings
from hub_operator.api.perimeter import PerimeterSpec


def test_defaults() -> None:
    spec = PerimeterSpec.model_validate({"description": "SAMU to SAMU"})
    assert spec.allowed_use_cases == []
    assert spec.message_ttl == "24h"
    assert spec.message_ttl_delta == dt.timedelta(hours=24)
    assert spec.dispatcher == DispatcherSettings()
    assert spec.dispatcher.effective_replicas == 1
    assert spec.to_wire() == {"description": "SAMU to SAMU", "allowedUseCases": [], "messageTTL": "24h", "dispatcher": {}}


def test_snake_case_names_are_accepted_too() -> None:
    spec = PerimeterSpec(description="x", allowed_use_cases=["reference"], message_ttl="1h")
    assert spec.to_wire()["allowedUseCases"] == ["reference"]
    assert spec.to_wire()["messageTTL"] == "1h"


def test_empty_allow_list_allows_every_use_case() -> None:
    spec = PerimeterSpec(description="x")
    assert all(spec.allows(key) for key in usecases.KEYS)


def test_allow_list_restricts() -> None:
    spec = PerimeterSpec(description="x", allowed_use_cases=["createCase", "reference"])
    assert spec.allows("createCase")
    assert not spec.allows("rpis")
    assert spec.use_case_summary == "2 allowed"
    assert PerimeterSpec(description="x").use_case_summary == "all"


def test_every_catalogue_key_is_accepted() -> None:
    assert PerimeterSpec(description="x", allowed_use_cases=list(usecases.KEYS)).allowed_use_cases == list(usecases.KEYS)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "description\n  Field required"),
        ({"description": ""}, "at least 1 character"),
        ({"description": "x", "allowedUseCases": ["createcase"]}, "'createCase'"),
        ({"description": "x", "allowedUseCases": ["reference", "reference"]}, "more than once: reference"),
        ({"description": "x", "messageTTL": "0s"}, "at least 1s"),
        ({"description": "x", "messageTTL": "1000h"}, "at most 720h"),
        ({"description": "x", "messageTTL": "1 day"}, "should match pattern"),
        ({"description": "x", "messageTtl": "1h"}, "Extra inputs are not permitted"),
        ({"description": "x", "dispatcher": {"replicas": 21}}, "less than or equal to 20"),
        ({"description": "x", "dispatcher": {"replicas": -1}}, "greater than or equal to 0"),
    ],
)
def test_invalid_specs(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        PerimeterSpec.model_validate(spec)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"replicas": 2, "autoscaling": {"maxReplicas": 3}}, "either replicas (a fixed count) or autoscaling"),
        ({"autoscaling": {"minReplicas": 4, "maxReplicas": 3}}, "minReplicas (4) must be less than or equal to maxReplicas (3)"),
        ({"autoscaling": {"minReplicas": 0, "maxReplicas": 3}}, "greater than or equal to 1"),
        ({"autoscaling": {}}, "maxReplicas\n  Field required"),
        ({"autoscaling": {"maxReplicas": 3, "targetQueueDepth": 0}}, "greater than or equal to 1"),
        ({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}}}, "requests.cpu (2) must not exceed limits.cpu (1500m)"),
        ({"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}}}, "requests.memory"),
        ({"resources": {"requests": {"gpu": "1"}}}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_dispatcher_settings(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        DispatcherSettings.model_validate(settings)
    assert message in str(error.value)


def test_autoscaling_defaults_and_effective_replicas() -> None:
    settings = DispatcherSettings.model_validate({"autoscaling": {"maxReplicas": 3}})
    assert settings.autoscaling is not None
    assert (settings.autoscaling.min_replicas, settings.autoscaling.target_queue_depth) == (1, 10)
    assert settings.effective_replicas is None
    assert DispatcherSettings(replicas=0).effective_replicas == 0


def test_requests_equal_to_limits_are_fine() -> None:
    DispatcherSettings.model_validate({"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1000m", "memory": 1073741824}}})
