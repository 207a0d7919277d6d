"""Certificates of clients and dispatchers: the operator CA, certificate Secrets, cert-manager and external CNs.

The decision about a certificate Secret (keep it, issue a new certificate, or only refresh its trust bundle) is
a pure function of its data, the request and the clock (:func:`inspect_secret`); the ensure functions do the
I/O around it.  A Secret the operator did not create is never overwritten.

Secret layout (operator mode and dispatchers), as cert-manager lays out its Secrets plus a keystore:
``tls.crt``, ``tls.key``, ``ca.crt``, ``keystore.p12`` (PKCS#12 of key, certificate and CA for Java clients)
and ``keystore.password``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import enum
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from hub_operator import pki
from hub_operator.api.hubclient import CertificateMode, CertificateSpec
from hub_operator.clients.kubernetes import (
    CERT_MANAGER_GROUP,
    KubernetesClient,
    KubernetesConflict,
    KubernetesNotFound,
)

log = logging.getLogger(__name__)

TLS_CERT_KEY: Final = "tls.crt"
TLS_KEY_KEY: Final = "tls.key"
CA_KEY: Final = "ca.crt"
KEYSTORE_KEY: Final = "keystore.p12"
KEYSTORE_PASSWORD_KEY: Final = "keystore.password"
TLS_SECRET_TYPE: Final = "kubernetes.io/tls"

LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "hub-operator"
LABEL_CERTIFICATE_OF: Final = "hubsante.io/certificate-of"
#: How long the CA read from its Secret is trusted before the Secret is read again (rotation).
CA_CACHE_SECONDS: Final = 60.0


class CertificateError(Exception):
    """A certificate that cannot be provided; ``reason`` is the condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# -- the operator CA ------------------------------------------------------------------------------------------


class CertificateAuthorityStore:
    """The operator CA from its Secret (``tls.crt`` + ``tls.key``), created on first use when allowed."""

    def __init__(self, kube: KubernetesClient, namespace: str, secret_name: str, *, autogenerate: bool) -> None:
        self._kube = kube
        self.namespace = namespace
        self.secret_name = secret_name
        self.autogenerate = autogenerate
        self._cached: tuple[float, pki.CertificateAuthority] | None = None

    @property
    def location(self) -> str:
        return f"Secret {self.namespace}/{self.secret_name}"

    def forget(self) -> None:
        self._cached = None

    async def get(self) -> pki.CertificateAuthority:
        if self._cached is not None and time.monotonic() - self._cached[0] < CA_CACHE_SECONDS:
            return self._cached[1]
        authority = await self._load()
        self._cached = (time.monotonic(), authority)
        return authority

    async def _load(self) -> pki.CertificateAuthority:
        secret = await self._kube.get_secret(self.namespace, self.secret_name)
        if secret is None:
            if not self.autogenerate:
                raise CertificateError(
                    "CASecretNotFound",
                    f"the operator CA {self.location} does not exist (create it with tls.crt and tls.key, or enable "
                    f"HUB_OPERATOR_CA_AUTOGENERATE)",
                )
            secret = await self._create()
        data = decode_data(secret)
        try:
            return pki.CertificateAuthority.from_pem(data[TLS_CERT_KEY], data[TLS_KEY_KEY])
        except (KeyError, ValueError) as error:
            raise CertificateError(
                "CASecretInvalid", f"the operator CA {self.location} needs a matching PEM tls.crt and tls.key: {error}"
            ) from None

    async def _create(self) -> dict[str, Any]:
        authority = pki.CertificateAuthority.generate("hub-operator CA")
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": TLS_SECRET_TYPE,
            "metadata": {"name": self.secret_name, "namespace": self.namespace, "labels": {LABEL_MANAGED_BY: MANAGED_BY}},
            "data": encode_data({TLS_CERT_KEY: authority.cert_pem, TLS_KEY_KEY: authority.key_pem,
                                 CA_KEY: authority.cert_pem}),
        }
        try:
            created = await self._kube.create_secret(self.namespace, body)
            log.warning("created a new operator CA in %s: the broker must trust it (ssl_options.cacertfile)",
                        self.location)
            return created
        except KubernetesConflict:  # another start-up won the race: use its CA
            secret = await self._kube.get_secret(self.namespace, self.secret_name)
            if secret is None:
                raise
            return secret


