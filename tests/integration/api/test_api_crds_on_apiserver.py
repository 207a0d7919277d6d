"""The generated CRDs on a real kube-apiserver: they install, the examples apply, kubectl shows them well."""

from __future__ import annotations

import datetime as dt

import pytest
from kubernetes import client

from hub_devenv.controlplane import LocalControlPlane
from hub_operator.api.base import GROUP, VERSION
from hub_operator.api.common import ConditionStatus, set_condition
from hub_operator.api.crdgen import KINDS
from hub_operator.api.hubclient import CertificateStatus, HubClientStatus, VhostAccessState, VhostAccessStatus
from hub_operator.api.perimeter import PerimeterSpec, PerimeterStatus
from hub_operator.api.resources import parse_resource

from hub_devenv.hub_resources import EXAMPLES_DIR, install_crds

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def hub_crds(cluster: LocalControlPlane) -> LocalControlPlane:
    install_crds(cluster)
    return cluster


@pytest.fixture
def environment(hub_crds: LocalControlPlane, namespace: str) -> str:
    """A namespace holding every example."""
    hub_crds.kubectl("apply", "--server-side", "-n", namespace, "-f", str(EXAMPLES_DIR))
    return namespace


def test_crds_are_established_with_names_and_categories(hub_crds: LocalControlPlane) -> None:
    extensions = client.ApiextensionsV1Api(hub_crds.api_client())
    for info in KINDS:
        stored = extensions.read_custom_resource_definition(info.crd_name)
        assert stored.spec.scope == "Namespaced"
        assert stored.spec.names.categories == ["hubsante"]
        assert stored.spec.names.short_names == list(info.short_names)


def test_every_example_applies_and_is_stored_as_the_models_expect(hub_crds: LocalControlPlane, environment: str) -> None:
    api = client.CustomObjectsApi(hub_crds.api_client())
    for info in KINDS:
        items = api.list_namespaced_custom_object(GROUP, VERSION, environment, info.plural)["items"]
        assert items, info.kind
        for body in items:
            resource = parse_resource(body)  # defaults applied by the API server are what the models expect
            assert resource.spec.to_wire() == body["spec"], body["metadata"]["name"]


def test_kubectl_get_hubsante_lists_everything_with_useful_columns(hub_crds: LocalControlPlane, environment: str) -> None:
    listing = hub_crds.kubectl("get", "hubsante", "-n", environment).stdout
    for name in ("perimeter.hubsante.io/15-15", "vhostversion.hubsante.io/15-nexsis-v1.8",
                 "hubclient.hubsante.io/fr.health.samu050", "hubclient.hubsante.io/normandie-regional"):
        assert name in listing, listing
    for header in ("USE-CASES", "TTL", "PERIMETER", "MODELS", "PROFILE", "STATE", "CLIENT-ID", "SUSPENDED", "READY"):
        assert header in listing, header
    vhosts = hub_crds.kubectl("get", "vhv", "-n", environment).stdout
    row = next(line.split() for line in vhosts.splitlines() if line.startswith("15-nexsis-v1.8"))
    assert row[1:5] == ["15-nexsis", "1.1", "legacy", "active"], vhosts  # Vhost (status) is still empty


def test_status_facts_show_in_columns(hub_crds: LocalControlPlane, environment: str) -> None:
    """The operator's status (written through the status subresource) feeds the columns."""
    api = client.CustomObjectsApi(hub_crds.api_client())
    not_after = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    status = HubClientStatus(
        observed_generation=1,
        username="fr.health.samu050",
        client_ids=["fr.health.samu050"],
        certificate=CertificateStatus(secret_name="fr.health.samu050-tls", not_after=not_after, serial="1f"),
        vhosts=[VhostAccessStatus(vhost_version="15-15-v1.5", vhost="15-15_v1.5", state=VhostAccessState.PROVISIONED)],
        ready_vhosts=1,
        conditions=set_condition([], "Ready", ConditionStatus.TRUE, "Provisioned", "all vhosts provisioned"),
    )
    api.patch_namespaced_custom_object_status(
        GROUP, VERSION, environment, "hubclients", "fr.health.samu050", {"status": status.to_wire()}
    )
    stored = api.get_namespaced_custom_object(GROUP, VERSION, environment, "hubclients", "fr.health.samu050")
    assert HubClientStatus.model_validate(stored["status"]) == status
    listing = hub_crds.kubectl("get", "hc", "fr.health.samu050", "-n", environment).stdout
    header, row = listing.splitlines()
    assert header.split()[:7] == ["NAME", "CLIENT-ID", "USERNAME", "VHOSTS", "SUSPENDED", "READY", "CERT-EXPIRY"]
    assert row.split()[1:7] == ["fr.health.samu050", "fr.health.samu050", "1", "false", "True", "2026-03-01T00:00:00Z"]


def test_perimeter_use_case_summary_column(hub_crds: LocalControlPlane, environment: str) -> None:
    api = client.CustomObjectsApi(hub_crds.api_client())
    body = api.get_namespaced_custom_object(GROUP, VERSION, environment, "perimeters", "15-nexsis")
    spec = PerimeterSpec.model_validate(body["spec"])
    status = PerimeterStatus(use_cases=spec.use_case_summary, vhosts=["15-nexsis_v1.8"])
    api.patch_namespaced_custom_object_status(
        GROUP, VERSION, environment, "perimeters", "15-nexsis", {"status": status.to_wire()}
    )
    listing = hub_crds.kubectl("get", "perim", "15-nexsis", "-n", environment).stdout
    header, row = listing.splitlines()
    assert header.split()[:4] == ["NAME", "USE-CASES", "TTL", "REPLICAS"]
    assert row.split()[:5] == ["15-nexsis", "9", "allowed", "24h", "2"]


def test_status_is_a_subresource(hub_crds: LocalControlPlane, environment: str) -> None:
    """A spec update cannot write status (only the operator, through /status, can)."""
    api = client.CustomObjectsApi(hub_crds.api_client())
    api.patch_namespaced_custom_object(
        GROUP, VERSION, environment, "perimeters", "15-gps", {"status": {"vhosts": ["forged"]}}
    )
    stored = api.get_namespaced_custom_object(GROUP, VERSION, environment, "perimeters", "15-gps")
    assert "status" not in stored or stored["status"].get("vhosts") != ["forged"]


def test_kubectl_explain_shows_descriptions(hub_crds: LocalControlPlane) -> None:
    spec = hub_crds.kubectl("explain", "hubclient.spec").stdout
    assert "Desired state of a HubClient" in spec
    for field in ("clientId", "additionalClientIds", "certificate", "vhostVersions", "suspended", "deletionPolicy"):
        assert field in spec, field
    assert "fr.<domain>.<org>[.<sub>]" in spec
    mode = hub_crds.kubectl("explain", "hubclient.spec.certificate.mode").stdout
    assert "national PKI" in mode and "operator" in mode
    models = hub_crds.kubectl("explain", "vhostversion.spec.models").stdout
    assert "exceed 1 MiB" in models
