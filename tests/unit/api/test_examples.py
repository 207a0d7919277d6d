"""Every example manifest is valid for the models, and together they form the documented environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hub_operator.api.base import API_VERSION
from hub_operator.api.crdgen import KINDS, object_schema
from hub_operator.api.hubclient import CertificateMode
from hub_operator.api.resources import HubClient, Perimeter, VHostVersion, parse_resource
from hub_operator.api.structural import apply_defaults

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents += [(f"{path.name}:{doc['metadata']['name']}", doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


HUB_DOCUMENTS = [(label, doc) for label, doc in _documents() if doc["apiVersion"] == API_VERSION]


@pytest.mark.parametrize(("label", "document"), HUB_DOCUMENTS, ids=[label for label, _ in HUB_DOCUMENTS])
def test_example_is_valid_as_written_and_as_stored(label: str, document: dict[str, Any]) -> None:
    resource = parse_resource(document)
    schema = object_schema(next(info for info in KINDS if info.kind == document["kind"]))
    stored = apply_defaults(schema, document)
    assert parse_resource(stored) == resource


def _parsed() -> dict[str, list[Any]]:
    by_kind: dict[str, list[Any]] = {}
    for _, document in HUB_DOCUMENTS:
        resource = parse_resource(document)
        by_kind.setdefault(resource.kind, []).append(resource)
    return by_kind


def test_examples_describe_the_issue_environment() -> None:
    by_kind = _parsed()
    perimeters: list[Perimeter] = by_kind["Perimeter"]
    vhosts: list[VHostVersion] = by_kind["VHostVersion"]
    clients: list[HubClient] = by_kind["HubClient"]
    assert {p.metadata.name for p in perimeters} == {"15-15", "15-nexsis", "15-smur", "15-gps"}
    assert {v.spec.vhost_name for v in vhosts} == {"15-15_v1.5", "15-15_v2.0", "15-nexsis_v1.8"}
    client_ids = {client_id for c in clients for client_id in c.spec.all_client_ids}
    assert {"fr.health.samu050", "fr.health.samu076", "fr.fire.nexsis.sdis50"} <= client_ids
    assert any(len(c.spec.all_client_ids) == 2 for c in clients), "a regional identity serving two SAMU"
    external = [c for c in clients if c.spec.certificate.mode is CertificateMode.EXTERNAL]
    assert external and all(c.spec.certificate_common_name != c.spec.client_id for c in external)


def test_examples_reference_only_objects_they_define() -> None:
    by_kind = _parsed()
    perimeter_names = {p.metadata.name for p in by_kind["Perimeter"]}
    vhost_names = {v.metadata.name for v in by_kind["VHostVersion"]}
    assert {v.spec.perimeter for v in by_kind["VHostVersion"]} <= perimeter_names
    for client in by_kind["HubClient"]:
        assert set(client.spec.vhost_versions) <= vhost_names, client.metadata.name
