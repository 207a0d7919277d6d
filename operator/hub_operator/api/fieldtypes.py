"""Scalar field types with their wire format, shared by the three kinds.

Each type carries its schema (pattern, bounds, CEL) so the CRD and the Python validation cannot drift,
and a Python check mirroring whatever the API server enforces on it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any

from kubernetes.utils.quantity import parse_quantity
from pydantic import AfterValidator, Field, WithJsonSchema

from hub_dispatcher import protocol

from .base import CelRule, cel

# -- durations ------------------------------------------------------------------------------------------

#: Go-style durations restricted to whole numbers of hours, minutes, seconds and milliseconds
#: (``24h``, ``90m``, ``1h30m``): what CEL's ``duration()`` parses and what people write in YAML.
DURATION_PATTERN = r"^([0-9]+(ms|h|m|s))+$"
SIGNED_DURATION_PATTERN = r"^-?([0-9]+(ms|h|m|s))+$"
_DURATION_PART = re.compile(r"([0-9]+)(ms|h|m|s)")
_DURATION_RE = re.compile(DURATION_PATTERN)
_UNITS = {
    "h": dt.timedelta(hours=1),
    "m": dt.timedelta(minutes=1),
    "s": dt.timedelta(seconds=1),
    "ms": dt.timedelta(milliseconds=1),
}
DURATION_EXAMPLES = "e.g. 24h, 90m, 1h30m, 45s"


def parse_duration(text: str) -> dt.timedelta:
    """``1h30m`` -> 90 minutes.  Raises ValueError naming the expected format."""
    if not _DURATION_RE.match(text):
        raise ValueError(f"{text!r} is not a duration: expected <number><unit>... with units h, m, s, ms "
                         f"({DURATION_EXAMPLES})")
    return sum((int(number) * _UNITS[unit] for number, unit in _DURATION_PART.findall(text)), dt.timedelta())


def format_duration(value: dt.timedelta) -> str:
    """The shortest string ``parse_duration`` maps back to ``value`` (whole milliseconds)."""
    total_ms = round(value.total_seconds() * 1000)
    if total_ms <= 0:
        raise ValueError(f"durations must be positive, got {value}")
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, total_ms = divmod(total_ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _duration_bounds(minimum: str, maximum: str | None) -> tuple[Callable[[str], str], CelRule]:
    """Python check and CEL rule for a duration within [minimum, maximum]."""
    low = parse_duration(minimum)
    high = parse_duration(maximum) if maximum else None
    expected = f"at least {minimum}" + (f" and at most {maximum}" if maximum else "")

    def check(text: str) -> str:
        value = parse_duration(text)
        if value < low or (high is not None and value > high):
            raise ValueError(f"duration {text!r} out of range: must be {expected}")
        return text

    cel_bounds = f"duration(self) >= duration('{minimum}')"
    if maximum:
        cel_bounds += f" && duration(self) <= duration('{maximum}')"
    # The guard keeps a malformed string (already refused by the pattern) from failing evaluation, but lets
    # a negative one through so that its error says the duration must be positive, not just the pattern.
    rule = CelRule(rule=f"!self.matches('{SIGNED_DURATION_PATTERN}') || ({cel_bounds})",
                   message=f"must be a duration {expected} ({DURATION_EXAMPLES})")
    return check, rule


def duration_type(minimum: str, maximum: str | None = None) -> Any:
    """An ``Annotated[str, ...]`` duration type bounded to [minimum, maximum]."""
    check, rule = _duration_bounds(minimum, maximum)
    return Annotated[
        str,
        Field(pattern=DURATION_PATTERN, max_length=32, json_schema_extra=cel(rule)),
        AfterValidator(check),
    ]


#: RabbitMQ's ``message-ttl`` is a 32-bit count of milliseconds (~49 days); 30 days is our ceiling.
MESSAGE_TTL_MAX = "720h"
MessageTTL = duration_type("1s", MESSAGE_TTL_MAX)
CertificateDuration = duration_type("1h", "87600h")


# -- resource quantities -----------------------------------------------------------------------------------

#: Kubernetes quantity syntax without a sign (a negative request or limit is meaningless).
QUANTITY_PATTERN = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)


def quantity_value(value: int | str) -> Decimal:
    """The numeric value of a Kubernetes quantity (``100m`` -> 0.1, ``1Gi`` -> 1073741824)."""
    return Decimal(value) if isinstance(value, int) else parse_quantity(value)


def _check_quantity(value: int | str) -> int | str:
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"quantity {value} must not be negative")
        return value
    if not _QUANTITY_RE.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 250m, 0.5, 128Mi, 1Gi)")
    return value


Quantity = Annotated[
    int | str,
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}),
    AfterValidator(_check_quantity),
]


# -- names --------------------------------------------------------------------------------------------------

#: A Kubernetes object name (DNS-1123 subdomain), e.g. a Secret or ConfigMap.
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
OBJECT_NAME_MAX = 253
ObjectName = Annotated[str, Field(pattern=OBJECT_NAME_PATTERN, min_length=1, max_length=OBJECT_NAME_MAX)]

#: Longest client id we accept: queue names (``<id>.in.message``) must stay under RabbitMQ's 255 bytes.
CLIENT_ID_MAX = 128
ClientId = Annotated[str, Field(pattern=protocol.CLIENT_ID_PATTERN, min_length=1, max_length=CLIENT_ID_MAX)]

#: Version strings (vhost spec versions and model bundle versions): ``1.5``, ``2.0``, ``3.4.1``.
VERSION_MAX = 16
Version = Annotated[str, Field(pattern=protocol.SPEC_VERSION_PATTERN, min_length=3, max_length=VERSION_MAX)]

#: Perimeter names (``15-15``); they are also the Perimeter objects' ``metadata.name``.
PERIMETER_NAME_MAX = 42
PerimeterName = Annotated[
    str, Field(pattern=protocol.PERIMETER_NAME_PATTERN, min_length=1, max_length=PERIMETER_NAME_MAX)
]
