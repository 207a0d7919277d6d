"""HubClient: one client identity (certificate CN) serving one or more client ids on some vhosts."""

from __future__ import annotations

import datetime as dt
import enum

from pydantic import Field, model_validator

from hub_operator.pki import KeyAlgorithm

from .base import AGE_COLUMN, READY_COLUMN, ApiModel, CelReason, CelRule, KindInfo, PrinterColumn, cel, immutable, list_map, list_set
from .common import DeletionPolicy, StatusBase
from .fieldtypes import (
    DURATION_PATTERN,
    CertificateDuration,
    ClientId,
    ObjectName,
    parse_duration,
)
from .vhostversion import VHostVersionName

#: Upper bound of the X.509 CommonName (RFC 5280 ub-common-name).
COMMON_NAME_MAX = 64
COMMON_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._@-]*[A-Za-z0-9])?$"
MAX_ADDITIONAL_CLIENT_IDS = 16
MAX_VHOSTS_PER_CLIENT = 64
DEFAULT_CERTIFICATE_VALIDITY = "2160h"
DEFAULT_RENEW_BEFORE = "720h"
CERT_MANAGER_GROUP = "cert-manager.io"
CERTIFICATE_SECRET_SUFFIX = "-tls"


class CertificateMode(str, enum.Enum):
    """Who issues the client's certificate."""

    OPERATOR = "operator"
    CERT_MANAGER = "certManager"
    EXTERNAL = "external"


class IssuerKind(str, enum.Enum):
    ISSUER = "Issuer"
    CLUSTER_ISSUER = "ClusterIssuer"


class IssuerRef(ApiModel):
    """A cert-manager issuer."""

    name: ObjectName = Field(description="Issuer or ClusterIssuer name.")
    kind: IssuerKind = Field(IssuerKind.ISSUER, description="Issuer (same namespace) or ClusterIssuer.")
    group: str = Field(CERT_MANAGER_GROUP, max_length=253, description="API group of the issuer kind.")


class CertificateSpec(ApiModel):
    """The client's TLS identity. RabbitMQ takes the username from the certificate's CN."""

    model_config = {
        "json_schema_extra": cel(
            CelRule(
                rule="self.mode == 'certManager' ? has(self.issuerRef) : !has(self.issuerRef)",
                message_expression=(
                    "self.mode == 'certManager' ? 'issuerRef is required when mode is certManager' "
                    ": 'issuerRef is only allowed when mode is certManager (mode is ' + self.mode + ')'"
                ),
                field_path=".issuerRef",
            ),
            CelRule(
                rule="self.mode != 'external' || has(self.commonName)",
                message="commonName is required when mode is external: the CN of the certificate issued elsewhere (e.g. by the national PKI)",
                field_path=".commonName",
                reason=CelReason.REQUIRED,
            ),
            CelRule(
                rule="self.mode != 'external' || !has(self.secretName)",
                message="secretName is not allowed when mode is external: the operator never holds the private key of an external certificate",
                field_path=".secretName",
                reason=CelReason.FORBIDDEN,
            ),
            CelRule(
                rule=(
                    f"!self.renewBefore.matches('{DURATION_PATTERN}') || !self.validity.matches('{DURATION_PATTERN}') "
                    "|| duration(self.renewBefore) < duration(self.validity)"
                ),
                message="renewBefore must be shorter than validity",
                field_path=".renewBefore",
            ),
        )
    }

    mode: CertificateMode = Field(
        CertificateMode.OPERATOR,
        description=(
            "operator (default): issued and renewed by the operator's CA; certManager: a cert-manager Certificate "
            "from issuerRef; external: issued elsewhere (e.g. the national PKI), only its commonName is configured."
        ),
    )
    common_name: str | None = Field(
        None,
        pattern=COMMON_NAME_PATTERN,
        max_length=COMMON_NAME_MAX,
        description=(
            "Certificate CN, which is the RabbitMQ username. Required for external mode (it may differ from the "
            "client id, e.g. the editor's host name); defaults to clientId otherwise."
        ),
    )
    issuer_ref: IssuerRef | None = Field(None, description="cert-manager issuer; required for, and only for, certManager mode.")
    secret_name: ObjectName | None = Field(
        None,
        description=f"Secret receiving the key and certificate (operator and certManager modes); default <metadata.name>{CERTIFICATE_SECRET_SUFFIX}.",
    )
    validity: CertificateDuration = Field(
        DEFAULT_CERTIFICATE_VALIDITY,
        description="Lifetime of issued certificates, a duration between 1h and 87600h (operator and certManager modes).",
    )
    renew_before: CertificateDuration = Field(
        DEFAULT_RENEW_BEFORE,
        description="Renew this long before expiry; shorter than validity (operator and certManager modes).",
    )
    key_algorithm: KeyAlgorithm = Field(
        KeyAlgorithm.ECDSA_P256, description="Private key algorithm (operator and certManager modes)."
    )

    @model_validator(mode="after")
    def _mode_consistency(self) -> CertificateSpec:
        if self.mode is CertificateMode.CERT_MANAGER and self.issuer_ref is None:
            raise ValueError("issuerRef is required when mode is certManager")
        if self.mode is not CertificateMode.CERT_MANAGER and self.issuer_ref is not None:
            raise ValueError(f"issuerRef is only allowed when mode is certManager (mode is {self.mode.value})")
        if self.mode is CertificateMode.EXTERNAL and self.common_name is None:
            raise ValueError("commonName is required when mode is external")
        if self.mode is CertificateMode.EXTERNAL and self.secret_name is not None:
            raise ValueError("secretName is not allowed when mode is external")
        if parse_duration(self.renew_before) >= parse_duration(self.validity):
            raise ValueError(f"renewBefore ({self.renew_before}) must be shorter than validity ({self.validity})")
        return self

    @property
    def validity_delta(self) -> dt.timedelta:
        return parse_duration(self.validity)

    @property
    def renew_before_delta(self) -> dt.timedelta:
        return parse_duration(self.renew_before)


