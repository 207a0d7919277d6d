"""The models refuse the same create-time bad inputs the API server refuses (see the integration table)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub_operator.api.resources import parse_resource
from tests.unit.api.api_admission_cases import CASES, AdmissionCase

CREATE_CASES = [case for case in CASES if case.models_reject]


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 15
    assert {case.kind for case in CASES} == {"Perimeter", "VHostVersion", "HubClient"}
    assert any(case.update for case in CASES), "update-time (immutability) cases"


@pytest.mark.parametrize("case", CREATE_CASES, ids=[case.id for case in CREATE_CASES])
def test_models_refuse_bad_input(case: AdmissionCase) -> None:
    with pytest.raises(ValidationError):
        parse_resource(case.manifest)


@pytest.mark.parametrize("case", [c for c in CASES if c.update], ids=[c.id for c in CASES if c.update])
def test_update_cases_start_from_a_valid_object(case: AdmissionCase) -> None:
    parse_resource(case.manifest)
