"""Loading a model bundle: what is read from it, and every way it can fail to compile (at start-up)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hub_dispatcher.bundle import BundleError, ModelBundle, XmlVariant
from hub_dispatcher.usecases import BY_KEY
from hub_dispatcher.xmlcodec import ConversionError, generic_from_xml, generic_to_xml
from tests.helpers.hubsante_models import bundle_dir, envelope
from tests.unit.dispatcher.dispatch_support import load_bundle


def test_use_case_schema_files_are_read_from_the_bundle() -> None:
    assert load_bundle("1.1").use_cases["rpis"].schema_file == "RPIS.schema.json"
    assert load_bundle("2.2").use_cases["rpis"].schema_file == "RS-RPIS.schema.json"
    assert load_bundle("3.4.1").use_cases["distributionElement"].has_header is False
    assert load_bundle("3.4.1").use_cases["createCase"].has_header is True


def test_every_bundle_key_is_in_the_catalogue(bundle: ModelBundle) -> None:
    assert set(bundle.use_cases) <= set(BY_KEY)
    for key, use_case in bundle.use_cases.items():
        assert use_case.has_header == BY_KEY[key].has_header, key


def test_model_1_1_gives_some_use_cases_no_xml_form() -> None:
    bundle = load_bundle("1.1")
    assert {key for key, use_case in bundle.use_cases.items() if use_case.xml_variant is None} == {
        "createCaseHealthUpdate", "resourcesStatus"}
    assert bundle.use_cases["error"].xml_variant is XmlVariant.NO_HEADER


def test_namespaces_differ_by_version() -> None:
    assert load_bundle("2.2").message_model.namespace == "urn:emergency:cisu:2.0"
    assert load_bundle("3.4.1").message_model.namespace == "urn:emergency:eda:1.9"


def test_oneof_failure_is_explained_by_the_claimed_use_case() -> None:
    bundle = load_bundle("3.4.1")
    document = envelope({"createCase": {"caseId": 7}})
    problems = bundle.json_problems(document)
    assert any(problem.startswith("/content/0/jsonContent/embeddedJsonContent/message/createCase/caseId: expected "
                                  "string") for problem in problems), problems
    assert all(len(problem) < 300 for problem in problems)


def test_message_without_any_use_case_is_explained() -> None:
    problems = load_bundle("3.4.1").json_problems(envelope({"nothingKnown": {}}))
    assert problems[0].startswith("/content/0/jsonContent/embeddedJsonContent/message: no known use case "
                                  "(found nothingKnown;")


def test_message_with_two_use_cases_is_explained() -> None:
    problems = load_bundle("3.4.1").json_problems(envelope({"createCase": {}, "emsi": {}}))
    assert "carries several use cases (createCase, emsi)" in problems[0]


# -- bundles that do not compile -----------------------------------------------------------------------------------
@pytest.fixture
def bundle_copy(tmp_path: Path) -> Path:
    """A private copy of a real bundle (in the test's temporary folder) to break."""
    target = tmp_path / "2.2"
    shutil.copytree(bundle_dir("2.2") / "json-schema", target / "json-schema")
    shutil.copytree(bundle_dir("2.2") / "xsd", target / "xsd")
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="is not a directory"):
        ModelBundle.load(tmp_path / "nope")


def test_unparsable_schema(bundle_copy: Path) -> None:
    (bundle_copy / "json-schema" / "RC-EDA.schema.json").write_text("{ not json")
    with pytest.raises(BundleError, match="RC-EDA.schema.json: not a readable JSON document"):
        ModelBundle.load(bundle_copy)


def test_missing_referenced_schema(bundle_copy: Path) -> None:
    (bundle_copy / "json-schema" / "RS-EDA.schema.json").unlink()
    with pytest.raises(BundleError, match="RS-EDA.schema.json"):
        ModelBundle.load(bundle_copy)


def test_schema_that_does_not_compile(bundle_copy: Path) -> None:
    path = bundle_copy / "json-schema" / "RC-REF.schema.json"
    schema = json.loads(path.read_text())
    schema["properties"] = {"distributionID": {"type": "no-such-type"}}
    path.write_text(json.dumps(schema))
    with pytest.raises(BundleError, match="does not compile"):
        ModelBundle.load(bundle_copy)


def test_missing_full_schema(bundle_copy: Path) -> None:
    (bundle_copy / "json-schema" / "EDXL-DE-full.schema.json").unlink()
    with pytest.raises(BundleError, match="EDXL-DE-full.schema.json is missing"):
        ModelBundle.load(bundle_copy)


def test_xsd_that_does_not_compile(bundle_copy: Path) -> None:
    (bundle_copy / "xsd" / "RS-EDA.xsd").write_text("<schema xmlns='http://www.w3.org/2001/XMLSchema'><oops/></schema>")
    with pytest.raises(BundleError, match="does not compile"):
        ModelBundle.load(bundle_copy)


def test_missing_xsd(bundle_copy: Path) -> None:
    (bundle_copy / "xsd" / "EDXL-DE-full-no-header.xsd").unlink()
    with pytest.raises(BundleError, match="EDXL-DE-full-no-header.xsd is missing"):
        ModelBundle.load(bundle_copy)


# -- free content (customContent, sourceMessage) -----------------------------------------------------------------
def test_free_content_round_trips_with_its_json_types() -> None:
    from lxml import etree

    value = {"a": [1], "b": [], "c": {}, "d": None, "e": True, "f": 1.5, "g": "text", "h": [[1, 2], "x"],
             "not an xml name": "kept", "i": [{"j": "k"}, {"j": "l"}]}
    parent = etree.Element("{urn:test}free")
    generic_to_xml(value, parent, "urn:test", 10, sanitize=False)
    assert generic_from_xml(parent) == value


def test_free_content_too_deep_is_a_conversion_error() -> None:
    from lxml import etree

    value: dict[str, object] = {}
    cursor = value
    for _ in range(20):
        cursor["x"] = {}
        cursor = cursor["x"]  # type: ignore[assignment]
    with pytest.raises(ConversionError, match="nested too deeply"):
        generic_to_xml(value, etree.Element("r"), "", 10, sanitize=False)
