"""Turn pydantic's JSON schema into a Kubernetes *structural* OpenAPI v3 schema.

Structural means: every node has a type (or is int-or-string), no ``$ref``, no ``anyOf``/``oneOf`` beyond
the int-or-string idiom, no ``additionalProperties`` beside ``properties``.  Optional fields are simply
absent from ``required``; pydantic's ``anyOf [X, null]`` therefore collapses to ``X``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

Schema = dict[str, Any]

#: Keys pydantic emits that mean nothing to the API server (or are not allowed in a structural schema).
_DROPPED_KEYS = {"title", "additionalProperties", "$defs"}

#: Readable key order in the generated YAML.
_KEY_ORDER = (
    "description", "type", "format", "enum", "default", "nullable",
    "pattern", "minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems",
    "x-kubernetes-int-or-string", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-validations", "required", "properties", "items",
)


class SchemaError(ValueError):
    """The models produced a schema the API server would refuse, or one without documentation."""


class _CrdJsonSchema(GenerateJsonSchema):
    """pydantic's generator, also emitting the defaults of fields built by a ``default_factory``.

    A model default is written out in full (its own defaults included) rather than as ``{}``: the API
    server evaluates the CEL rules of the object against the default itself, before nested defaulting.
    An empty-list default becomes ``[]``.
    """

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        factory = schema.get("default_factory")
        if factory is not None and "default" not in json_schema:
            value = factory()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                json_schema["default"] = value.model_dump(mode="json", by_alias=True, exclude_none=True)
            elif value == []:
                json_schema["default"] = []
        return json_schema


def model_schema(model: type[BaseModel]) -> Schema:
    """The structural schema of ``model`` (validation mode: what users may write)."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_CrdJsonSchema)
    return _convert(raw, raw.get("$defs", {}))


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Inline ``$ref`` and collapse ``anyOf [X, null]``; the node's own keywords win over the target's."""
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        return _resolve({**target, **siblings}, defs)
    if "anyOf" in node:
        branches = [branch for branch in node["anyOf"] if branch != {"type": "null"}]
        if len(branches) != 1:
            raise SchemaError(f"only 'X | None' unions are supported, got {node['anyOf']}")
        siblings = {key: value for key, value in node.items() if key != "anyOf"}
        if siblings.get("default", ...) is None:
            del siblings["default"]
        return _resolve({**branches[0], **siblings}, defs)
    return node


def _convert(node: Schema, defs: dict[str, Schema]) -> Schema:
    node = _resolve(node, defs)
    converted: Schema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            converted[key] = {name: _convert(child, defs) for name, child in value.items()}
        elif key == "items":
            converted[key] = _convert(value, defs)
        else:
            converted[key] = value
    if node.get("additionalProperties") not in (None, False):
        raise SchemaError("free-form maps are not used by the hub CRDs; model the keys explicitly")
    return _ordered(converted)


_RULE_KEY_ORDER = ("rule", "message", "messageExpression", "fieldPath", "reason")


def _ordered(node: Schema, order: tuple[str, ...] = _KEY_ORDER) -> Schema:
    rank = {key: index for index, key in enumerate(order)}
    result = dict(sorted(node.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))
    if "x-kubernetes-validations" in result:
        result["x-kubernetes-validations"] = [_ordered(rule, _RULE_KEY_ORDER) for rule in result["x-kubernetes-validations"]]
    return result


def undocumented_properties(schema: Schema, path: str = "") -> list[str]:
    """Paths of properties (and the root) lacking a description."""
    missing = [] if schema.get("description") else [path or "<root>"]
    for name, child in schema.get("properties", {}).items():
        missing += undocumented_properties(child, f"{path}.{name}" if path else name)
    if "items" in schema and schema["items"].get("type") == "object":
        missing += [m for m in undocumented_properties(schema["items"], f"{path}[]") if m != f"{path}[]"]
    return missing


def structural_violations(schema: Schema, path: str = "<root>") -> list[str]:
    """What would make the API server reject the schema as non-structural."""
    problems = []
    for key in ("$ref", "anyOf", "oneOf", "allOf", "not", "$defs", "const"):
        if key in schema:
            problems.append(f"{path}: {key} is not allowed")
    if "type" not in schema and not schema.get("x-kubernetes-int-or-string"):
        problems.append(f"{path}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: properties and additionalProperties together")
    if schema.get("type") == "array" and "items" not in schema:
        problems.append(f"{path}: array without items")
    for name, child in schema.get("properties", {}).items():
        problems += structural_violations(child, f"{path}.{name}")
    if "items" in schema:
        problems += structural_violations(schema["items"], f"{path}[]")
    return problems


def apply_defaults(schema: Schema, value: Any) -> Any:
    """``value`` with the schema's defaults filled in, as the API server stores it.

    Mirrors apiextensions defaulting: a missing property with a ``default`` gets it (and the default is
    itself defaulted, so ``default: {}`` expands to the nested defaults); lists default item by item.
    """
    if isinstance(value, dict) and "properties" in schema:
        result = dict(value)
        for name, child in schema["properties"].items():
            if name not in result and "default" in child:
                result[name] = child["default"]
            if name in result:
                result[name] = apply_defaults(child, result[name])
        return result
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], item) for item in value]
    return value
