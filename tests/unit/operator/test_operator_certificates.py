"""Certificates: the decision about a stored Secret, issuance and renewal, cert-manager and external modes."""

from __future__ import annotations

import datetime as dt

import pytest
from hub_operator import pki
from hub_operator.api.hubclient import CertificateSpec
from hub_operator.certificates import (
    CertificateAuthorityStore,
    CertificateError,
    CertificateRequest,
    Verdict,
    decode_data,
    encode_data,
    ensure_cert_manager_certificate,
    ensure_certificate_secret,
    inspect_secret,
    render_cert_manager_certificate,
    render_certificate_secret,
)
from hub_operator.clients.fake_kubernetes import FakeKubernetes
from hub_operator.clients.kubernetes import CERTIFICATES, SECRETS

from tests.unit.operator.operator_support import shared_ca

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _request(**overrides: object) -> CertificateRequest:
    values: dict[str, object] = {"namespace": "ns", "secret_name": "c-tls", "common_name": "fr.health.samu050",
                                 "validity": dt.timedelta(days=90), "renew_before": dt.timedelta(days=30)}
    values.update(overrides)
    return CertificateRequest(**values)  # type: ignore[arg-type]


def _stored(request: CertificateRequest, issued: pki.IssuedCertificate) -> dict[str, object]:
    return render_certificate_secret(request, issued, password="pw")


def test_verdicts() -> None:
    ca = shared_ca()
    request = _request()
    fresh = ca.issue(request.common_name, valid_for=dt.timedelta(days=90), not_before=NOW)
    assert inspect_secret(None, request, ca, NOW).verdict is Verdict.ISSUE
    assert inspect_secret(_stored(request, fresh), request, ca, NOW).verdict is Verdict.KEEP
    due = NOW + dt.timedelta(days=61)
    assert inspect_secret(_stored(request, fresh), request, ca, due).verdict is Verdict.ISSUE
    other_cn = _request(common_name="someone.else")
    assert inspect_secret(_stored(request, fresh), other_cn, ca, NOW).verdict is Verdict.ISSUE
    rsa = _request(key_algorithm=pki.KeyAlgorithm.RSA_2048)
    assert "algorithm" in inspect_secret(_stored(request, fresh), rsa, ca, NOW).why
    foreign_ca = pki.CertificateAuthority.generate("another CA")
    assert "CA" in inspect_secret(_stored(request, fresh), request, foreign_ca, NOW).why
    trust = _request(trust_bundle=b"broker CA")
    assert inspect_secret(_stored(request, fresh), trust, ca, NOW).verdict is Verdict.REFRESH_TRUST
    foreign = {"metadata": {"name": "c-tls"}, "data": {}}
    assert inspect_secret(foreign, request, ca, NOW).verdict is Verdict.FOREIGN
    corrupt = _stored(request, fresh)
    corrupt["data"] = {**corrupt["data"], "tls.crt": encode_data({"x": b"garbage"})["x"]}  # type: ignore[index,dict-item]
    assert inspect_secret(corrupt, request, ca, NOW).verdict is Verdict.ISSUE


def test_the_secret_holds_key_certificate_ca_and_a_keystore() -> None:
    ca = shared_ca()
    request = _request()
    data = decode_data(_stored(request, ca.issue(request.common_name)))
    assert set(data) == {"tls.crt", "tls.key", "ca.crt", "keystore.p12", "keystore.password"}
    from cryptography.hazmat.primitives.serialization import pkcs12

    key, certificate, _chain = pkcs12.load_key_and_certificates(data["keystore.p12"], data["keystore.password"])
    assert key is not None and certificate is not None and pki.common_name(certificate) == request.common_name
    assert data["ca.crt"] == ca.cert_pem


