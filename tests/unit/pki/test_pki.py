"""Certificates the hub issues: CN, usages, chain, PKCS#12, renewal."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from hub_operator import pki


@pytest.fixture(scope="module")
def authority() -> pki.CertificateAuthority:
    return pki.CertificateAuthority.generate("unit-test CA")


def test_client_certificate_carries_the_cn_and_client_usage(authority: pki.CertificateAuthority) -> None:
    issued = authority.issue("fr.health.samu050", valid_for=dt.timedelta(days=30))
    assert issued.common_name == "fr.health.samu050"
    usages = issued.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert authority.issued(issued.cert_pem)
    remaining = issued.not_after - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(days=29) < remaining <= dt.timedelta(days=30, minutes=6)


def test_certificate_from_another_ca_is_not_recognised(authority: pki.CertificateAuthority) -> None:
    other = pki.CertificateAuthority.generate("other CA", )
    assert not authority.issued(other.issue("fr.health.samu050").cert_pem)


def test_ca_round_trips_through_pem_and_rejects_a_mismatched_key(authority: pki.CertificateAuthority) -> None:
    reloaded = pki.CertificateAuthority.from_pem(authority.cert_pem, authority.key_pem)
    assert reloaded.issued(reloaded.issue("x").cert_pem)
    with pytest.raises(ValueError, match="do not match"):
        pki.CertificateAuthority.from_pem(authority.cert_pem, pki.CertificateAuthority.generate().key_pem)


def test_pkcs12_bundle_holds_key_cert_and_ca(authority: pki.CertificateAuthority) -> None:
    issued = authority.issue("fr.health.samu050")
    key, cert, cas = pkcs12.load_key_and_certificates(issued.pkcs12(b"secret"), b"secret")
    assert cert is not None and pki.common_name(cert) == "fr.health.samu050"
    assert key is not None
    assert [ca.subject for ca in cas] == [authority.cert.subject]


@pytest.mark.parametrize("algorithm", list(pki.KeyAlgorithm))
def test_every_key_algorithm_issues(authority: pki.CertificateAuthority, algorithm: pki.KeyAlgorithm) -> None:
    issued = authority.issue("fr.health.samu050", algorithm=algorithm)
    assert authority.issued(issued.cert_pem)


def test_renewal_is_due_inside_the_window(authority: pki.CertificateAuthority) -> None:
    issued = authority.issue("x", valid_for=dt.timedelta(days=10))
    assert not pki.renewal_due(issued.cert_pem, renew_before=dt.timedelta(days=5))
    assert pki.renewal_due(issued.cert_pem, renew_before=dt.timedelta(days=11))
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=6)
    assert pki.renewal_due(issued.cert_pem, renew_before=dt.timedelta(days=5), now=later)


def test_already_expired_certificates_can_be_minted_for_tests(authority: pki.CertificateAuthority) -> None:
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10)
    issued = authority.issue("x", valid_for=dt.timedelta(days=1), not_before=past)
    assert issued.not_after < dt.datetime.now(dt.timezone.utc)
