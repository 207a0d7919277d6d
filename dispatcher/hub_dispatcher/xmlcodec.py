"""JSON <-> XML conversion of Hub Santé EDXL-DE messages, and safe XML parsing.

XSD ``sequence``s fix element order and types, JSON objects do not, so a naive dict -> XML gives invalid
XML.  The order and the scalar type of every element are derived ONCE, at bundle load, from the bundle's
``RC-XML-ContentType.xsd`` with ``xmlschema`` (pure Python, slow, start-up only) into a small tree of
:class:`ElementSpec`; per-message work is a walk of that tree with lxml (C).

The EDXL-DE envelope is the OASIS standard, identical in every bundle, and its JSON form renames the
content path (``content[].jsonContent.embeddedJsonContent.message`` vs
``content/contentObject/contentXML/embeddedXMLContent/message``): it is mapped explicitly below.

Free content (``customContent``, the ``sourceMessage`` of an error report) is declared with ``xs:any``:
it is converted generically (one element per JSON property, repeated for arrays); scalars come back
from XML as strings, since XML carries no type for them.
"""

from __future__ import annotations

import copy
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from lxml import etree

EDXL_NS: Final = "urn:oasis:names:tc:emergency:EDXL:DE:2.0"
XLINK_NS: Final = "http://www.w3.org/1999/xlink"
_XLINK_TYPE: Final = f"{{{XLINK_NS}}}type"


def edxl(local_name: str) -> str:
    """Clark-notation tag of an EDXL-DE envelope element."""
    return f"{{{EDXL_NS}}}{local_name}"


ROOT_TAG: Final = edxl("edxlDistribution")
#: Envelope scalars, in XSD order; their JSON property has the same name.
ENVELOPE_SCALARS: Final = (
    "distributionID",
    "senderID",
    "dateTimeSent",
    "dateTimeExpires",
    "distributionStatus",
    "distributionKind",
)
_ENVELOPE_SCALAR_TAGS: Final = {edxl(name): name for name in ENVELOPE_SCALARS}

DEFAULT_MAX_XML_BYTES: Final = 1024 * 1024
DEFAULT_MAX_DEPTH: Final = 64

#: Characters XML 1.0 cannot carry at all (lxml refuses them).
_XML_INVALID_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")
#: Generic (wildcard) content uses these for JSON property names that are not XML names.
_GENERIC_ENTRY = "entry"
_GENERIC_ENTRY_KEY = "key"
_GENERIC_ITEM = "item"


# -- errors -----------------------------------------------------------------------------------------------
class XmlInputError(ValueError):
    """An inbound XML body that is refused before validation: not well-formed, hostile or too big."""


class ConversionError(ValueError):
    """A message that cannot be represented in the other format without losing content."""


# -- safe parsing -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class XmlLimits:
    max_bytes: int = DEFAULT_MAX_XML_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_depth < 2:
            raise ValueError(f"XML limits must be positive, got {self}")


class SafeXmlParser:
    """Parses untrusted XML: no DTD at all (so no external entity and no entity-expansion bomb), no
    network, no huge-tree mode, a byte limit checked before parsing and an element-depth limit."""

    def __init__(self, limits: XmlLimits = XmlLimits()) -> None:
        self.limits = limits
        # One parser per instance: lxml parsers are not thread-safe, the dispatcher is single-threaded.
        self._parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        # An element exists at depth max_depth + 1 iff this path matches: evaluated in C, O(elements).
        self._too_deep = etree.XPath("boolean(" + "/*" * (limits.max_depth + 1) + ")")

    def parse(self, body: bytes) -> etree._Element:
        if len(body) > self.limits.max_bytes:
            raise XmlInputError(f"XML body is {len(body)} bytes, the limit is {self.limits.max_bytes}")
        if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
            # Refused before libxml2 sees it: a DTD is the vehicle of XXE and billion-laughs attacks,
            # and no Hub Santé message has one.
            raise XmlInputError("XML body declares a DTD or entities, which are not allowed")
        try:
            root = etree.fromstring(body, self._parser)
        except etree.XMLSyntaxError as error:
            raise XmlInputError(f"XML body is not well-formed: {error}") from None
        if root is None:
            raise XmlInputError("XML body is empty")
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None:
            raise XmlInputError("XML body declares a DTD, which is not allowed")
        if self._too_deep(root):
            raise XmlInputError(f"XML body is nested deeper than {self.limits.max_depth} elements")
        return root