async def test_ensure_issues_once_renews_when_due_and_never_touches_a_foreign_secret() -> None:
    kube = FakeKubernetes()
    ca = shared_ca()
    kube.put(SECRETS, {"metadata": {"name": "ca", "namespace": "ops"},
                       "data": encode_data({"tls.crt": ca.cert_pem, "tls.key": ca.key_pem})})
    store = CertificateAuthorityStore(kube, "ops", "ca", autogenerate=False)  # type: ignore[arg-type]
    request = _request()
    first = await ensure_certificate_secret(kube, store, request)  # type: ignore[arg-type]
    again = await ensure_certificate_secret(kube, store, request)  # type: ignore[arg-type]
    assert first.issued_now and not again.issued_now and first.serial == again.serial
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=70)
    renewed = await ensure_certificate_secret(kube, store, request, now=later)  # type: ignore[arg-type]
    assert renewed.issued_now and renewed.replaced and renewed.serial != first.serial
    kube.put(SECRETS, {"metadata": {"name": "someone-tls", "namespace": "ns"}, "data": {}})
    with pytest.raises(CertificateError) as error:
        await ensure_certificate_secret(kube, store, _request(secret_name="someone-tls"))  # type: ignore[arg-type]
    assert error.value.reason == "SecretConflict"


async def test_ca_is_generated_when_allowed_and_reported_when_not() -> None:
    kube = FakeKubernetes()
    refused = CertificateAuthorityStore(kube, "ops", "ca", autogenerate=False)  # type: ignore[arg-type]
    with pytest.raises(CertificateError) as error:
        await refused.get()
    assert error.value.reason == "CASecretNotFound" and "ops/ca" in error.value.message
    created = await CertificateAuthorityStore(kube, "ops", "ca", autogenerate=True).get()  # type: ignore[arg-type]
    assert kube.get(SECRETS, "ops", "ca") is not None
    reloaded = await CertificateAuthorityStore(kube, "ops", "ca", autogenerate=True).get()  # type: ignore[arg-type]
    assert reloaded.cert_pem == created.cert_pem


def test_cert_manager_certificate_rendering() -> None:
    spec = CertificateSpec.model_validate({"mode": "certManager", "issuerRef": {"name": "hub-ca", "kind": "ClusterIssuer"},
                                           "validity": "2160h", "renewBefore": "360h", "keyAlgorithm": "RSA-2048"})
    owner = {"apiVersion": "hubsante.io/v1alpha1", "kind": "HubClient", "name": "c", "uid": "u"}
    manifest = render_cert_manager_certificate(name="c", namespace="ns", owner=owner, spec=spec,
                                               common_name="fr.health.samu076", secret_name="c-tls")
    assert manifest["spec"]["commonName"] == "fr.health.samu076"
    assert manifest["spec"]["issuerRef"] == {"name": "hub-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert manifest["spec"]["privateKey"]["algorithm"] == "RSA" and manifest["spec"]["privateKey"]["size"] == 2048
    assert manifest["spec"]["duration"] == "2160h" and manifest["spec"]["renewBefore"] == "360h"
    assert "client auth" in manifest["spec"]["usages"]
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "u"


async def test_cert_manager_readiness_and_expiry() -> None:
    kube = FakeKubernetes(cert_manager_installed=True)
    spec = CertificateSpec.model_validate({"mode": "certManager", "issuerRef": {"name": "hub-ca"}})
    owner = {"apiVersion": "hubsante.io/v1alpha1", "kind": "HubClient", "name": "c", "uid": "u"}
    arguments = {"name": "c", "namespace": "ns", "owner": owner, "spec": spec, "common_name": "fr.health.samu076",
                 "secret_name": "c-tls"}
    pending = await ensure_cert_manager_certificate(kube, **arguments)  # type: ignore[arg-type]
    assert not pending.ready and pending.reason == "CertificatePending"
    issued = shared_ca().issue("fr.health.samu076", valid_for=dt.timedelta(days=90))
    kube.put(SECRETS, {"metadata": {"name": "c-tls", "namespace": "ns"},
                       "data": encode_data({"tls.crt": issued.cert_pem, "tls.key": issued.key_pem})})
    kube.set_status(CERTIFICATES, "ns", "c", {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 1}]})
    ready = await ensure_cert_manager_certificate(kube, **arguments)  # type: ignore[arg-type]
    assert ready.ready and ready.not_after == issued.not_after
    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=80)
    expiring = await ensure_cert_manager_certificate(kube, now=late, **arguments)  # type: ignore[arg-type]
    assert not expiring.ready and expiring.reason == "CertificateExpiring" and expiring.expiring
