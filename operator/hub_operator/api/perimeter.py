"""Perimeter: a family of vhosts (``15-15``, ``15-nexsis``...) sharing an allow-list, a TTL and dispatcher defaults."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator

from hub_dispatcher import protocol, usecases

from .base import AGE_COLUMN, READY_COLUMN, ApiModel, CelRule, KindInfo, PrinterColumn, list_set
from .common import StatusBase
from .dispatching import DispatcherSettings
from .fieldtypes import PERIMETER_NAME_MAX, MessageTTL, parse_duration

DEFAULT_MESSAGE_TTL = "24h"

UseCaseKey = Literal[usecases.KEYS]  # type: ignore[valid-type]


class PerimeterSpec(ApiModel):
    """Desired state of a Perimeter. Its metadata.name is the perimeter name used in vhost names (15-15)."""

    description: str = Field(
        min_length=1,
        max_length=1024,
        description="What the perimeter connects, for the people reading the YAML (e.g. SAMU to SAMU).",
    )
    allowed_use_cases: list[UseCaseKey] = Field(
        default_factory=list,
        max_length=len(usecases.KEYS),
        description=(
            "Use-case keys (message types, e.g. createCase, reference) the perimeter's vhosts accept; "
            "the dispatcher rejects any other with an error report. Empty means every use case."
        ),
        json_schema_extra=list_set(),
    )
    message_ttl: MessageTTL = Field(
        DEFAULT_MESSAGE_TTL,
        alias="messageTTL",
        description=(
            "How long a message may wait in a client queue before it is dead-lettered and reported to its "
            "sender: a duration between 1s and 720h such as 24h or 90m."
        ),
    )
    dispatcher: DispatcherSettings = Field(
        default_factory=DispatcherSettings,
        description="Default dispatcher settings of the perimeter's vhosts (each VHostVersion may override them).",
    )

    @field_validator("allowed_use_cases")
    @classmethod
    def _unique_use_cases(cls, keys: list[str]) -> list[str]:
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ValueError(f"use cases listed more than once: {', '.join(duplicates)}")
        return keys

    @property
    def message_ttl_delta(self) -> dt.timedelta:
        return parse_duration(self.message_ttl)

    @property
    def use_case_summary(self) -> str:
        """What ``status.useCases`` shows: ``all`` or the number of allowed use cases."""
        count = len(self.allowed_use_cases)
        return "all" if count == 0 else f"{count} allowed"

    def allows(self, use_case_key: str) -> bool:
        """Whether the perimeter's vhosts accept messages of this use case."""
        return not self.allowed_use_cases or use_case_key in self.allowed_use_cases


class PerimeterCondition:
    """Condition types of a Perimeter."""

    READY = "Ready"
    """The spec is valid and every VHostVersion of the perimeter is Ready."""


class PerimeterStatus(StatusBase):
    """Observed state of a Perimeter."""

    use_cases: str | None = Field(
        None,
        max_length=32,
        description="Summary of spec.allowedUseCases for kubectl get: all, or the number allowed (e.g. 9 allowed).",
    )
    vhosts: list[str] = Field(
        default_factory=list,
        max_length=256,
        description="Vhost names (e.g. 15-15_v1.5) of the VHostVersions of this perimeter in the namespace.",
        json_schema_extra=list_set(),
    )


PERIMETER = KindInfo(
    kind="Perimeter",
    plural="perimeters",
    short_names=("perim",),
    description=(
        "A Hub Santé perimeter (15-15, 15-nexsis, 15-smur, 15-gps...): the use cases its vhosts accept, "
        "the message TTL and the default dispatcher settings. The object name is the perimeter name."
    ),
    spec_model=PerimeterSpec,
    status_model=PerimeterStatus,
    printer_columns=(
        PrinterColumn("Use-Cases", ".status.useCases", description="Accepted use cases: all, or how many"),
        PrinterColumn("TTL", ".spec.messageTTL", description="Message TTL in client queues"),
        PrinterColumn("Replicas", ".spec.dispatcher.replicas", type="integer",
                      description="Fixed dispatcher count per vhost (empty: default 1 or autoscaling)"),
        PrinterColumn("Max-Replicas", ".spec.dispatcher.autoscaling.maxReplicas", type="integer",
                      description="Autoscaling upper bound", priority=1),
        READY_COLUMN,
        PrinterColumn("Allowed", ".spec.allowedUseCases", description="Accepted use-case keys (empty = all)",
                      priority=1),
        AGE_COLUMN,
    ),
    rules=(
        CelRule(
            rule=f"self.metadata.name.matches('{protocol.PERIMETER_NAME_PATTERN}')",
            message=(
                f"metadata.name is the perimeter name used in vhost names: lower-case letters, digits and '-', "
                f"at most {PERIMETER_NAME_MAX} characters, no dots (e.g. 15-15, 15-nexsis)"
            ),
            field_path=".metadata.name",
        ),
    ),
    metadata_name={"type": "string", "maxLength": PERIMETER_NAME_MAX},
)
