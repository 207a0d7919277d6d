"""Durations and quantities: the two scalar syntaxes of the CRDs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError

from hub_operator.api.fieldtypes import MessageTTL, Quantity, format_duration, parse_duration, quantity_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", dt.timedelta(hours=24)),
        ("90m", dt.timedelta(minutes=90)),
        ("1h30m", dt.timedelta(hours=1, minutes=30)),
        ("45s", dt.timedelta(seconds=45)),
        ("1500ms", dt.timedelta(seconds=1.5)),
        ("1m500ms", dt.timedelta(seconds=60.5)),
    ],
)
def test_parse_duration(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "24", "-1h", "1.5h", "1d", "24 h", "h", "1H"])
def test_parse_duration_refuses_what_the_pattern_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="expected <number><unit>"):
        parse_duration(text)


def test_format_duration_refuses_non_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        format_duration(dt.timedelta(0))


class _Ttl(BaseModel):
    ttl: MessageTTL


class _Amount(BaseModel):
    amount: Quantity


@pytest.mark.parametrize(("value", "message"), [("0s", "at least 1s"), ("721h", "at most 720h"), ("-5m", "pattern")])
def test_message_ttl_bounds(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _Ttl(ttl=value)


def test_message_ttl_accepts_its_bounds() -> None:
    assert _Ttl(ttl="1s").ttl == "1s"
    assert _Ttl(ttl="720h").ttl == "720h"


@pytest.mark.parametrize(("value", "expected"), [("100m", Decimal("0.1")), ("1Gi", Decimal(2**30)), (2, Decimal(2)), ("1e3", Decimal(1000))])
def test_quantities(value: int | str, expected: Decimal) -> None:
    assert quantity_value(_Amount(amount=value).amount) == expected


@pytest.mark.parametrize(("value", "message"), [("lots", "not a Kubernetes quantity"), ("-1", "not a Kubernetes quantity"), (-3, "must not be negative"), ("1 Gi", "not a Kubernetes quantity")])
def test_bad_quantities(value: int | str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _Amount(amount=value)
