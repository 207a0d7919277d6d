"""X.509 for the hub: a certificate authority that issues client, server and dispatcher certificates.

RabbitMQ takes the username from the client certificate's CN (``ssl_cert_login_from = common_name``),
so a client certificate is little more than a signed CN.  Keys are ECDSA P-256 by default (fast to
generate for thousands of tenants, supported by Erlang/OTP TLS and every modern client); RSA is available
for client software that cannot use EC keys.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

#: Back-date certificates a little so that a skewed clock on a peer does not reject a fresh one.
_CLOCK_SKEW = dt.timedelta(minutes=5)


class KeyAlgorithm(str, enum.Enum):
    ECDSA_P256 = "ECDSA-P256"
    RSA_2048 = "RSA-2048"
    RSA_3072 = "RSA-3072"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def generate_key(algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256) -> PrivateKey:
    if algorithm is KeyAlgorithm.ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    size = 2048 if algorithm is KeyAlgorithm.RSA_2048 else 3072
    return rsa.generate_private_key(public_exponent=65537, key_size=size)


def key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_cert(pem: bytes | str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)


def load_key(pem: bytes | str) -> PrivateKey:
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise ValueError("certificate has no common name")
    value = names[0].value
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf certificate with its key and the chain needed to present it."""

    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return load_cert(self.cert_pem)

    @property
    def common_name(self) -> str:
        return common_name(self.certificate)

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    def pkcs12(self, password: bytes | None = None, friendly_name: str | None = None) -> bytes:
        """A PKCS#12 bundle (key + cert + CA) for clients that want a single keystore file (Java LRMs)."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return pkcs12.serialize_key_and_certificates(
            name=(friendly_name or self.common_name).encode(),
            key=load_key(self.key_pem),
            cert=self.certificate,
            cas=[load_cert(self.ca_pem)],
            encryption_algorithm=encryption,
        )


class CertificateAuthority:
    """A self-signed CA able to issue leaf certificates."""

    def __init__(self, cert: x509.Certificate, key: PrivateKey) -> None:
        self.cert = cert
        self.key = key

    @classmethod
    def generate(
        cls,
        name: str = "hub-operator CA",
        valid_for: dt.timedelta = dt.timedelta(days=3650),
        algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256,
    ) -> CertificateAuthority:
        key = generate_key(algorithm)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + valid_for)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def from_pem(cls, cert_pem: bytes | str, key_pem: bytes | str) -> CertificateAuthority:
        cert, key = load_cert(cert_pem), load_key(key_pem)
        if cert.public_key().public_numbers() != key.public_key().public_numbers():
            raise ValueError("CA certificate and key do not match")
        return cls(cert, key)

    @property
    def cert_pem(self) -> bytes:
        return cert_to_pem(self.cert)

    @property
    def key_pem(self) -> bytes:
        return key_to_pem(self.key)

    def issue(
        self,
        cn: str,
        *,
        valid_for: dt.timedelta = dt.timedelta(days=365),
        client: bool = True,
        server: bool = False,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        organization: str | None = None,
        algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256,
        not_before: dt.datetime | None = None,
    ) -> IssuedCertificate:
        """Issue a leaf certificate.  ``not_before`` lets tests mint already-expired certificates."""
        key = generate_key(algorithm)
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if organization:
            attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        start = not_before if not_before is not None else _now() - _CLOCK_SKEW
        usages = []
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + _CLOCK_SKEW + valid_for)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return IssuedCertificate(cert_to_pem(cert), key_to_pem(key), self.cert_pem)

    def issued(self, cert_pem: bytes | str) -> bool:
        """Whether ``cert_pem`` was signed by this CA."""
        cert = load_cert(cert_pem)
        if cert.issuer != self.cert.subject:
            return False
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True


def renewal_due(
    cert_pem: bytes | str, *, renew_before: dt.timedelta, now: dt.datetime | None = None
) -> bool:
    """True when the certificate expires within ``renew_before`` (or already has)."""
    cert = load_cert(cert_pem)
    return cert.not_valid_after_utc - renew_before <= (now or _now())