# -- the compiled element specification ------------------------------------------------------------------
class ValueKind(enum.Enum):
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    DOUBLE = "double"
    BOOLEAN = "boolean"
    COMPLEX = "complex"
    WILDCARD = "wildcard"
    """Free content (``xs:any``): converted generically."""


@dataclass(eq=False, slots=True)
class ContentSpec:
    """The children of a complex type, in XSD order."""

    children: list[ElementSpec] = field(default_factory=list)
    by_key: dict[str, ElementSpec] = field(default_factory=dict)
    by_tag: dict[str, ElementSpec] = field(default_factory=dict)

    def add(self, child: ElementSpec) -> None:
        if child.key in self.by_key:
            # The same name twice in one sequence (e.g. OASIS contentData): order is ambiguous, the
            # first declaration wins, which is the JSON-derived models' only case.
            return
        self.children.append(child)
        self.by_key[child.key] = child
        self.by_tag[child.tag] = child


@dataclass(eq=False, slots=True)
class ElementSpec:
    key: str
    """JSON property name == XML local name."""
    tag: str
    """Clark notation ``{namespace}local``."""
    namespace: str
    repeated: bool
    kind: ValueKind
    content: ContentSpec | None = None


_INTEGER_TYPES = frozenset(
    {"integer", "int", "long", "short", "byte", "nonNegativeInteger", "positiveInteger",
     "nonPositiveInteger", "negativeInteger", "unsignedLong", "unsignedInt", "unsignedShort",
     "unsignedByte"}
)


def _scalar_kind(xsd_type: Any) -> ValueKind:
    current = xsd_type
    while current is not None:
        name = getattr(current, "local_name", None)
        if name in _INTEGER_TYPES:
            return ValueKind.INTEGER
        if name == "decimal":
            return ValueKind.DECIMAL
        if name in ("double", "float"):
            return ValueKind.DOUBLE
        if name == "boolean":
            return ValueKind.BOOLEAN
        current = getattr(current, "base_type", None)
    return ValueKind.STRING


class _SpecCompiler:
    """Turns xmlschema's model into ElementSpec trees; one ContentSpec per XSD type (recursion-safe)."""

    def __init__(self) -> None:
        self._content_by_type: dict[int, ContentSpec] = {}

    def content_of(self, xsd_type: Any) -> ContentSpec:
        cached = self._content_by_type.get(id(xsd_type))
        if cached is not None:
            return cached
        content = ContentSpec()
        self._content_by_type[id(xsd_type)] = content
        if xsd_type.content is not None:
            self._add_group(content, xsd_type.content, repeated=False)
        return content

    def _add_group(self, content: ContentSpec, group: Any, repeated: bool) -> None:
        from xmlschema.validators import XsdAnyElement, XsdGroup

        group_repeats = repeated or group.max_occurs != 1
        for item in group:
            if isinstance(item, XsdGroup):
                self._add_group(content, item, group_repeats)
            elif isinstance(item, XsdAnyElement):
                continue  # wildcards are handled at the element level (ValueKind.WILDCARD)
            else:
                content.add(self.element(item, group_repeats))

    def element(self, xsd_element: Any, repeated: bool = False) -> ElementSpec:
        tag: str = xsd_element.name
        namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
        xsd_type = xsd_element.type
        is_repeated = repeated or xsd_element.max_occurs != 1
        if xsd_type.is_simple():
            return ElementSpec(local, tag, namespace, is_repeated, _scalar_kind(xsd_type))
        if xsd_type.has_simple_content():
            return ElementSpec(local, tag, namespace, is_repeated, _scalar_kind(xsd_type.content))
        declares_children = xsd_type.content is not None and any(
            _is_declared_element(item) for item in xsd_type.content.iter_elements())
        if not declares_children:
            return ElementSpec(local, tag, namespace, is_repeated, ValueKind.WILDCARD)
        return ElementSpec(local, tag, namespace, is_repeated, ValueKind.COMPLEX, self.content_of(xsd_type))