# -- certificate Secrets (operator-issued) --------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateRequest:
    """A certificate the operator must keep in a Secret."""

    namespace: str
    secret_name: str
    common_name: str
    validity: dt.timedelta
    renew_before: dt.timedelta
    key_algorithm: pki.KeyAlgorithm = pki.KeyAlgorithm.ECDSA_P256
    owner: Mapping[str, Any] = field(default_factory=dict)
    """An ownerReference (the HubClient or VHostVersion): the Secret goes with its owner."""
    labels: Mapping[str, str] = field(default_factory=dict)
    trust_bundle: bytes | None = None
    """``ca.crt``: None = the issuing CA (clients); a dispatcher gets the broker's server CA to verify it."""


class Verdict(str, enum.Enum):
    KEEP = "keep"
    ISSUE = "issue"
    REFRESH_TRUST = "refresh-trust"  # only ca.crt changed
    FOREIGN = "foreign"  # someone else's Secret: never overwritten


@dataclass(frozen=True)
class Inspection:
    verdict: Verdict
    why: str


def inspect_secret(
    secret: Mapping[str, Any] | None, request: CertificateRequest, authority: pki.CertificateAuthority, now: dt.datetime
) -> Inspection:
    """What to do with the Secret currently stored under the request's name (pure)."""
    if secret is None:
        return Inspection(Verdict.ISSUE, "no certificate yet")
    labels = (secret.get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_MANAGED_BY) != MANAGED_BY:
        return Inspection(Verdict.FOREIGN, f"Secret {request.secret_name} exists and is not managed by hub-operator")
    data = decode_data(secret)
    try:
        certificate = pki.load_cert(data[TLS_CERT_KEY])
        key = pki.load_key(data[TLS_KEY_KEY])
    except (KeyError, ValueError) as error:
        return Inspection(Verdict.ISSUE, f"the stored certificate is unreadable ({error})")
    if _public_numbers(certificate.public_key()) != _public_numbers(key.public_key()):
        return Inspection(Verdict.ISSUE, "the stored key does not match the certificate")
    try:
        common_name = pki.common_name(certificate)
    except ValueError:
        common_name = ""
    if common_name != request.common_name:
        return Inspection(Verdict.ISSUE, f"the common name changed from {common_name} to {request.common_name}")
    if not authority.issued(data[TLS_CERT_KEY]):
        return Inspection(Verdict.ISSUE, "the certificate was not issued by the current operator CA")
    if key_algorithm_of(key) is not request.key_algorithm:
        return Inspection(Verdict.ISSUE, f"the key algorithm changed to {request.key_algorithm.value}")
    if certificate.not_valid_after_utc <= now:
        return Inspection(Verdict.ISSUE, f"the certificate expired on {certificate.not_valid_after_utc.isoformat()}")
    if pki.renewal_due(data[TLS_CERT_KEY], renew_before=request.renew_before, now=now):
        return Inspection(Verdict.ISSUE, f"renewal due: expires on {certificate.not_valid_after_utc.isoformat()}")
    expected_trust = request.trust_bundle if request.trust_bundle is not None else authority.cert_pem
    if data.get(CA_KEY) != expected_trust:
        return Inspection(Verdict.REFRESH_TRUST, "the CA bundle changed")
    return Inspection(Verdict.KEEP, "valid")


def _public_numbers(key: Any) -> Any:
    return key.public_numbers()


def key_algorithm_of(key: pki.PrivateKey) -> pki.KeyAlgorithm | None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        return pki.KeyAlgorithm.ECDSA_P256
    if isinstance(key, rsa.RSAPrivateKey):
        return {2048: pki.KeyAlgorithm.RSA_2048, 3072: pki.KeyAlgorithm.RSA_3072}.get(key.key_size)
    return None


