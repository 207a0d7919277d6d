"""The generated CRDs: structural, documented, carrying the CEL rules, and identical to the committed files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import Field

from hub_dispatcher import protocol, usecases
from hub_operator.api import crdgen
from hub_operator.api.base import ApiModel, KindInfo
from hub_operator.api.crdgen import KINDS, crd, generated_files, object_schema
from hub_operator.api.hubclient import HUBCLIENT
from hub_operator.api.perimeter import PERIMETER
from hub_operator.api.structural import (
    SchemaError,
    apply_defaults,
    model_schema,
    structural_violations,
    undocumented_properties,
)
from hub_operator.api.vhostversion import VHOSTVERSION

REPO = Path(__file__).resolve().parents[3]
KIND_IDS = [info.kind for info in KINDS]


def _nodes(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from _nodes(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _nodes(value)


def _at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for name in path.split("."):
        node = node["items"] if name == "[]" else node["properties"][name]
    return node


def _rules(node: dict[str, Any]) -> list[str]:
    return [rule["rule"] for rule in node.get("x-kubernetes-validations", [])]


@pytest.mark.parametrize("info", KINDS, ids=KIND_IDS)
def test_schema_is_structural_and_documented(info: KindInfo) -> None:
    schema = object_schema(info)
    assert structural_violations(schema) == []
    assert [path for path in undocumented_properties(schema) if not path.startswith("metadata")] == []
    for node in _nodes(schema):
        assert not {"title", "$ref", "anyOf", "$defs", "additionalProperties"} & set(node), node


@pytest.mark.parametrize("info", KINDS, ids=KIND_IDS)
def test_crd_names_scope_and_subresources(info: KindInfo) -> None:
    definition = crd(info)["spec"]
    assert definition["scope"] == "Namespaced"
    assert definition["group"] == "hubsante.io"
    assert definition["names"]["categories"] == ["hubsante"]
    assert definition["names"]["shortNames"]
    (version,) = definition["versions"]
    assert version["name"] == "v1alpha1" and version["storage"] and version["served"]
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column for column in version["additionalPrinterColumns"]}
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert "Age" in columns
    conditions = _at(version["schema"]["openAPIV3Schema"], "status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map" and conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_immutability_rules() -> None:
    client = object_schema(HUBCLIENT)
    vhost = object_schema(VHOSTVERSION)
    assert _rules(_at(client, "spec.clientId")) == ["self == oldSelf"]
    for field in ("perimeterRef", "version", "profile", "queueType"):
        assert _rules(_at(vhost, f"spec.{field}")) == ["self == oldSelf"], field


def test_cross_field_rules_name_their_field() -> None:
    certificate = _at(object_schema(HUBCLIENT), "spec.certificate")
    field_paths = {rule["fieldPath"] for rule in certificate["x-kubernetes-validations"]}
    assert field_paths == {".issuerRef", ".commonName", ".secretName", ".renewBefore"}
    for rule in certificate["x-kubernetes-validations"]:
        assert rule.get("message") or rule.get("messageExpression")


def test_vhostversion_name_rule_at_the_root() -> None:
    root = object_schema(VHOSTVERSION)
    (rule,) = root["x-kubernetes-validations"]
    assert "self.metadata.name ==" in rule["rule"] and rule["fieldPath"] == ".metadata.name"
    assert root["properties"]["metadata"]["properties"]["name"]["maxLength"] == 63


def test_patterns_and_enums_come_from_the_shared_definitions() -> None:
    client = object_schema(HUBCLIENT)
    perimeter = object_schema(PERIMETER)
    vhost = object_schema(VHOSTVERSION)
    assert _at(client, "spec.clientId")["pattern"] == protocol.CLIENT_ID_PATTERN
    assert _at(client, "spec.additionalClientIds.[]")["pattern"] == protocol.CLIENT_ID_PATTERN
    assert _at(perimeter, "spec.allowedUseCases.[]")["enum"] == list(usecases.KEYS)
    assert _at(vhost, "spec.version")["pattern"] == protocol.SPEC_VERSION_PATTERN
    assert _at(vhost, "spec.profile")["enum"] == [profile.value for profile in protocol.ProtocolProfile]


def test_quantities_are_int_or_string() -> None:
    cpu = _at(object_schema(PERIMETER), "spec.dispatcher.resources.requests.cpu")
    assert cpu["x-kubernetes-int-or-string"] is True and "type" not in cpu


MINIMAL_SPECS = {
    "Perimeter": {"description": "x"},
    "VHostVersion": {"perimeterRef": {"name": "15-15"}, "version": "1.5", "models": {"version": "1.1"}},
    "HubClient": {"clientId": "fr.health.samu050", "vhostVersions": ["15-15-v1.5"]},
}


@pytest.mark.parametrize("info", KINDS, ids=KIND_IDS)
def test_schema_defaults_are_the_model_defaults(info: KindInfo) -> None:
    """What the API server stores (schema defaults applied) is exactly what the model fills in."""
    spec_schema = object_schema(info)["properties"]["spec"]
    stored = apply_defaults(spec_schema, MINIMAL_SPECS[info.kind])
    assert info.spec_model.model_validate(MINIMAL_SPECS[info.kind]).to_wire() == stored


def test_nested_object_defaults_expand() -> None:
    stored = apply_defaults(object_schema(HUBCLIENT)["properties"]["spec"], MINIMAL_SPECS["HubClient"])
    assert stored["certificate"]["mode"] == "operator"
    assert stored["preferences"] == {"format": "json"}


def test_generator_refuses_an_undocumented_field() -> None:
    class Careless(ApiModel):
        """A spec."""

        name: str = Field(description="documented")
        size: int = 1

    info = KindInfo("Careless", "carelesses", ("cl",), "d", Careless, Careless, ())
    with pytest.raises(SchemaError, match="spec.size: no description"):
        object_schema(info)


def test_generator_refuses_free_form_unions() -> None:
    class Ambiguous(ApiModel):
        """A spec."""

        value: int | str = Field(description="either")

    with pytest.raises(SchemaError, match="only 'X | None' unions"):
        model_schema(Ambiguous)


def test_committed_files_are_up_to_date() -> None:
    stale = crdgen.stale_files(generated_files(REPO / "crds", REPO / "docs" / "reference" / "crds.md"))
    assert not stale, f"{', '.join(map(str, stale))} differ from the models: run `make crds` and commit the result"


def test_committed_crds_parse_as_yaml_with_the_header() -> None:
    for info in KINDS:
        text = (REPO / "crds" / crdgen.crd_filename(info)).read_text()
        assert text.startswith("# Generated by")
        assert yaml.safe_load(text) == crd(info)


def test_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--output", str(tmp_path / "crds"), "--docs", str(tmp_path / "crds.md")]
    assert crdgen.main([*args, "--check"]) == 1
    assert crdgen.main(args) == 0
    assert crdgen.main([*args, "--check"]) == 0
    (tmp_path / "crds" / "hubsante.io_hubclients.yaml").write_text("edited by hand\n")
    capsys.readouterr()
    assert crdgen.main([*args, "--check"]) == 1
    assert "hubsante.io_hubclients.yaml is out of date with the models: run `make crds`" in capsys.readouterr().err


def test_reference_documents_every_spec_field() -> None:
    reference = (REPO / "docs" / "reference" / "crds.md").read_text()
    for info in KINDS:
        spec = object_schema(info)["properties"]["spec"]
        for name in spec["properties"]:
            assert f"| spec.{name} |" in reference, (info.kind, name)
    assert "exceed 1 MiB" in reference and "ca.crt" in reference
