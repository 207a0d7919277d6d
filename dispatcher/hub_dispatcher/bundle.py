"""A Hub Santé message-model bundle, loaded and compiled once per process.

A bundle is a directory laid out like ``../shared/hubsante-models/<version>/``: ``json-schema/`` (draft-07,
every file carrying the same placeholder ``$id`` and referring to its siblings by relative file name) and
``xsd/``.  Everything is compiled at start-up; a bundle that does not compile raises :class:`BundleError`
then, never as a per-message surprise.

Which use cases a bundle defines, and under which schema file, is read from the bundle itself (the
``EmbeddedJsonContent`` ``oneOf`` of ``EDXL-DE-full.schema.json`` and the ``MessageType`` /
``NoHeaderMessageType`` of ``RC-XML-ContentType.xsd``): model 1.1 names its RPIS schema ``RPIS``, later
ones ``RS-RPIS``, and 1.1's XSD has no XML form for ``createCaseHealthUpdate`` or ``resourcesStatus``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jsonschema_rs
import orjson
from lxml import etree

from hub_dispatcher.xmlcodec import DEFAULT_MAX_DEPTH, MessageModel, XmlCodec, compile_message_model

FULL_SCHEMA: Final = "EDXL-DE-full.schema.json"
ENVELOPE_SCHEMA: Final = "EDXL-DE-envelope-only.schema.json"
HEADER_SCHEMA: Final = "RC-DE.schema.json"
FULL_XSD: Final = "EDXL-DE-full.xsd"
NO_HEADER_XSD: Final = "EDXL-DE-full-no-header.xsd"
ENVELOPE_XSD: Final = "EDXL-DE-envelope-only.xsd"
CONTENT_TYPE_XSD: Final = "RC-XML-ContentType.xsd"

#: Each schema file gets its own base URI under this (never fetched: the retriever refuses everything).
_BASE_URI: Final = "https://models.hub.invalid/json-schema/"
MAX_PROBLEMS: Final = 10
_MAX_QUOTE: Final = 60


class BundleError(Exception):
    """A model bundle that is missing, unreadable or does not compile."""


class XmlVariant(enum.Enum):
    FULL = "full"
    """``EDXL-DE-full.xsd``: the message carries the RC-DE header."""
    NO_HEADER = "no-header"
    """``EDXL-DE-full-no-header.xsd``: error, customContent, technicalNoreq..."""


@dataclass(frozen=True)
class BundleUseCase:
    key: str
    schema_file: str
    has_header: bool
    xml_tag: str | None
    """Clark tag of the use case's XML element; None when the bundle's XSD gives it no XML form."""
    xml_variant: XmlVariant | None


@dataclass(frozen=True)
class XmlValidation:
    valid: bool
    variant: XmlVariant
    problems: tuple[str, ...] = ()


class ModelBundle:
    """Compiled JSON Schemas and XSDs of one model version, plus the XML codec derived from them."""

    def __init__(
        self,
        *,
        directory: Path,
        use_cases: Mapping[str, BundleUseCase],
        header_keys: frozenset[str],
        full_validator: jsonschema_rs.Validator,
        envelope_validator: jsonschema_rs.Validator,
        header_validator: jsonschema_rs.Validator,
        use_case_validators: Mapping[str, jsonschema_rs.Validator],
        xsds: Mapping[XmlVariant | None, etree.XMLSchema],
        codec: XmlCodec,
    ) -> None:
        self.directory = directory
        self.version = directory.name
        self.use_cases = use_cases
        self.header_keys = header_keys
        self.codec = codec
        self._full = full_validator
        self._envelope = envelope_validator
        self._header = header_validator
        self._use_case_validators = use_case_validators
        self._xsds = xsds
        self._use_case_by_tag = {uc.xml_tag: uc for uc in use_cases.values() if uc.xml_tag is not None}

    # ---- loading ------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: Path | str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> ModelBundle:
        root = Path(directory)
        if not root.is_dir():
            raise BundleError(f"model bundle {root} is not a directory")
        schemas = _read_json_schemas(root / "json-schema")
        use_cases_json = dict(_use_cases_from_full_schema(schemas))
        if not use_cases_json:
            raise BundleError(f"{root}: {FULL_SCHEMA} defines no use case")
        registry = _registry(schemas)
        full = _compile(schemas, FULL_SCHEMA, registry)
        envelope = _compile(schemas, ENVELOPE_SCHEMA, registry)
        header = _compile(schemas, HEADER_SCHEMA, registry)
        use_case_validators = {
            key: _compile(schemas, schema_file, registry) for key, (schema_file, _) in use_cases_json.items()
        }
        xsd_dir = root / "xsd"
        xsds = {
            XmlVariant.FULL: _compile_xsd(xsd_dir / FULL_XSD),
            XmlVariant.NO_HEADER: _compile_xsd(xsd_dir / NO_HEADER_XSD),
            None: _compile_xsd(xsd_dir / ENVELOPE_XSD),
        }
        model = _compile_message_model(xsd_dir / CONTENT_TYPE_XSD)
        use_cases = {
            key: _use_case(key, schema_file, has_header, model)
            for key, (schema_file, has_header) in use_cases_json.items()
        }
        header_keys = frozenset(schemas[HEADER_SCHEMA].get("properties", {}))
        return cls(
            directory=root,
            use_cases=use_cases,
            header_keys=header_keys,
            full_validator=full,
            envelope_validator=envelope,
            header_validator=header,
            use_case_validators=use_case_validators,
            xsds=xsds,
            codec=XmlCodec(model, max_depth=max_depth),
        )

    # ---- JSON ---------------------------------------------------------------------------------------------
    def is_valid_json(self, document: Any) -> bool:
        return bool(self._full.is_valid(document))

    def is_valid_json_envelope(self, document: Any) -> bool:
        return bool(self._envelope.is_valid(document))

    def json_problems(self, document: Any, limit: int = MAX_PROBLEMS) -> list[str]:
        """Readable validation problems, each naming the failing field (slow path: invalid messages only)."""
        problems: list[str] = []
        for error in self._full.iter_errors(document):
            if isinstance(error.kind, (jsonschema_rs.ValidationErrorKind.OneOfNotValid,
                                       jsonschema_rs.ValidationErrorKind.OneOfMultipleValid)):
                # The message's oneOf over every use case: its error quotes the whole message and
                # names nothing.  Validate the branch the message claims instead.
                problems.extend(self._message_problems(_at(document, error.instance_path), error.instance_path))
            else:
                problems.append(_describe(error.instance_path, error))
            if len(problems) >= limit:
                break
        return problems[:limit]

    def _message_problems(self, embedded: Any, path: list[Any]) -> list[str]:
        pointer = _pointer([*path, "message"])
        message = embedded.get("message") if isinstance(embedded, dict) else None
        if not isinstance(message, dict):
            return [f"{pointer}: expected an object holding the header and one use case"]
        keys = [key for key in message if key not in self.header_keys]
        known = [key for key in keys if key in self.use_cases]
        if not known:
            return [f"{pointer}: no known use case (found {_names(keys) or 'none'}; "
                    f"model {self.version} defines {_names(sorted(self.use_cases))})"]
        if len(known) > 1:
            return [f"{pointer}: carries several use cases ({_names(known)}), exactly one is expected"]
        key = known[0]
        problems: list[str] = []
        if self.use_cases[key].has_header:
            problems += [_describe([*path, "message", *e.instance_path], e) for e in self._header.iter_errors(message)]
        use_case = message[key]
        problems += [_describe([*path, "message", key, *e.instance_path], e)
                     for e in self._use_case_validators[key].iter_errors(use_case)]
        return problems or [f"{pointer}: does not match the {key} use case of model {self.version}"]

    # ---- XML ----------------------------------------------------------------------------------------------
    def validate_xml(self, root: etree._Element) -> XmlValidation:
        """Validates against EDXL-DE-full.xsd, falling back to the no-header variant."""
        full = self._xsds[XmlVariant.FULL]
        if full.validate(root):
            return XmlValidation(True, XmlVariant.FULL)
        no_header = self._xsds[XmlVariant.NO_HEADER]
        if no_header.validate(root):
            return XmlValidation(True, XmlVariant.NO_HEADER)
        # Report the errors of the variant the message most likely meant.
        variant = XmlVariant.NO_HEADER if self._claims_no_header(root) else XmlVariant.FULL
        return XmlValidation(False, variant, _xsd_problems(self._xsds[variant]))

    def is_valid_xml(self, root: etree._Element, variant: XmlVariant) -> bool:
        return bool(self._xsds[variant].validate(root))

    def xml_problems(self, root: etree._Element, variant: XmlVariant) -> tuple[str, ...]:
        schema = self._xsds[variant]
        return () if schema.validate(root) else _xsd_problems(schema)

    def is_valid_xml_envelope(self, root: etree._Element) -> bool:
        return bool(self._xsds[None].validate(root))

    def use_case_for_tag(self, tag: str) -> BundleUseCase | None:
        return self._use_case_by_tag.get(tag)

    @property
    def message_model(self) -> MessageModel:
        return self.codec.model

    def _claims_no_header(self, root: etree._Element) -> bool:
        for element in root.iter():
            use_case = self._use_case_by_tag.get(element.tag) if isinstance(element.tag, str) else None
            if use_case is not None:
                return use_case.xml_variant is XmlVariant.NO_HEADER
        return False


# -- loading helpers ----------------------------------------------------------------------------------------
def _read_json_schemas(directory: Path) -> dict[str, dict[str, Any]]:
    if not directory.is_dir():
        raise BundleError(f"{directory} is missing")
    schemas: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BundleError(f"{path}: not a readable JSON document: {error}") from None
        if not isinstance(schema, dict):
            raise BundleError(f"{path}: a JSON Schema must be an object")
        # Every file carries the same placeholder $id: give each its own so relative $refs resolve.
        schemas[path.name] = {**schema, "$id": _BASE_URI + path.name}
    for required in (FULL_SCHEMA, ENVELOPE_SCHEMA, HEADER_SCHEMA):
        if required not in schemas:
            raise BundleError(f"{directory / required} is missing")
    return schemas


def _registry(schemas: Mapping[str, dict[str, Any]]) -> jsonschema_rs.Registry:
    def refuse(uri: str) -> Any:
        raise BundleError(f"schema reference {uri} is not a file of the bundle")

    try:
        return jsonschema_rs.Registry([(schema["$id"], schema) for schema in schemas.values()], retriever=refuse)
    except Exception as error:  # jsonschema-rs raises plain ValueError/ReferencingError subclasses
        raise BundleError(f"JSON Schemas do not load: {error}") from None


def _compile(schemas: Mapping[str, dict[str, Any]], name: str, registry: jsonschema_rs.Registry) -> jsonschema_rs.Validator:
    if name not in schemas:
        raise BundleError(f"schema {name} is referenced but missing from json-schema/")
    try:
        validator = jsonschema_rs.Draft7Validator(schemas[name], registry=registry, validate_formats=True)
        # References are resolved lazily by some engines: exercise the validator once.
        validator.is_valid({})
    except Exception as error:
        raise BundleError(f"schema {name} does not compile: {error}") from None
    return validator


def _compile_xsd(path: Path) -> etree.XMLSchema:
    if not path.is_file():
        raise BundleError(f"{path} is missing")
    # Bundle files are trusted configuration: local includes/imports are allowed, the network is not.
    parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=False)
    try:
        return etree.XMLSchema(etree.parse(str(path), parser))
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError, OSError) as error:
        raise BundleError(f"{path} does not compile: {error}") from None


def _compile_message_model(path: Path) -> MessageModel:
    if not path.is_file():
        raise BundleError(f"{path} is missing")
    try:
        return compile_message_model(path)
    except Exception as error:  # xmlschema raises a family of its own errors
        raise BundleError(f"{path} does not compile into a message model: {error}") from None


def _use_cases_from_full_schema(schemas: Mapping[str, dict[str, Any]]) -> Iterator[tuple[str, tuple[str, bool]]]:
    """(key, (schema file, has header)) for every branch of the message's oneOf."""
    full = schemas[FULL_SCHEMA]
    try:
        embedded = full["definitions"]["EmbeddedJsonContent"]
    except (KeyError, TypeError):
        raise BundleError(f"{FULL_SCHEMA} has no definitions.EmbeddedJsonContent") from None
    for branch in embedded.get("oneOf", []):
        yield from _branch_use_cases(branch, has_header=False)