class MessageFormat(str, enum.Enum):
    JSON = "json"
    XML = "xml"


class Preferences(ApiModel):
    """How the client wants to receive messages."""

    format: MessageFormat = Field(
        MessageFormat.JSON,
        description="Format of delivered messages: json or xml. Clients outside fr.health always receive xml.",
    )
    editor: str | None = Field(
        None,
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9 ._-]*[A-Za-z0-9])?$",
        description="Name of the client's software editor, used as a metrics label.",
    )


class HubClientSpec(ApiModel):
    """Desired state of a HubClient: who it is, how it authenticates and which vhosts it may use."""

    model_config = {
        "json_schema_extra": cel(
            CelRule(
                rule="!has(self.additionalClientIds) || !(self.clientId in self.additionalClientIds)",
                message="additionalClientIds must not repeat clientId",
                field_path=".additionalClientIds",
            )
        )
    }

    client_id: ClientId = Field(
        description=(
            "Client id of the organisation endpoint: fr.<domain>.<org>[.<sub>], e.g. fr.health.samu050 or "
            "fr.fire.nexsis.sdis50. It names the client's queues and its routing key. Immutable."
        ),
        json_schema_extra=cel(immutable("clientId", "queues and routing keys are named after it; create a new HubClient instead")),
    )
    additional_client_ids: list[ClientId] = Field(
        default_factory=list,
        max_length=MAX_ADDITIONAL_CLIENT_IDS,
        description="Further client ids served by the same identity (e.g. a regional platform serving several SAMU); each gets its own queues.",
        json_schema_extra=list_set(),
    )
    certificate: CertificateSpec = Field(
        default_factory=CertificateSpec, description="TLS client certificate (its CN is the RabbitMQ username)."
    )
    vhost_versions: list[VHostVersionName] = Field(
        min_length=1,
        max_length=MAX_VHOSTS_PER_CLIENT,
        description="Names of the VHostVersions (same namespace) the client may use, e.g. 15-15-v1.5 (the object name, not the vhost 15-15_v1.5).",
        json_schema_extra=list_set(),
    )
    preferences: Preferences = Field(default_factory=Preferences, description="Delivery preferences.")
    suspended: bool = Field(
        False,
        description="true revokes access at once (user disabled, live connections closed) without deleting queues, messages or the certificate.",
    )
    deletion_policy: DeletionPolicy = Field(
        DeletionPolicy.RETAIN,
        description=(
            "What deleting this HubClient does on the broker: the user and its permissions are always removed; "
            "retain (default) keeps the client's queues and their messages, delete removes them."
        ),
    )

    @model_validator(mode="after")
    def _distinct_ids(self) -> HubClientSpec:
        if self.client_id in self.additional_client_ids:
            raise ValueError(f"additionalClientIds must not repeat clientId {self.client_id}")
        duplicates = sorted({i for i in self.additional_client_ids if self.additional_client_ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"additionalClientIds lists {', '.join(duplicates)} more than once")
        duplicate_vhosts = sorted({v for v in self.vhost_versions if self.vhost_versions.count(v) > 1})
        if duplicate_vhosts:
            raise ValueError(f"vhostVersions lists {', '.join(duplicate_vhosts)} more than once")
        return self

    @property
    def all_client_ids(self) -> tuple[str, ...]:
        """clientId first, then the additional ids, as the permissions and queues must cover them."""
        return (self.client_id, *self.additional_client_ids)

    @property
    def certificate_common_name(self) -> str:
        """The CN the broker sees, i.e. the RabbitMQ username."""
        return self.certificate.common_name or self.client_id

    @property
    def username(self) -> str:
        return self.certificate_common_name

    def certificate_secret_name(self, object_name: str) -> str | None:
        """The Secret holding the issued key pair, or None for an external certificate."""
        if self.certificate.mode is CertificateMode.EXTERNAL:
            return None
        return self.certificate.secret_name or f"{object_name}{CERTIFICATE_SECRET_SUFFIX}"



class HubClientCondition:
    """Condition types of a HubClient."""

    READY = "Ready"
    """Certificate ready and access provisioned on every listed vhost (or deliberately suspended)."""
    CERTIFICATE_READY = "CertificateReady"
    """The certificate exists and is not due for renewal (external mode: the CN is configured)."""
    ACCESS_PROVISIONED = "AccessProvisioned"
    """User, permissions, topic permissions and queues exist on every listed vhost."""
    SUSPENDED = "Suspended"
    """True while spec.suspended is true and access has been revoked."""
    VHOST_DEPRECATED = "VHostDeprecated"
    """True when one of the listed VHostVersions is deprecated."""


class VhostAccessState(str, enum.Enum):
    PENDING = "Pending"
    PROVISIONED = "Provisioned"
    SUSPENDED = "Suspended"
    FAILED = "Failed"


class VhostAccessStatus(ApiModel):
    """The client's access to one vhost."""

    vhost_version: VHostVersionName = Field(description="VHostVersion name, e.g. 15-15-v1.5.")
    vhost: str | None = Field(None, max_length=128, description="RabbitMQ vhost name, e.g. 15-15_v1.5.")
    state: VhostAccessState = Field(description="Pending, Provisioned, Suspended or Failed.")
    message: str | None = Field(None, max_length=4096, description="Why the access is not Provisioned, if it is not.")


class CertificateStatus(ApiModel):
    """The certificate as last observed."""

    secret_name: ObjectName | None = Field(None, description="Secret holding tls.crt, tls.key and ca.crt (not for external mode).")
    common_name: str | None = Field(None, max_length=COMMON_NAME_MAX, description="CN of the certificate: the RabbitMQ username.")
    not_after: dt.datetime | None = Field(None, description="Expiry (RFC 3339); unknown for external certificates.")
    serial: str | None = Field(None, max_length=128, description="Serial number in hexadecimal.")


class HubClientStatus(StatusBase):
    """Observed state of a HubClient."""

    username: str | None = Field(None, max_length=COMMON_NAME_MAX, description="RabbitMQ username (the certificate CN).")
    client_ids: list[ClientId] = Field(
        default_factory=list,
        max_length=MAX_ADDITIONAL_CLIENT_IDS + 1,
        description="Every client id served, clientId first.",
    )
    certificate: CertificateStatus | None = Field(None, description="Certificate Secret, CN, expiry and serial.")
    vhosts: list[VhostAccessStatus] = Field(
        default_factory=list,
        max_length=MAX_VHOSTS_PER_CLIENT,
        description="Access state on each listed vhost.",
        json_schema_extra=list_map("vhostVersion"),
    )
    ready_vhosts: int | None = Field(None, ge=0, description="How many listed vhosts are Provisioned.")


HUBCLIENT = KindInfo(
    kind="HubClient",
    plural="hubclients",
    short_names=("hc",),
    description=(
        "A Hub Santé client: an organisation endpoint (client id, e.g. fr.health.samu050) with its TLS identity, "
        "the vhosts it may use and its delivery preferences. The operator creates its RabbitMQ user "
        "(named after the certificate CN), permissions and queues."
    ),
    spec_model=HubClientSpec,
    status_model=HubClientStatus,
    printer_columns=(
        PrinterColumn("Client-ID", ".spec.clientId", description="Main client id"),
        PrinterColumn("Username", ".status.username", description="RabbitMQ username (certificate CN)"),
        PrinterColumn("Vhosts", ".status.readyVhosts", type="integer", description="Vhosts provisioned"),
        PrinterColumn("Suspended", ".spec.suspended", type="boolean", description="Access revoked"),
        READY_COLUMN,
        PrinterColumn("Cert-Expiry", ".status.certificate.notAfter", description="Certificate notAfter"),
        PrinterColumn("Cert-Mode", ".spec.certificate.mode", description="Certificate issuer", priority=1),
        AGE_COLUMN,
    ),
)