def _is_declared_element(item: Any) -> bool:
    from xmlschema.validators import XsdAnyElement

    return not isinstance(item, XsdAnyElement)


@dataclass(frozen=True)
class MessageModel:
    """What the codec knows of a bundle's ``message`` element, derived from its XSDs."""

    namespace: str
    """Namespace of ``message`` and of the RC-DE header (``urn:emergency:cisu:2.0``, ``urn:emergency:eda:1.9``)."""
    content: ContentSpec
    """Header fields first, then every use-case element (both header and no-header variants)."""
    header_tags: frozenset[str]
    with_header: Mapping[str, ElementSpec]
    """Use-case key -> element, for use cases that travel with the RC-DE header (EDXL-DE-full.xsd)."""
    without_header: Mapping[str, ElementSpec]
    """Use-case key -> element, for no-header use cases (EDXL-DE-full-no-header.xsd)."""


def compile_message_model(content_type_xsd: Path) -> MessageModel:
    """Reads ``RC-XML-ContentType.xsd`` (which includes RC-DE and imports every use case) once."""
    import xmlschema

    schema = xmlschema.XMLSchema(str(content_type_xsd))
    compiler = _SpecCompiler()
    namespace = schema.target_namespace
    message_type = schema.types["MessageType"]
    no_header_type = schema.types["NoHeaderMessageType"]
    header_type = message_type.base_type
    header = compiler.content_of(header_type)
    with_header = _use_case_elements(compiler, message_type, exclude=header)
    without_header = _use_case_elements(compiler, no_header_type, exclude=header)
    content = ContentSpec()
    for element in [*header.children, *with_header.values(), *without_header.values()]:
        content.add(element)
    return MessageModel(
        namespace=namespace,
        content=content,
        header_tags=frozenset(element.tag for element in header.children),
        with_header=with_header,
        without_header=without_header,
    )


def _use_case_elements(compiler: _SpecCompiler, message_type: Any, exclude: ContentSpec) -> dict[str, ElementSpec]:
    found = compiler.content_of(message_type)
    return {element.key: element for element in found.children if element.tag not in exclude.by_tag}