def _branch_use_cases(node: Any, has_header: bool) -> Iterator[tuple[str, tuple[str, bool]]]:
    if not isinstance(node, dict):
        return
    members = node.get("allOf", [])
    header = has_header or any(_refers_to_header(member) for member in members)
    for member in [*members, *node.get("oneOf", [])]:
        yield from _branch_use_cases(member, header)
    message = node.get("properties", {}).get("message")
    if isinstance(message, dict):
        yield from _message_use_cases(message, header)


def _message_use_cases(message: dict[str, Any], has_header: bool) -> Iterator[tuple[str, tuple[str, bool]]]:
    properties = message.get("properties", {})
    for key in message.get("required", []):
        ref = properties.get(key, {}).get("$ref") if isinstance(properties.get(key), dict) else None
        if isinstance(ref, str):
            yield key, (ref.partition("#")[0], has_header)
    for member in [*message.get("oneOf", []), *message.get("allOf", [])]:
        if isinstance(member, dict):
            yield from _message_use_cases(member, has_header)


def _refers_to_header(member: Any) -> bool:
    return isinstance(member, dict) and member.get("properties", {}).get("message", {}).get("$ref") == HEADER_SCHEMA


def _use_case(key: str, schema_file: str, has_header: bool, model: MessageModel) -> BundleUseCase:
    if key in model.with_header:
        return BundleUseCase(key, schema_file, has_header, model.with_header[key].tag, XmlVariant.FULL)
    if key in model.without_header:
        return BundleUseCase(key, schema_file, has_header, model.without_header[key].tag, XmlVariant.NO_HEADER)
    return BundleUseCase(key, schema_file, has_header, None, None)


