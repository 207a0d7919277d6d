"""KEP-1623 conditions helpers."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from hub_operator.api.common import Condition, ConditionStatus, find_condition, is_ready, set_condition
from hub_operator.api.hubclient import HubClientStatus

T0 = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
T1 = T0 + dt.timedelta(minutes=5)


def test_set_condition_adds_then_keeps_transition_time_while_status_is_unchanged() -> None:
    conditions = set_condition([], "Ready", ConditionStatus.FALSE, "Provisioning", "creating user", now=T0)
    conditions = set_condition(conditions, "Ready", ConditionStatus.FALSE, "BrokerUnreachable", "retrying", now=T1)
    ready = find_condition(conditions, "Ready")
    assert ready is not None
    assert (ready.reason, ready.message, ready.last_transition_time) == ("BrokerUnreachable", "retrying", T0)
    assert not is_ready(conditions)


def test_set_condition_moves_transition_time_on_status_change_and_keeps_order() -> None:
    conditions = set_condition([], "CertificateReady", ConditionStatus.TRUE, "Issued", now=T0)
    conditions = set_condition(conditions, "Ready", ConditionStatus.FALSE, "Provisioning", now=T0)
    conditions = set_condition(conditions, "Ready", ConditionStatus.TRUE, "Provisioned", observed_generation=3, now=T1)
    assert [c.type for c in conditions] == ["CertificateReady", "Ready"]
    ready = find_condition(conditions, "Ready")
    assert ready is not None and ready.last_transition_time == T1 and ready.observed_generation == 3
    assert is_ready(conditions)


def test_condition_wire_form_is_the_kubernetes_one() -> None:
    condition = Condition(type="Ready", status=ConditionStatus.TRUE, reason="Provisioned", message="", last_transition_time=T0)
    assert condition.to_wire() == {
        "type": "Ready", "status": "True", "reason": "Provisioned", "message": "", "lastTransitionTime": "2025-01-01T12:00:00Z",
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"status": "Yes"}, "'True', 'False' or 'Unknown'"),
        ({"reason": "not camel case"}, "should match pattern"),
        ({"reason": ""}, "at least 1 character"),
        ({"type": "has space"}, "should match pattern"),
        ({"observedGeneration": -1}, "greater than or equal to 0"),
    ],
)
def test_invalid_conditions(changes: dict[str, object], message: str) -> None:
    body = {"type": "Ready", "status": "True", "reason": "Ok", "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"}
    with pytest.raises(ValidationError) as error:
        Condition.model_validate({**body, **changes})
    assert message in str(error.value)


def test_status_accepts_what_the_operator_writes() -> None:
    status = HubClientStatus.model_validate(
        {
            "observedGeneration": 2,
            "username": "fr.health.samu050",
            "clientIds": ["fr.health.samu050"],
            "certificate": {"secretName": "samu050-tls", "notAfter": "2026-01-01T00:00:00Z", "serial": "0a1b"},
            "vhosts": [{"vhostVersion": "15-15-v1.5", "vhost": "15-15_v1.5", "state": "Provisioned"}],
            "readyVhosts": 1,
            "conditions": [{"type": "Ready", "status": "True", "reason": "Provisioned", "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"}],
        }
    )
    assert status.certificate is not None and status.certificate.not_after is not None
    assert status.certificate.not_after.year == 2026
    assert is_ready(status.conditions)