# -- scalar formatting ------------------------------------------------------------------------------------
def _scalar_to_text(value: Any, kind: ValueKind, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if kind is ValueKind.INTEGER and value.is_integer():
            return str(int(value))
        if kind is ValueKind.DOUBLE:
            return repr(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConversionError(f"{where}: {value} has no XML decimal form")
        # xs:decimal has no exponent: 1e-05 must become 0.00001
        return format(Decimal(repr(value)), "f")
    if isinstance(value, str):
        return value
    raise ConversionError(f"{where}: expected a scalar, got {type(value).__name__}")


def _text_to_scalar(text: str | None, kind: ValueKind, where: str) -> Any:
    raw = text or ""
    try:
        if kind is ValueKind.STRING:
            return raw
        stripped = raw.strip()
        if kind is ValueKind.BOOLEAN:
            if stripped in ("true", "1"):
                return True
            if stripped in ("false", "0"):
                return False
            raise ConversionError(f"{where}: {stripped!r} is not a boolean")
        if kind is ValueKind.INTEGER:
            return int(stripped)
        # decimal / double: keep integers integral so JSON numbers survive a round trip
        if stripped.lstrip("+-").isdigit():
            return int(stripped)
        number = float(Decimal(stripped)) if kind is ValueKind.DECIMAL else float(stripped)
        return number
    except (ValueError, InvalidOperation):
        raise ConversionError(f"{where}: {raw[:40]!r} is not a {kind.value}") from None


# -- the codec ----------------------------------------------------------------------------------------------
class XmlCodec:
    """Converts whole EDXL-DE messages between their JSON (dict) and XML (lxml element) forms."""

    def __init__(self, model: MessageModel, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.model = model
        self.max_depth = max_depth
        self._message_tag = f"{{{model.namespace}}}message"

    # ---- JSON -> XML -------------------------------------------------------------------------------------
    def json_to_xml(self, document: Mapping[str, Any]) -> etree._Element:
        """The XML form of a (validated) JSON EDXL-DE message; ConversionError if content would be lost."""
        _require_only(document, {*ENVELOPE_SCALARS, "descriptor", "content"}, "envelope")
        root = etree.Element(ROOT_TAG, {_XLINK_TYPE: "extended"}, nsmap={None: EDXL_NS, "xlink": XLINK_NS})
        for name in ENVELOPE_SCALARS:
            if name in document:
                etree.SubElement(root, edxl(name)).text = self._text(document[name], ValueKind.STRING, name)
        descriptor = _mapping(document.get("descriptor"), "descriptor")
        _require_only(descriptor, {"language", "explicitAddress"}, "descriptor")
        descriptor_element = etree.SubElement(root, edxl("descriptor"), {_XLINK_TYPE: "resource"})
        if "language" in descriptor:
            etree.SubElement(descriptor_element, edxl("language")).text = self._text(
                descriptor["language"], ValueKind.STRING, "descriptor.language")
        address = _mapping(descriptor.get("explicitAddress"), "descriptor.explicitAddress")
        _require_only(address, {"explicitAddressScheme", "explicitAddressValue"}, "explicitAddress")
        address_element = etree.SubElement(descriptor_element, edxl("explicitAddress"))
        for name in ("explicitAddressScheme", "explicitAddressValue"):
            if name in address:
                etree.SubElement(address_element, edxl(name)).text = self._text(address[name], ValueKind.STRING, name)
        content = document.get("content")
        if not isinstance(content, list) or not content:
            raise ConversionError("content: expected a non-empty array")
        content_element = etree.SubElement(root, edxl("content"), {_XLINK_TYPE: "resource"})
        for index, item in enumerate(content):
            where = f"content[{index}]"
            item = _mapping(item, where)
            _require_only(item, {"jsonContent"}, where)
            json_content = _mapping(item.get("jsonContent"), where + ".jsonContent")
            _require_only(json_content, {"embeddedJsonContent"}, where + ".jsonContent")
            embedded = _mapping(json_content.get("embeddedJsonContent"), where + ".embeddedJsonContent")
            _require_only(embedded, {"message"}, where + ".embeddedJsonContent")
            content_object = etree.SubElement(content_element, edxl("contentObject"), {_XLINK_TYPE: "resource"})
            embedded_element = etree.SubElement(
                etree.SubElement(content_object, edxl("contentXML")), edxl("embeddedXMLContent"))
            self.message_to_xml(_mapping(embedded.get("message"), where + ".message"), embedded_element)
        return root

    def message_to_xml(self, message: Mapping[str, Any], parent: etree._Element) -> etree._Element:
        element = etree.SubElement(parent, self._message_tag, nsmap={None: self.model.namespace})
        self._fill(element, message, self.model.content, self.model.namespace, "message", 3)
        return element

    def _fill(self, element: etree._Element, value: Mapping[str, Any], content: ContentSpec,
              namespace: str, where: str, depth: int) -> None:
        if depth > self.max_depth:
            raise ConversionError(f"{where}: nested deeper than {self.max_depth} levels")
        matched = 0
        for child in content.children:
            child_value = value.get(child.key, _MISSING)
            if child_value is _MISSING:
                continue
            matched += 1
            child_where = f"{where}.{child.key}"
            if child.repeated:
                if not isinstance(child_value, list):
                    raise ConversionError(f"{child_where}: expected an array")
                for index, item in enumerate(child_value):
                    self._emit(element, child, item, namespace, f"{child_where}[{index}]", depth)
            else:
                self._emit(element, child, child_value, namespace, child_where, depth)
        if matched != len(value):
            unknown = sorted(key for key in value if key not in content.by_key)
            raise ConversionError(f"{where}: {', '.join(unknown)} not defined by the XML schema")

    def _emit(self, parent: etree._Element, spec: ElementSpec, value: Any, namespace: str,
              where: str, depth: int) -> None:
        nsmap = None if spec.namespace == namespace else {None: spec.namespace}
        element = etree.SubElement(parent, spec.tag, nsmap=nsmap)
        if spec.kind is ValueKind.COMPLEX:
            assert spec.content is not None
            self._fill(element, _mapping(value, where), spec.content, spec.namespace, where, depth + 1)
        elif spec.kind is ValueKind.WILDCARD:
            # An lxml element passes through as is (an XML source message quoted in an XML report).
            free = value if isinstance(value, etree._Element) else _mapping(value, where)
            generic_to_xml(free, element, spec.namespace, self.max_depth - depth, sanitize=False)
        else:
            element.text = self._text(value, spec.kind, where)

    @staticmethod
    def _text(value: Any, kind: ValueKind, where: str) -> str:
        text = _scalar_to_text(value, kind, where)
        if _XML_INVALID_CHARS.search(text):
            raise ConversionError(f"{where}: contains characters XML cannot carry")
        return text

    # ---- XML -> JSON -------------------------------------------------------------------------------------
    def xml_to_json(self, root: etree._Element) -> dict[str, Any]:
        """The JSON form of a (validated) XML EDXL-DE message; ConversionError if content would be lost."""
        if root.tag != ROOT_TAG:
            raise ConversionError(f"root element is {root.tag}, expected {ROOT_TAG}")
        document: dict[str, Any] = {}
        descriptor: dict[str, Any] | None = None
        content: list[dict[str, Any]] | None = None
        for child in root:
            name = _ENVELOPE_SCALAR_TAGS.get(child.tag)
            if name is not None:
                document[name] = child.text or ""
            elif child.tag == edxl("descriptor"):
                descriptor = self._descriptor_to_json(child)
            elif child.tag == edxl("content"):
                content = [self._content_object_to_json(item) for item in child]
            else:
                raise ConversionError(f"envelope element {_local(child.tag)} has no JSON equivalent")
        if descriptor is not None:
            document["descriptor"] = descriptor
        if content is not None:
            document["content"] = content
        return document

    def _descriptor_to_json(self, element: etree._Element) -> dict[str, Any]:
        descriptor: dict[str, Any] = {}
        for child in element:
            if child.tag == edxl("language"):
                descriptor["language"] = child.text or ""
            elif child.tag == edxl("explicitAddress") and "explicitAddress" not in descriptor:
                address: dict[str, str] = {}
                for part in child:
                    key = _local(part.tag)
                    if key in address or key not in ("explicitAddressScheme", "explicitAddressValue"):
                        raise ConversionError(f"explicitAddress.{key} has no JSON equivalent (one value only)")
                    address[key] = part.text or ""
                descriptor["explicitAddress"] = address
            else:
                raise ConversionError(f"descriptor element {_local(child.tag)} has no JSON equivalent")
        return descriptor

    def _content_object_to_json(self, element: etree._Element) -> dict[str, Any]:
        if element.tag != edxl("contentObject"):
            raise ConversionError(f"content element {_local(element.tag)} has no JSON equivalent")
        xml_content = _only_child(element, edxl("contentXML"))
        embedded = _only_child(xml_content, edxl("embeddedXMLContent"))
        message = _only_child(embedded, self._message_tag)
        return {"jsonContent": {"embeddedJsonContent": {"message": self.message_to_json(message)}}}

    def message_to_json(self, element: etree._Element) -> dict[str, Any]:
        return self._collect(element, self.model.content, "message", 3)

    def _collect(self, element: etree._Element, content: ContentSpec, where: str, depth: int) -> dict[str, Any]:
        if depth > self.max_depth:
            raise ConversionError(f"{where}: nested deeper than {self.max_depth} levels")
        result: dict[str, Any] = {}
        for child in element:
            spec = content.by_tag.get(child.tag)
            if spec is None:
                raise ConversionError(f"{where}: element {child.tag} is not defined by the XML schema")
            child_where = f"{where}.{spec.key}"
            if spec.kind is ValueKind.COMPLEX:
                assert spec.content is not None
                value: Any = self._collect(child, spec.content, child_where, depth + 1)
            elif spec.kind is ValueKind.WILDCARD:
                value = generic_from_xml(child, self.max_depth - depth)
                if not isinstance(value, dict):
                    value = {}
            else:
                value = _text_to_scalar(child.text, spec.kind, child_where)
            if spec.repeated:
                result.setdefault(spec.key, []).append(value)
            elif spec.key in result:
                raise ConversionError(f"{child_where}: appears more than once")
            else:
                result[spec.key] = value
        return result


_MISSING: Final = object()


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConversionError(f"{where}: expected an object")
    return value


def _require_only(value: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = [key for key in value if key not in allowed]
    if unknown:
        raise ConversionError(f"{where}: {', '.join(sorted(unknown))} has no XML equivalent")


def _only_child(element: etree._Element, tag: str) -> etree._Element:
    children = list(element)
    if len(children) != 1 or children[0].tag != tag:
        found = ", ".join(_local(child.tag) for child in children) or "nothing"
        raise ConversionError(f"{_local(element.tag)} must hold exactly one {_local(tag)}, found {found}")
    return children[0]


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else str(tag)


# -- generic (wildcard) content ------------------------------------------------------------------------------
# Free content has no schema to say what is an array or a number, so the JSON type is written down where
# the element alone would be ambiguous, in attributes of our own namespace (allowed: the wildcards are
# ``processContents="skip"``/``"lax"``).  Content without those attributes (written by a client) reads as
# objects and strings, repeated names as arrays.
JSON_TYPES_NS: Final = "urn:hub-operator:json-types"
_TYPE_ATTRIBUTE: Final = f"{{{JSON_TYPES_NS}}}type"
"""``number``, ``boolean``, ``null``, ``object`` (empty) or ``list`` (an array inside an array)."""
_ARRAY_ATTRIBUTE: Final = f"{{{JSON_TYPES_NS}}}array"
"""``single``: the only item of a one-item array; ``empty``: an empty array."""


def sanitize_text(text: str) -> str:
    """Replaces the characters XML cannot carry, for text that must be reported, not preserved."""
    return _XML_INVALID_CHARS.sub("\ufffd", text)


def generic_to_xml(value: Mapping[str, Any] | etree._Element, parent: etree._Element, namespace: str,
                   depth_budget: int, *, sanitize: bool) -> None:
    """Free JSON content as child elements of ``parent`` (one per property, repeated for arrays).

    An lxml element is copied as is: an XML source message embedded in an XML error report."""
    if isinstance(value, etree._Element):
        parent.append(copy.deepcopy(value))
        return
    _generic_members(value.items(), parent, namespace, depth_budget, sanitize)


def _generic_members(items: Iterable[tuple[str, Any]], parent: etree._Element, namespace: str,
                     depth_budget: int, sanitize: bool) -> None:
    if depth_budget <= 0:
        raise ConversionError("free content is nested too deeply")
    for key, item in items:
        if isinstance(item, list):
            if not item:
                _generic_element(parent, key, namespace, sanitize).set(_ARRAY_ATTRIBUTE, "empty")
                continue
            for entry in item:
                element = _generic_element(parent, key, namespace, sanitize)
                if len(item) == 1:
                    element.set(_ARRAY_ATTRIBUTE, "single")
                _generic_value(entry, element, namespace, depth_budget - 1, sanitize)
        else:
            _generic_value(item, _generic_element(parent, key, namespace, sanitize), namespace,
                           depth_budget - 1, sanitize)


def _generic_element(parent: etree._Element, key: str, namespace: str, sanitize: bool) -> etree._Element:
    if _XML_NAME.match(key) and not key.lower().startswith("xml"):
        return etree.SubElement(parent, f"{{{namespace}}}{key}")
    element = etree.SubElement(parent, f"{{{namespace}}}{_GENERIC_ENTRY}")
    element.set(_GENERIC_ENTRY_KEY, _clean(key, sanitize, "property name"))
    return element


def _generic_value(value: Any, element: etree._Element, namespace: str, depth_budget: int, sanitize: bool) -> None:
    if isinstance(value, Mapping):
        if not value:
            element.set(_TYPE_ATTRIBUTE, "object")
        _generic_members(value.items(), element, namespace, depth_budget, sanitize)
    elif isinstance(value, list):
        element.set(_TYPE_ATTRIBUTE, "list")
        if depth_budget <= 0:
            raise ConversionError("free content is nested too deeply")
        for item in value:
            _generic_value(item, etree.SubElement(element, f"{{{namespace}}}{_GENERIC_ITEM}"), namespace,
                           depth_budget - 1, sanitize)
    elif value is None:
        element.set(_TYPE_ATTRIBUTE, "null")
    elif isinstance(value, str):
        element.text = _clean(value, sanitize, "free content")
    else:
        element.set(_TYPE_ATTRIBUTE, "boolean" if isinstance(value, bool) else "number")
        element.text = _scalar_to_text(value, ValueKind.DOUBLE, "free content")


def _clean(text: str, sanitize: bool, where: str) -> str:
    if _XML_INVALID_CHARS.search(text):
        if not sanitize:
            raise ConversionError(f"{where}: contains characters XML cannot carry")
        return sanitize_text(text)
    return text


def generic_from_xml(element: etree._Element, depth_budget: int = DEFAULT_MAX_DEPTH) -> Any:
    """Free XML content as JSON (the inverse of :func:`generic_to_xml`)."""
    if depth_budget <= 0:
        raise ConversionError("free content is nested too deeply")
    declared = element.get(_TYPE_ATTRIBUTE)
    if declared == "null":
        return None
    if declared == "boolean":
        return (element.text or "").strip() == "true"
    if declared == "number":
        return _text_to_scalar(element.text, ValueKind.DOUBLE, "free content")
    if declared == "list":
        return [generic_from_xml(child, depth_budget - 1) for child in element if isinstance(child.tag, str)]
    children = [child for child in element if isinstance(child.tag, str)]
    if not children:
        return {} if declared == "object" else element.text or ""
    result: dict[str, Any] = {}
    repeated: set[str] = set()
    for child in children:
        local = _local(child.tag)
        key = child.get(_GENERIC_ENTRY_KEY, local) if local == _GENERIC_ENTRY else local
        array = child.get(_ARRAY_ATTRIBUTE)
        if array == "empty":
            result[key] = []
            continue
        value = generic_from_xml(child, depth_budget - 1)
        if array == "single":
            result[key] = [value]
        elif key in repeated:
            result[key].append(value)
        elif key in result:
            result[key] = [result[key], value]
            repeated.add(key)
        else:
            result[key] = value
    return result


def to_bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
