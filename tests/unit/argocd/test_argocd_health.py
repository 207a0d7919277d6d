"""The Argo CD health checks return the right state for Ready, progressing, failed and suspended objects.

Cases are Argo CD's own format (``health_test.yaml`` + ``testdata/`` beside each script), so the same files
would run in Argo CD's test suite; here they run under Lua 5.1 with Argo CD's reduced library set.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

import pytest
from tests.unit.argocd.argocd_lua import (
    LuaHealthError,
    HealthCase,
    failure_reasons,
    health_cases,
    health_script,
    kinds,
    run_health,
)

from hub_operator.api.resources import parse_resource

CASES = list(health_cases())
OPERATOR = Path(__file__).resolve().parents[3] / "operator" / "hub_operator"


def test_every_kind_of_the_api_has_cases() -> None:
    assert kinds() == ["HubClient", "Perimeter", "VHostVersion"]
    covered = {(case.kind, case.status) for case in CASES}
    for kind in kinds():
        assert {(kind, status) for status in ("Healthy", "Progressing", "Degraded")} <= covered
    assert ("HubClient", "Suspended") in covered


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_health_case(case: HealthCase) -> None:
    assert run_health(health_script(case.kind), case.object()) == {"status": case.status, "message": case.message}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_sample_objects_are_valid_custom_resources(case: HealthCase) -> None:
    """The samples are statuses the operator can write: they pass the same models as the CRD schema."""
    resource = parse_resource(case.object())
    assert resource.kind == case.kind


def _sample(kind: str, name: str) -> dict[str, Any]:
    return next(case for case in CASES if case.kind == kind and case.input_path.stem == name).object()


def _with_ready(body: dict[str, Any], status: str, reason: str) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    for condition in changed["status"]["conditions"]:
        if condition["type"] == "Ready":
            condition.update(status=status, reason=reason, message="details")
    return changed


@pytest.mark.parametrize(("kind", "reason"), [(kind, reason) for kind in kinds() for reason in failure_reasons(kind)])
def test_every_failure_reason_is_degraded(kind: str, reason: str) -> None:
    body = _with_ready(_sample(kind, "healthy"), "False", reason)
    assert run_health(health_script(kind), body) == {"status": "Degraded", "message": f"{reason}: details"}


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("reason", ["Pending", "CertificatePending", "CertificateExpiring", "DispatcherNotReady"])
def test_a_transient_false_reason_is_progressing(kind: str, reason: str) -> None:
    body = _with_ready(_sample(kind, "healthy"), "False", reason)
    assert run_health(health_script(kind), body)["status"] == "Progressing"


@pytest.mark.parametrize("kind", kinds())
def test_ready_unknown_is_progressing_even_with_a_failure_reason(kind: str) -> None:
    body = _with_ready(_sample(kind, "healthy"), "Unknown", failure_reasons(kind)[0])
    assert run_health(health_script(kind), body)["status"] == "Progressing"


@pytest.mark.parametrize("kind", kinds())
def test_a_failure_is_not_reported_before_the_operator_saw_the_current_generation(kind: str) -> None:
    """A spec change may be the fix: the old failure must not keep the object Degraded meanwhile."""
    body = _with_ready(_sample(kind, "healthy"), "False", "BrokerUnreachable")
    body["metadata"]["generation"] += 1
    health = run_health(health_script(kind), body)
    assert health["status"] == "Progressing"
    assert f"generation {body['metadata']['generation']}" in health["message"]


@pytest.mark.parametrize("kind", kinds())
def test_healthy_needs_an_observed_generation(kind: str) -> None:
    body = _sample(kind, "healthy")
    del body["status"]["observedGeneration"]
    for condition in body["status"]["conditions"]:
        condition.pop("observedGeneration", None)
    health = run_health(health_script(kind), body)
    assert health == {"status": "Progressing",
                      "message": f"Waiting for the operator to observe generation {body['metadata']['generation']}"}


def test_failure_reasons_are_reasons_the_operator_writes() -> None:
    """A failure reason nobody writes is a typo or a stale entry: the object would never show Degraded."""
    written = {node.value for path in OPERATOR.rglob("*.py") if "cli" not in path.parts
               for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant)
               and isinstance(node.value, str)}
    listed = {reason for kind in kinds() for reason in failure_reasons(kind)}
    assert listed - written == set()


def test_a_suspended_client_being_deleted_is_progressing_not_suspended() -> None:
    body = _sample("HubClient", "suspended")
    body["metadata"]["deletionTimestamp"] = "2025-03-01T11:00:00Z"
    assert run_health(health_script("HubClient"), body)["status"] == "Progressing"


def test_the_sandbox_refuses_what_argo_cd_does_not_offer() -> None:
    """The harness is only worth something if it is as strict as Argo CD: no string, math or os library."""
    for script in ("return {status = string.upper('healthy')}", "return {status = ('Healthy'):sub(1)}",
                   "return {status = 'Healthy', message = tostring(os.time())}",
                   "return {status = 'Healthy', message = tostring(math.floor(1.5))}"):
        with pytest.raises(LuaHealthError, match="failed"):
            run_health(script, {})
    with pytest.raises(LuaHealthError, match="invalid health status 'Fine'"):
        run_health("return {status = 'Fine'}", {})
    with pytest.raises(LuaHealthError, match="not a table"):
        run_health("return 'Healthy'", {})