def render_certificate_secret(
    request: CertificateRequest,
    issued: pki.IssuedCertificate,
    *,
    password: str,
    resource_version: str | None = None,
) -> dict[str, Any]:
    """The Secret holding an issued certificate (pure; the password is given so the result is reproducible)."""
    metadata: dict[str, Any] = {
        "name": request.secret_name,
        "namespace": request.namespace,
        "labels": {**request.labels, LABEL_MANAGED_BY: MANAGED_BY},
        "annotations": {"hubsante.io/common-name": request.common_name},
    }
    if request.owner:
        metadata["ownerReferences"] = [dict(request.owner)]
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": TLS_SECRET_TYPE,
        "metadata": metadata,
        "data": encode_data(
            {
                TLS_CERT_KEY: issued.cert_pem,
                TLS_KEY_KEY: issued.key_pem,
                CA_KEY: request.trust_bundle if request.trust_bundle is not None else issued.ca_pem,
                KEYSTORE_KEY: issued.pkcs12(password.encode()),
                KEYSTORE_PASSWORD_KEY: password.encode(),
            }
        ),
    }


@dataclass(frozen=True)
class StoredCertificate:
    """A certificate as it is now in its Secret, and whether this call issued it."""

    secret_name: str
    common_name: str
    not_after: dt.datetime
    serial: str
    issued_now: bool = False
    replaced: bool = False
    """A certificate existed before this one was issued (a renewal or re-issue, not the first issuance)."""
    why: str = ""
    data: Mapping[str, bytes] = field(default_factory=dict, repr=False)


async def ensure_certificate_secret(
    kube: KubernetesClient,
    authorities: CertificateAuthorityStore,
    request: CertificateRequest,
    *,
    now: dt.datetime | None = None,
) -> StoredCertificate:
    """Make the Secret hold a valid certificate for the request; issue one only when needed.

    Raises :class:`CertificateError` (reason ``SecretConflict``, ``CASecretNotFound``...) when it cannot.
    Concurrent callers are safe: create and replace use optimistic concurrency, and a loser re-reads.
    """
    authority = await authorities.get()
    for _ in range(3):
        moment = now or dt.datetime.now(dt.UTC)
        secret = await kube.get_secret(request.namespace, request.secret_name)
        inspection = inspect_secret(secret, request, authority, moment)
        if inspection.verdict is Verdict.FOREIGN:
            raise CertificateError("SecretConflict", inspection.why + ": choose another certificate.secretName")
        if inspection.verdict is Verdict.KEEP:
            return _stored(secret, request, issued_now=False, why=inspection.why)
        resource_version = (secret or {}).get("metadata", {}).get("resourceVersion")
        try:
            if inspection.verdict is Verdict.REFRESH_TRUST:
                assert secret is not None
                body = dict(secret)
                body["data"] = {**(secret.get("data") or {}), **encode_data({CA_KEY: _trust(request, authority)})}
                stored = await kube.replace_secret(request.namespace, request.secret_name, body)
                return _stored(stored, request, issued_now=False, why=inspection.why)
            # Key generation and the PKCS#12 key derivation (~8 ms) run in a thread, off the event loop.
            body = await asyncio.to_thread(_issue_secret, authority, request, resource_version)
            if secret is None:
                stored = await kube.create_secret(request.namespace, body)
            else:
                stored = await kube.replace_secret(request.namespace, request.secret_name, body)
            log.info("issued a certificate for CN %s in Secret %s/%s (%s)", request.common_name,
                     request.namespace, request.secret_name, inspection.why)
            return _stored(stored, request, issued_now=True, why=inspection.why, replaced=secret is not None)
        except KubernetesConflict:
            continue  # someone else wrote it meanwhile: look again
    raise CertificateError("SecretConflict", f"Secret {request.secret_name} keeps changing under the operator")


def _issue_secret(
    authority: pki.CertificateAuthority, request: CertificateRequest, resource_version: str | None
) -> dict[str, Any]:
    issued = authority.issue(request.common_name, valid_for=request.validity, algorithm=request.key_algorithm)
    return render_certificate_secret(request, issued, password=secrets.token_urlsafe(24),
                                     resource_version=resource_version)


def _trust(request: CertificateRequest, authority: pki.CertificateAuthority) -> bytes:
    return request.trust_bundle if request.trust_bundle is not None else authority.cert_pem


def _stored(
    secret: Mapping[str, Any] | None, request: CertificateRequest, *, issued_now: bool, why: str, replaced: bool = False
) -> StoredCertificate:
    data = decode_data(secret or {})
    certificate = pki.load_cert(data[TLS_CERT_KEY])
    return StoredCertificate(
        secret_name=request.secret_name,
        common_name=request.common_name,
        not_after=certificate.not_valid_after_utc,
        serial=format(certificate.serial_number, "x"),
        issued_now=issued_now,
        replaced=replaced,
        why=why,
        data=data,
    )


