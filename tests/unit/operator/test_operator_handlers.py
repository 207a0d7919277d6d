"""The kopf registrations: what is handled, with which ids, and the index keys records are filed under."""

from __future__ import annotations

import kopf
from hub_operator.handlers import register
from hub_operator.handlers.workloads import owning_vhost_version
from hub_operator.inventory import ClientRecord, client_index_keys

from tests.unit.operator.operator_support import Hub


def _ids(registry: object) -> set[str]:
    return {handler.id for handler in registry.get_all_handlers()}  # type: ignore[attr-defined]


def test_every_kind_has_its_handlers_and_indexes() -> None:
    registry = kopf.OperatorRegistry()
    register(registry, Hub().context)
    # kopf stores handler progress under these ids: renaming one would orphan what it stored on live objects.
    assert _ids(registry._indexing) == {"hub_perimeters", "hub_vhost_versions", "hub_clients"}
    assert _ids(registry._changing) == {"perimeter", "perimeter-deleted", "vhostversion", "hubclient",
                                        "cleanup"}
    assert _ids(registry._spawning) == {"drift", "certificate"}
    assert _ids(registry._watching) == {"dispatcher-readiness"}


def test_records_are_filed_by_name_vhost_and_username() -> None:
    record = ClientRecord.from_body({
        "metadata": {"name": "c", "namespace": "ns", "uid": "u"},
        "spec": {"clientId": "fr.health.samu050", "vhostVersions": ["15-15-v1.5", "15-15-v2.0"],
                 "certificate": {"commonName": "lrm.example.fr"}},
    })
    assert set(client_index_keys(record)) == {("name", "ns", "c"), ("vhost-version", "ns", "15-15-v1.5"),
                                             ("vhost-version", "ns", "15-15-v2.0"), ("username", "ns", "lrm.example.fr")}
    broken = ClientRecord.from_body({"metadata": {"name": "b", "namespace": "ns", "uid": "v"},
                                     "spec": {"clientId": "not-an-id", "vhostVersions": ["15-15-v1.5"]}})
    assert broken.spec is None and broken.spec_error and broken.vhost_versions == ("15-15-v1.5",)


def test_a_dispatcher_deployment_names_its_vhost_version() -> None:
    body = kopf.Body({"metadata": {"ownerReferences": [{"apiVersion": "hubsante.io/v1alpha1", "kind": "VHostVersion",
                                                        "name": "15-15-v1.5", "uid": "u"}]}})
    assert owning_vhost_version(body) == "15-15-v1.5"
    assert owning_vhost_version(kopf.Body({"metadata": {}})) is None
