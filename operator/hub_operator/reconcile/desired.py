"""Pure planning of one vhost: its VHostVersion, Perimeter and every HubClient using it -> the desired broker state.

Clients that cannot be provisioned are rejected here, each with a reason for its status, instead of failing the
whole vhost: an invalid spec, a CN already used by an older HubClient of the namespace (the user is one broker
identity), a client id already served by an older HubClient in the vhost (its queues would be shared), or a CN
equal to the dispatcher's.  Ties go to the oldest object, so the verdict is stable across restarts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from hub_dispatcher.message import MessageFormat
from hub_dispatcher.preferences import ClientPreference
from hub_dispatcher.protocol import is_health_actor

from hub_operator.api.hubclient import COMMON_NAME_MAX
from hub_operator.api.perimeter import PerimeterSpec
from hub_operator.api.vhostversion import EffectiveSettings, VHostVersionSpec
from hub_operator.builders.broker import (
    ClientAccess,
    DesiredState,
    InvalidBrokerSpec,
    QueueType,
    VHostTopology,
    desired_vhost_state,
)
from hub_operator.inventory import ClientRecord

DISPATCHER_CN_PREFIX = "dispatcher."


def dispatcher_username(vhost: str) -> str:
    """The dispatcher identity of a vhost (certificate CN = RabbitMQ username), unique per vhost on a broker."""
    candidate = DISPATCHER_CN_PREFIX + vhost
    if len(candidate) <= COMMON_NAME_MAX:
        return candidate
    return DISPATCHER_CN_PREFIX + hashlib.sha256(vhost.encode()).hexdigest()[:32]


class RejectionReason:
    INVALID_SPEC = "InvalidSpec"
    USERNAME_CONFLICT = "UsernameConflict"
    CLIENT_ID_CONFLICT = "ClientIdConflict"
    RESERVED_USERNAME = "ReservedUsername"
    INVALID_ACCESS = "InvalidAccess"


@dataclass(frozen=True)
class Rejection:
    reason: str
    message: str


@dataclass(frozen=True)
class VhostPlan:
    topology: VHostTopology
    effective: EffectiveSettings
    desired: DesiredState
    accepted: tuple[ClientRecord, ...]
    """Clients whose access is in the desired state (suspended ones included, without permissions)."""
    rejected: Mapping[str, Rejection] = field(default_factory=dict)
    """By HubClient name."""
    preferences: Mapping[str, ClientPreference] = field(default_factory=dict)
    """By client id, for the dispatchers (every id of every accepted client)."""

    def access_of(self, client: ClientRecord) -> ClientAccess:
        assert client.spec is not None
        return ClientAccess(client.spec.username, client.spec.all_client_ids, suspended=client.spec.suspended)


def topology_of(spec: VHostVersionSpec, effective: EffectiveSettings) -> VHostTopology:
    return VHostTopology(
        vhost=spec.vhost_name,
        profile=spec.profile,
        queue_type=QueueType(spec.queue_type.value),
        message_ttl_ms=effective.message_ttl_ms,
        dispatcher_username=dispatcher_username(spec.vhost_name),
    )


def plan_vhost(
    spec: VHostVersionSpec,
    perimeter: PerimeterSpec,
    clients: Sequence[ClientRecord],
    *,
    username_holder: Callable[[str], str | None] = lambda username: None,
) -> VhostPlan:
    """The desired state of a vhost with every client that may use it.

    ``clients`` are the HubClients listing this VHostVersion (deleting ones are left out: their access goes);
    ``username_holder(cn)`` names the HubClient of the namespace that owns a CN (the oldest using it).
    Raises :class:`InvalidBrokerSpec` only for a vhost that cannot be built at all.
    """
    effective = spec.effective_settings(perimeter)
    topology = topology_of(spec, effective)
    accepted: list[ClientRecord] = []
    accesses: list[ClientAccess] = []
    rejected: dict[str, Rejection] = {}
    served: dict[str, str] = {}  # client id -> HubClient name
    for client in sorted(clients, key=lambda record: record.seniority):
        if client.deleting:
            continue
        rejection = _rejection(client, topology, served, username_holder)
        if rejection is None:
            assert client.spec is not None
            try:
                access = ClientAccess(client.spec.username, client.spec.all_client_ids,
                                      suspended=client.spec.suspended)
            except InvalidBrokerSpec as error:
                rejection = Rejection(RejectionReason.INVALID_ACCESS, str(error))
        if rejection is not None:
            rejected[client.name] = rejection
            continue
        accepted.append(client)
        accesses.append(access)
        for client_id in access.client_ids:
            served[client_id] = client.name
    return VhostPlan(
        topology=topology,
        effective=effective,
        desired=desired_vhost_state(topology, accesses),
        accepted=tuple(accepted),
        rejected=rejected,
        preferences=_preferences(accepted),
    )


def _rejection(
    client: ClientRecord,
    topology: VHostTopology,
    served: Mapping[str, str],
    username_holder: Callable[[str], str | None],
) -> Rejection | None:
    spec = client.spec
    if spec is None:
        return Rejection(RejectionReason.INVALID_SPEC, f"invalid spec: {client.spec_error}")
    if spec.username == topology.dispatcher_username:
        return Rejection(RejectionReason.RESERVED_USERNAME,
                         f"CN {spec.username} is the dispatcher identity of vhost {topology.vhost}")
    holder = username_holder(spec.username)
    if holder is not None and holder != client.name:
        return Rejection(RejectionReason.USERNAME_CONFLICT,
                         f"CN {spec.username} is already used by HubClient {holder}: one CN is one broker user")
    taken = [(client_id, served[client_id]) for client_id in spec.all_client_ids if client_id in served]
    if taken:
        described = ", ".join(f"{client_id} (by HubClient {owner})" for client_id, owner in taken)
        return Rejection(RejectionReason.CLIENT_ID_CONFLICT, f"client id already served in vhost {topology.vhost}: "
                         f"{described}")
    return None


def _preferences(clients: Sequence[ClientRecord]) -> dict[str, ClientPreference]:
    preferences: dict[str, ClientPreference] = {}
    for client in clients:
        assert client.spec is not None
        wanted = MessageFormat(client.spec.preferences.format.value)
        editor = client.spec.preferences.editor or ""
        for client_id in client.spec.all_client_ids:
            # Clients outside fr.health always receive XML (HUBSANTE.md §5.9): say so in the file too.
            message_format = wanted if is_health_actor(client_id) else MessageFormat.XML
            preferences[client_id] = ClientPreference(message_format, editor)
    return preferences