# -- client certificates: the three modes -----------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateFacts:
    """What a HubClient's status says about its certificate."""

    ready: bool
    reason: str
    message: str
    mode: CertificateMode
    common_name: str
    secret_name: str | None = None
    not_after: dt.datetime | None = None
    serial: str | None = None
    renewed: bool = False
    """A certificate replaced an older one in this check (an Event says so)."""
    issued_now: bool = False
    """The operator issued a certificate in this check (first issue or renewal)."""
    expiring: bool = False
    """Due for renewal (or expired) and not renewed: the certificates_expiring metric counts it."""


def client_certificate_request(
    *, namespace: str, object_name: str, owner: Mapping[str, Any], spec: CertificateSpec, common_name: str,
    secret_name: str,
) -> CertificateRequest:
    return CertificateRequest(
        namespace=namespace,
        secret_name=secret_name,
        common_name=common_name,
        validity=spec.validity_delta,
        renew_before=spec.renew_before_delta,
        key_algorithm=spec.key_algorithm,
        owner=owner,
        labels={LABEL_CERTIFICATE_OF: f"hubclient.{object_name}"[:63].rstrip(".-_")},
    )


async def ensure_operator_certificate(
    kube: KubernetesClient, authorities: CertificateAuthorityStore, request: CertificateRequest,
    *, now: dt.datetime | None = None,
) -> CertificateFacts:
    try:
        stored = await ensure_certificate_secret(kube, authorities, request, now=now)
    except CertificateError as error:
        return CertificateFacts(False, error.reason, error.message, CertificateMode.OPERATOR, request.common_name,
                                request.secret_name)
    renewed = stored.issued_now and stored.replaced
    message = (f"CN {stored.common_name}, serial {stored.serial}, valid until {stored.not_after.isoformat()}, "
               f"in Secret {stored.secret_name} (tls.crt, tls.key, ca.crt, keystore.p12)")
    if renewed:
        message += f"; re-issued because {stored.why}"
    return CertificateFacts(True, "Renewed" if renewed else "Issued", message, CertificateMode.OPERATOR,
                            stored.common_name, stored.secret_name, stored.not_after, stored.serial, renewed=renewed,
                            issued_now=stored.issued_now)


_CERT_MANAGER_KEYS: Final = {
    pki.KeyAlgorithm.ECDSA_P256: {"algorithm": "ECDSA", "size": 256},
    pki.KeyAlgorithm.RSA_2048: {"algorithm": "RSA", "size": 2048},
    pki.KeyAlgorithm.RSA_3072: {"algorithm": "RSA", "size": 3072},
}


def keystore_password_secret_name(secret_name: str) -> str:
    return f"{secret_name}-keystore"[:253]


def render_cert_manager_certificate(
    *, name: str, namespace: str, owner: Mapping[str, Any], spec: CertificateSpec, common_name: str, secret_name: str,
) -> dict[str, Any]:
    """A cert-manager ``Certificate`` for a HubClient in certManager mode (pure)."""
    assert spec.issuer_ref is not None
    return {
        "apiVersion": f"{CERT_MANAGER_GROUP}/v1",
        "kind": "Certificate",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_CERTIFICATE_OF: f"hubclient.{name}"[:63].rstrip(".-_")},
            "ownerReferences": [dict(owner)],
        },
        "spec": {
            "secretName": secret_name,
            "commonName": common_name,
            "duration": spec.validity,
            "renewBefore": spec.renew_before,
            "privateKey": {**_CERT_MANAGER_KEYS[spec.key_algorithm], "rotationPolicy": "Always"},
            "usages": ["client auth", "digital signature", "key encipherment"],
            "issuerRef": {"name": spec.issuer_ref.name, "kind": spec.issuer_ref.kind.value,
                          "group": spec.issuer_ref.group},
            "secretTemplate": {"labels": {LABEL_MANAGED_BY: MANAGED_BY}},
            "keystores": {
                "pkcs12": {
                    "create": True,
                    "passwordSecretRef": {"name": keystore_password_secret_name(secret_name),
                                          "key": KEYSTORE_PASSWORD_KEY},
                }
            },
        },
    }


