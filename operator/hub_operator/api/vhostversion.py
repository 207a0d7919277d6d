"""VHostVersion: one vhost (``<perimeter>_v<version>``) pinned to a message-model bundle, with its dispatchers."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from hub_dispatcher import protocol
from hub_dispatcher.protocol import ProtocolProfile

from .base import AGE_COLUMN, READY_COLUMN, ApiModel, CelRule, KindInfo, PrinterColumn, cel, immutable
from .broker import DEFAULT_BROKER_SECRET_NAME, BrokerRef
from .common import DeletionPolicy, StatusBase
from .dispatching import DispatcherSettings
from .fieldtypes import OBJECT_NAME_MAX, MessageTTL, PerimeterName, Version, parse_duration
from .modelbundle import ModelBundle
from .perimeter import PerimeterSpec


class QueueType(str, enum.Enum):
    CLASSIC = "classic"
    QUORUM = "quorum"


class LifecycleState(str, enum.Enum):
    ACTIVE = "active"
    DEPRECATED = "deprecated"


class PerimeterRef(ApiModel):
    """A reference to a Perimeter in the same namespace."""

    name: PerimeterName = Field(description="Perimeter name (its metadata.name), e.g. 15-15.")


@dataclass(frozen=True)
class EffectiveSettings:
    """What a vhost actually runs with: Perimeter defaults merged with the VHostVersion's overrides."""

    message_ttl: dt.timedelta
    dispatcher: DispatcherSettings
    allowed_use_cases: tuple[str, ...]

    @property
    def message_ttl_ms(self) -> int:
        """The ``message-ttl`` policy value RabbitMQ expects."""
        return round(self.message_ttl.total_seconds() * 1000)


class VHostVersionSpec(ApiModel):
    """Desired state of a VHostVersion: the vhost <perimeterRef.name>_v<version> on a broker."""

    perimeter_ref: PerimeterRef = Field(
        description="The Perimeter (same namespace) this vhost belongs to. Immutable.",
        json_schema_extra=cel(immutable("perimeterRef", "it names the vhost; create a new VHostVersion instead")),
    )
    version: Version = Field(
        description="Hub Santé specification version of the vhost, e.g. 1.5 for vhost 15-15_v1.5. Immutable.",
        json_schema_extra=cel(immutable("version", "it names the vhost; create a new VHostVersion instead")),
    )
    models: ModelBundle = Field(
        description=(
            "Message-model bundle (JSON Schemas and XSDs) the dispatchers validate messages against. Bundles "
            "exceed 1 MiB, so dispatchers read a directory: set at most one of path, image or configMaps; none "
            "means the bundle shipped in the dispatcher image under <models root>/<version>."
        )
    )
    profile: ProtocolProfile = Field(
        ProtocolProfile.CURRENT,
        description=(
            "Wire protocol: current (clients publish with routing key = client id, queues <id>.message/.ack/.info) "
            "or legacy (routing keys <id>.out.<type>, queues <id>.in.<type>, hubs <= 0.8). Immutable: queue names depend on it."
        ),
        json_schema_extra=cel(immutable("profile", "queue names depend on it; create a new VHostVersion instead")),
    )
    queue_type: QueueType = Field(
        QueueType.CLASSIC,
        description="RabbitMQ queue type of the vhost's queues: classic or quorum (replicated). Immutable: RabbitMQ cannot convert existing queues.",
        json_schema_extra=cel(immutable("queueType", "RabbitMQ cannot convert existing queues; create a new VHostVersion instead")),
    )
    message_ttl: MessageTTL | None = Field(
        None,
        alias="messageTTL",
        description="Overrides the Perimeter's messageTTL for this vhost (a duration between 1s and 720h, e.g. 12h).",
    )
    dispatcher: DispatcherSettings | None = Field(
        None, description="Overrides of the Perimeter's dispatcher settings; each field set replaces the Perimeter's."
    )
    state: LifecycleState = Field(
        LifecycleState.ACTIVE,
        description="active, or deprecated: still served, but HubClients using it report a VHostDeprecated condition.",
    )
    broker_ref: BrokerRef | None = Field(
        None,
        description=f"Broker connection Secret; unset = the namespace default Secret ({DEFAULT_BROKER_SECRET_NAME}).",
    )
    deletion_policy: DeletionPolicy = Field(
        DeletionPolicy.RETAIN,
        description=(
            "What deleting this VHostVersion does on the broker: retain (default) stops the dispatchers and keeps "
            "the vhost with its queued messages; delete removes the vhost and every message in it."
        ),
    )

    @property
    def perimeter(self) -> str:
        return self.perimeter_ref.name

    @property
    def vhost_name(self) -> str:
        return protocol.vhost_name(self.perimeter, self.version)

    @property
    def protocol(self) -> protocol.VHostProtocol:
        return protocol.for_profile(self.profile)

    @property
    def broker_secret_name(self) -> str:
        return self.broker_ref.secret_name if self.broker_ref else DEFAULT_BROKER_SECRET_NAME

    def effective_settings(self, perimeter: PerimeterSpec) -> EffectiveSettings:
        ttl = self.message_ttl if self.message_ttl is not None else perimeter.message_ttl
        return EffectiveSettings(
            message_ttl=parse_duration(ttl),
            dispatcher=perimeter.dispatcher.overridden_by(self.dispatcher),
            allowed_use_cases=tuple(perimeter.allowed_use_cases),
        )


