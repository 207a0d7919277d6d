"""HubClient spec: identity, certificate modes, preferences and the helpers the operator uses."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from hub_operator.api.common import DeletionPolicy
from hub_operator.api.hubclient import CertificateMode, HubClientSpec, IssuerKind, MessageFormat
from hub_operator.pki import KeyAlgorithm

MINIMAL = {"clientId": "fr.health.samu050", "vhostVersions": ["15-15-v1.5"]}


def test_defaults() -> None:
    spec = HubClientSpec.model_validate(MINIMAL)
    assert spec.additional_client_ids == []
    assert spec.certificate.mode is CertificateMode.OPERATOR
    assert spec.certificate.validity_delta == dt.timedelta(days=90)
    assert spec.certificate.renew_before_delta == dt.timedelta(days=30)
    assert spec.certificate.key_algorithm is KeyAlgorithm.ECDSA_P256
    assert spec.preferences.format is MessageFormat.JSON and spec.preferences.editor is None
    assert spec.suspended is False
    assert spec.deletion_policy is DeletionPolicy.RETAIN


def test_identity_helpers_default_to_the_client_id() -> None:
    spec = HubClientSpec.model_validate(MINIMAL)
    assert spec.all_client_ids == ("fr.health.samu050",)
    assert spec.certificate_common_name == spec.username == "fr.health.samu050"
    assert spec.certificate_secret_name("samu050") == "samu050-tls"


def test_regional_identity_serves_several_ids_under_one_cn() -> None:
    spec = HubClientSpec.model_validate(
        {
            "clientId": "fr.health.samu014",
            "additionalClientIds": ["fr.health.samu061", "fr.health.samu76A"],
            "certificate": {"commonName": "regulation.normandie.example.fr", "secretName": "normandie-cert"},
            "vhostVersions": ["15-15-v2.0"],
        }
    )
    assert spec.all_client_ids == ("fr.health.samu014", "fr.health.samu061", "fr.health.samu76A")
    assert spec.username == "regulation.normandie.example.fr"
    assert spec.certificate_secret_name("normandie") == "normandie-cert"


def test_external_certificate_has_a_cn_and_no_secret() -> None:
    spec = HubClientSpec.model_validate(
        {**MINIMAL, "certificate": {"mode": "external", "commonName": "connector.editor.example.fr"}}
    )
    assert spec.username == "connector.editor.example.fr"
    assert spec.certificate_secret_name("samu050") is None


def test_cert_manager_issuer_defaults() -> None:
    spec = HubClientSpec.model_validate({**MINIMAL, "certificate": {"mode": "certManager", "issuerRef": {"name": "ca"}}})
    issuer = spec.certificate.issuer_ref
    assert issuer is not None
    assert (issuer.kind, issuer.group) == (IssuerKind.ISSUER, "cert-manager.io")


@pytest.mark.parametrize(
    "client_id", ["fr.health.samu050", "fr.health.samu76A", "fr.fire.nexsis.sdis50", "fr.health.test.editor_x-1"]
)
def test_valid_client_ids(client_id: str) -> None:
    assert HubClientSpec.model_validate({**MINIMAL, "clientId": client_id}).client_id == client_id


@pytest.mark.parametrize(
    "client_id",
    ["fr.health", "health.samu050", "de.health.samu050", "fr.health.samu 050", "fr..samu050", "fr.health.-x",
     "fr.a.b.c.d.e.f", "fr.health." + "x" * 130],
)
def test_invalid_client_ids(client_id: str) -> None:
    with pytest.raises(ValidationError, match="clientId"):
        HubClientSpec.model_validate({**MINIMAL, "clientId": client_id})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"additionalClientIds": ["fr.health.samu050"]}, "must not repeat clientId fr.health.samu050"),
        ({"additionalClientIds": ["fr.health.samu061", "fr.health.samu061"]}, "fr.health.samu061 more than once"),
        ({"additionalClientIds": ["samu061"]}, "should match pattern"),
        ({"additionalClientIds": [f"fr.health.samu{i:03}" for i in range(100, 117)]}, "at most 16 items"),
        ({"vhostVersions": []}, "at least 1 item"),
        ({"vhostVersions": ["15-15_v1.5"]}, "should match pattern"),
        ({"vhostVersions": ["15-15-v1.5", "15-15-v1.5"]}, "15-15-v1.5 more than once"),
        ({"vhostVersions": None}, "vhostVersions\n  Field required"),
        ({"certificate": {"mode": "certManager"}}, "issuerRef is required when mode is certManager"),
        ({"certificate": {"issuerRef": {"name": "ca"}}}, "issuerRef is only allowed when mode is certManager (mode is operator)"),
        ({"certificate": {"mode": "external"}}, "commonName is required when mode is external"),
        ({"certificate": {"mode": "external", "commonName": "a.example.fr", "secretName": "s"}}, "secretName is not allowed"),
        ({"certificate": {"mode": "pki"}}, "'operator', 'certManager' or 'external'"),
        ({"certificate": {"commonName": "has space"}}, "should match pattern"),
        ({"certificate": {"commonName": "x" * 65}}, "at most 64 characters"),
        ({"certificate": {"validity": "24h", "renewBefore": "24h"}}, "renewBefore (24h) must be shorter than validity (24h)"),
        ({"certificate": {"validity": "30m"}}, "at least 1h"),
        ({"certificate": {"keyAlgorithm": "DSA"}}, "'ECDSA-P256', 'RSA-2048' or 'RSA-3072'"),
        ({"certificate": {"mode": "certManager", "issuerRef": {"name": "ca", "kind": "Vault"}}}, "'Issuer' or 'ClusterIssuer'"),
        ({"preferences": {"format": "yaml"}}, "'json' or 'xml'"),
        ({"preferences": {"editor": ""}}, "at least 1 character"),
        ({"suspended": "maybe"}, "valid boolean"),
        ({"clientID": "fr.health.samu051"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_specs(changes: dict[str, object], message: str) -> None:
    body = {key: value for key, value in {**MINIMAL, **changes}.items() if value is not None}
    with pytest.raises(ValidationError) as error:
        HubClientSpec.model_validate(body)
    assert message in str(error.value)


def test_wire_form_round_trips() -> None:
    spec = HubClientSpec.model_validate({**MINIMAL, "preferences": {"format": "xml", "editor": "Editeur A"}})
    wire = spec.to_wire()
    assert wire["preferences"] == {"format": "xml", "editor": "Editeur A"}
    assert wire["certificate"]["mode"] == "operator"
    assert HubClientSpec.model_validate(wire) == spec


def test_accepts_read_only_mapping_views_like_kopf_s() -> None:
    """kopf hands handlers read-only Mapping views of the body, not dicts."""
    from types import MappingProxyType

    view = MappingProxyType({**MINIMAL, "certificate": MappingProxyType({"mode": "operator"})})
    assert HubClientSpec.model_validate(view).username == "fr.health.samu050"