async def ensure_cert_manager_certificate(
    kube: KubernetesClient, *, name: str, namespace: str, owner: Mapping[str, Any], spec: CertificateSpec,
    common_name: str, secret_name: str, now: dt.datetime | None = None,
) -> CertificateFacts:
    mode = CertificateMode.CERT_MANAGER

    def facts(ready: bool, reason: str, message: str, **extra: Any) -> CertificateFacts:
        return CertificateFacts(ready, reason, message, mode, common_name, secret_name, **extra)

    await _ensure_keystore_password(kube, namespace, secret_name, owner)
    manifest = render_cert_manager_certificate(
        name=name, namespace=namespace, owner=owner, spec=spec, common_name=common_name, secret_name=secret_name
    )
    try:
        certificate = await kube.apply_certificate(manifest)
    except KubernetesNotFound:
        return facts(False, "CertManagerNotInstalled",
                     "cert-manager's Certificate kind (cert-manager.io/v1) is not installed in this cluster")
    generation = (certificate.get("metadata") or {}).get("generation")
    status = certificate.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") != "True" or ready.get("observedGeneration", generation) != generation:
        detail = (ready or {}).get("message") or "waiting for cert-manager to issue it"
        return facts(False, "CertificatePending", f"cert-manager Certificate {name}: {detail}")
    secret = await kube.get_secret(namespace, secret_name)
    data = decode_data(secret or {})
    if TLS_CERT_KEY not in data:
        return facts(False, "CertificatePending", f"cert-manager has not written Secret {secret_name} yet")
    certificate_pem = data[TLS_CERT_KEY]
    try:
        parsed = pki.load_cert(certificate_pem)
        actual_cn = pki.common_name(parsed)
    except ValueError as error:
        return facts(False, "CertificateInvalid", f"Secret {secret_name} holds no readable certificate: {error}")
    if actual_cn != common_name:
        return facts(False, "CertificatePending", f"Secret {secret_name} still holds CN {actual_cn}, not {common_name}")
    moment = now or dt.datetime.now(dt.UTC)
    not_after = parsed.not_valid_after_utc
    serial = format(parsed.serial_number, "x")
    if not_after <= moment:
        return facts(False, "CertificateExpired", f"expired on {not_after.isoformat()} and cert-manager has not renewed it",
                     not_after=not_after, serial=serial, expiring=True)
    if pki.renewal_due(certificate_pem, renew_before=spec.renew_before_delta, now=moment):
        return facts(False, "CertificateExpiring",
                     f"expires on {not_after.isoformat()} and cert-manager has not renewed it yet",
                     not_after=not_after, serial=serial, expiring=True)
    return facts(True, "Issued", f"CN {common_name}, serial {serial}, valid until {not_after.isoformat()}, issued by "
                 f"cert-manager into Secret {secret_name}", not_after=not_after, serial=serial)


async def _ensure_keystore_password(kube: KubernetesClient, namespace: str, secret_name: str,
                                    owner: Mapping[str, Any]) -> None:
    name = keystore_password_secret_name(secret_name)
    if await kube.get_secret(namespace, name) is not None:
        return
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": {LABEL_MANAGED_BY: MANAGED_BY},
                     "ownerReferences": [dict(owner)]},
        "data": encode_data({KEYSTORE_PASSWORD_KEY: secrets.token_urlsafe(24).encode()}),
    }
    try:
        await kube.create_secret(namespace, body)
    except KubernetesConflict:
        pass


def external_certificate(common_name: str) -> CertificateFacts:
    return CertificateFacts(
        True, "ExternalCertificate",
        f"CN {common_name} is configured; its certificate is issued outside the hub (e.g. the national PKI), so its "
        "expiry is not known here and the broker must trust its CA",
        CertificateMode.EXTERNAL, common_name,
    )


# -- Secret data --------------------------------------------------------------------------------------------


def decode_data(secret: Mapping[str, Any]) -> dict[str, bytes]:
    data = secret.get("data") or {}
    decoded = {key: base64.b64decode(value) for key, value in data.items() if isinstance(value, str)}
    for key, value in (secret.get("stringData") or {}).items():
        decoded[key] = value.encode()
    return decoded


def encode_data(values: Mapping[str, bytes]) -> dict[str, str]:
    return {key: base64.b64encode(value).decode("ascii") for key, value in values.items()}