def expected_object_name(perimeter: str, version: str) -> str:
    """The only metadata.name a VHostVersion may have: one object per vhost and namespace."""
    return f"{perimeter}-v{version}"


#: Shape of a VHostVersion name (what HubClient.spec.vhostVersions items must look like).
VHOSTVERSION_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?-v[0-9]+\.[0-9]+(\.[0-9]+)?$"
#: <perimeter (42)>-v<version (16)> fits; 63 keeps the name usable as a label value.
VHOSTVERSION_NAME_MAX = 63
VHostVersionName = Annotated[
    str, Field(pattern=VHOSTVERSION_NAME_PATTERN, min_length=1, max_length=VHOSTVERSION_NAME_MAX)
]


class VHostVersionCondition:
    """Condition types of a VHostVersion."""

    READY = "Ready"
    """The vhost is provisioned and at least one dispatcher is ready (or replicas is 0)."""
    BROKER_PROVISIONED = "BrokerProvisioned"
    """Vhost, exchanges, dispatch queues, TTL/dead-letter policy and dispatcher user exist on the broker."""
    MODELS_AVAILABLE = "ModelsAvailable"
    """The model bundle was found and loaded by the dispatchers."""
    DISPATCHER_AVAILABLE = "DispatcherAvailable"
    """The desired number of dispatchers is ready."""
    VHOST_CLAIMED = "VhostClaimed"
    """False when another namespace already owns this vhost on a shared broker."""


class DispatcherStatus(ApiModel):
    """Dispatchers of the vhost as last observed."""

    replicas: int | None = Field(None, ge=0, description="Dispatchers desired now (fixed or decided by autoscaling).")
    ready_replicas: int | None = Field(None, ge=0, description="Dispatchers connected and consuming.")


class VHostVersionStatus(StatusBase):
    """Observed state of a VHostVersion."""

    vhost: str | None = Field(None, max_length=128, description="RabbitMQ vhost name, e.g. 15-15_v1.5.")
    broker_secret_name: str | None = Field(
        None, max_length=OBJECT_NAME_MAX, description="Broker Secret actually used (brokerRef or the namespace default)."
    )
    message_ttl: str | None = Field(
        None, alias="messageTTL", max_length=32, description="Effective message TTL (override or the Perimeter's)."
    )
    dispatcher: DispatcherStatus | None = Field(None, description="Dispatcher replicas desired and ready.")
    clients: int | None = Field(None, ge=0, description="HubClients currently provisioned on this vhost.")


_NAME_RULE = CelRule(
    rule="self.metadata.name == self.spec.perimeterRef.name + '-v' + self.spec.version",
    message_expression=(
        "'metadata.name must be ' + self.spec.perimeterRef.name + '-v' + self.spec.version + "
        "' (<perimeterRef.name>-v<version>) so that only one VHostVersion per namespace claims vhost ' + "
        "self.spec.perimeterRef.name + '_v' + self.spec.version"
    ),
    field_path=".metadata.name",
)

VHOSTVERSION = KindInfo(
    kind="VHostVersion",
    plural="vhostversions",
    short_names=("vhv",),
    description=(
        "A Hub Santé vhost: one perimeter at one specification version (vhost <perimeter>_v<version>), "
        "its message models, protocol profile, queues and dispatchers. The object name must be "
        "<perimeter>-v<version> (e.g. 15-15-v1.5 for vhost 15-15_v1.5)."
    ),
    spec_model=VHostVersionSpec,
    status_model=VHostVersionStatus,
    printer_columns=(
        PrinterColumn("Vhost", ".status.vhost", description="RabbitMQ vhost name"),
        PrinterColumn("Perimeter", ".spec.perimeterRef.name", description="Perimeter"),
        PrinterColumn("Models", ".spec.models.version", description="Message-model bundle version"),
        PrinterColumn("Profile", ".spec.profile", description="Wire protocol profile"),
        PrinterColumn("State", ".spec.state", description="Lifecycle state"),
        PrinterColumn("Dispatchers", ".status.dispatcher.readyReplicas", type="integer",
                      description="Dispatchers ready"),
        READY_COLUMN,
        AGE_COLUMN,
    ),
    rules=(_NAME_RULE,),
    metadata_name={"type": "string", "maxLength": VHOSTVERSION_NAME_MAX},
)
