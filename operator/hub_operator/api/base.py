"""Building blocks shared by the three kinds: the model base class and the schema metadata it carries.

The pydantic models are the single source of truth: their JSON schema becomes the CRD's OpenAPI v3
schema, so everything only the API server enforces (CEL rules, list semantics) travels as schema
metadata attached to the models here, and ``crdgen`` turns it into the ``x-kubernetes-*`` extensions.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

GROUP = "hubsante.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "hubsante"


class ApiModel(BaseModel):
    """Base of every CR model: camelCase on the wire, snake_case in Python, unknown fields refused.

    The API server prunes unknown fields before storing an object, so refusing them here costs the
    operator nothing and catches typos in examples and tests.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server would store it (camelCase, enums as strings, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class CelReason(str, enum.Enum):
    """The ``reason`` a CEL rule reports; it decides the error type shown (Invalid, Forbidden...).

    ``FieldValueDuplicate`` is left out on purpose: the API server then prints only "Duplicate value"
    and drops the rule's message.
    """

    INVALID = "FieldValueInvalid"
    FORBIDDEN = "FieldValueForbidden"
    REQUIRED = "FieldValueRequired"


@dataclass(frozen=True)
class CelRule:
    """One ``x-kubernetes-validations`` entry.

    ``field_path`` (relative to where the rule sits, e.g. ``.issuerRef``) makes the API server name the
    offending field instead of the object holding the rule; ``message`` must say what is expected.
    """

    rule: str
    message: str | None = None
    message_expression: str | None = None
    field_path: str | None = None
    reason: CelReason | None = None

    def __post_init__(self) -> None:
        if (self.message is None) == (self.message_expression is None):
            raise ValueError(f"CEL rule {self.rule!r} needs exactly one of message / message_expression")

    def to_schema(self) -> dict[str, str]:
        entry = {"rule": self.rule}
        if self.message is not None:
            entry["message"] = self.message
        if self.message_expression is not None:
            entry["messageExpression"] = self.message_expression
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        if self.reason is not None:
            entry["reason"] = self.reason.value
        return entry


VALIDATIONS_KEY = "x-kubernetes-validations"


def cel(*rules: CelRule, **extensions: Any) -> dict[str, Any]:
    """``json_schema_extra`` for a field or model: its CEL rules plus any other schema keywords."""
    extra: dict[str, Any] = dict(extensions)
    if rules:
        extra[VALIDATIONS_KEY] = [rule.to_schema() for rule in rules]
    return extra


def list_set() -> dict[str, str]:
    """A list whose items are unique scalars (the API server then refuses duplicates)."""
    return {"x-kubernetes-list-type": "set"}


def list_map(*keys: str) -> dict[str, Any]:
    """A list of objects identified by ``keys`` (server-side apply merges entries by key)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


def immutable(field: str, why: str) -> CelRule:
    """A transition rule freezing the field it is attached to once the object exists."""
    return CelRule(rule="self == oldSelf", message=f"{field} is immutable: {why}")


@dataclass(frozen=True)
class PrinterColumn:
    """A ``kubectl get`` column (``additionalPrinterColumns``)."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0

    def to_schema(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


READY_COLUMN = PrinterColumn(
    "Ready", '.status.conditions[?(@.type=="Ready")].status', description="Summary Ready condition"
)
AGE_COLUMN = PrinterColumn("Age", ".metadata.creationTimestamp", type="date", description="Time since creation")


@dataclass(frozen=True, eq=False)
class KindInfo:
    """Everything about a kind that is not its spec/status schema: names, columns, root-level rules.

    ``metadata_name`` constrains ``metadata.name`` in the schema (only ``type``/``maxLength``/``pattern``
    are meaningful there); root ``rules`` may read ``self.metadata.name`` and ``self.spec``.
    """

    kind: str
    plural: str
    short_names: Sequence[str]
    description: str
    spec_model: type[ApiModel]
    status_model: type[ApiModel]
    printer_columns: Sequence[PrinterColumn]
    rules: Sequence[CelRule] = ()
    metadata_name: dict[str, Any] | None = None

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"
