"""Types shared by the three kinds' specs and statuses: conditions, references, deletion policy."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from .base import ApiModel, list_map

# -- conditions (KEP-1623, the shape of metav1.Condition) -----------------------------------------------------

CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

#: The summary condition every kind carries; the specific ones are listed by each kind.
READY = "Ready"


class ConditionStatus(str, enum.Enum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One aspect of the object's current state (Kubernetes KEP-1623 condition)."""

    type: str = Field(
        description="Condition type in CamelCase: Ready (summary) or one of the kind's specific conditions.",
        pattern=CONDITION_TYPE_PATTERN,
        max_length=316,
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="Machine-readable CamelCase reason for the last transition (e.g. Provisioned, BrokerUnreachable).",
        pattern=CONDITION_REASON_PATTERN,
        min_length=1,
        max_length=1024,
    )
    message: str = Field(description="Human-readable details; may be empty.", max_length=32768)
    last_transition_time: dt.datetime = Field(
        description="When the status last changed (RFC 3339). Unchanged while only reason or message change."
    )
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation of the object this condition was computed from."
    )


Conditions = Annotated[
    list[Condition],
    Field(
        default_factory=list,
        max_length=32,
        description="Current state as KEP-1623 conditions, one per type: Ready summarises the others.",
        json_schema_extra=list_map("type"),
    ),
]


def find_condition(conditions: Sequence[Condition], condition_type: str) -> Condition | None:
    return next((condition for condition in conditions if condition.type == condition_type), None)


def set_condition(
    conditions: Sequence[Condition],
    condition_type: str,
    status: ConditionStatus,
    reason: str,
    message: str = "",
    *,
    observed_generation: int | None = None,
    now: dt.datetime | None = None,
) -> list[Condition]:
    """A new list with the condition of ``condition_type`` set.

    ``lastTransitionTime`` only moves when the status changes, as KEP-1623 requires: a condition whose
    reason or message is refreshed on every reconciliation must not look like it just flapped.
    """
    previous = find_condition(conditions, condition_type)
    changed = previous is None or previous.status is not status
    transition = (now or dt.datetime.now(dt.timezone.utc)) if changed else previous.last_transition_time
    updated = Condition(
        type=condition_type,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition.replace(microsecond=0),
        observed_generation=observed_generation,
    )
    others = [condition for condition in conditions if condition.type != condition_type]
    return [*others, updated] if previous is None else [
        updated if condition.type == condition_type else condition for condition in conditions
    ]


def is_ready(conditions: Sequence[Condition]) -> bool:
    ready = find_condition(conditions, READY)
    return ready is not None and ready.status is ConditionStatus.TRUE


# -- policies and references --------------------------------------------------------------------------------


class DeletionPolicy(str, enum.Enum):
    """What deleting the custom resource does to the broker objects it created."""

    RETAIN = "retain"
    DELETE = "delete"


class StatusBase(ApiModel):
    """Fields every status carries."""

    conditions: Conditions
    observed_generation: int | None = Field(
        None, ge=0, description="The metadata.generation the operator last reconciled; older than metadata.generation means a change is pending."
    )


class ObjectMeta(ApiModel):
    """The part of ``metadata`` the models read; everything else is kept as is."""

    model_config = {"extra": "allow"}

    name: str = Field(description="Object name.")
    namespace: str | None = Field(None, description="Namespace (a hub environment).")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
    generation: int | None = Field(None, description="Spec generation.")


def object_meta(body: dict[str, Any]) -> ObjectMeta:
    return ObjectMeta.model_validate(body.get("metadata") or {})