# -- readable problems ---------------------------------------------------------------------------------------
def _describe(path: list[Any], error: jsonschema_rs.ValidationError) -> str:
    kind = error.kind
    details = kind.as_dict()
    kinds = jsonschema_rs.ValidationErrorKind
    if isinstance(kind, kinds.Required):
        text = f"missing required property {details['property']!r}"
    elif isinstance(kind, kinds.AdditionalProperties):
        text = f"unexpected propert{'y' if len(details['unexpected']) == 1 else 'ies'} {_names(details['unexpected'])}"
    elif isinstance(kind, kinds.Type):
        text = f"expected {_names(_as_list(details.get('types', details.get('type'))))}, got {_json_type(error.instance)}"
    elif isinstance(kind, kinds.Enum):
        text = f"{_quote(error.instance)} is not one of {_names(details['options'])}"
    elif isinstance(kind, (kinds.OneOfNotValid, kinds.AnyOf)):
        text = f"{_json_type(error.instance)} matches none of the allowed forms"
    else:
        text = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    return f"{_pointer(path)}: {text}"


def _pointer(path: list[Any]) -> str:
    return "/" + "/".join(str(part) for part in path)


def _at(document: Any, path: list[Any]) -> Any:
    current = document
    for part in path:
        try:
            current = current[part]
        except (KeyError, IndexError, TypeError):
            return None
    return current


def _names(values: Any) -> str:
    return ", ".join(str(value) for value in values)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _quote(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, (dict, list)) else _json_type(value)
    return text if len(text) <= _MAX_QUOTE else text[: _MAX_QUOTE - 3] + "..."


def _xsd_problems(schema: etree.XMLSchema, limit: int = MAX_PROBLEMS) -> tuple[str, ...]:
    return tuple(f"line {entry.line}: {entry.message}" for entry in list(schema.error_log)[:limit])
