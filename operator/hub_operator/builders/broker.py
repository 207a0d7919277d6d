"""Desired broker state of hub vhosts and clients, as pure functions of small input records.

The inputs are deliberately decoupled from the custom resources: the kopf handlers map a ``VHostVersion`` to a
:class:`VHostTopology` and a ``HubClient`` to a :class:`ClientAccess`.  Every name, routing key and regex comes
from :mod:`hub_dispatcher.protocol` (HUBSANTE.md §3), so the operator provisions exactly what the dispatcher
routes by.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from hub_dispatcher.protocol import (
    CLIENT_QUEUE_POLICY,
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DISPATCH_QUEUE,
    DISTRIBUTION_EXCHANGE,
    HUB_EXCHANGE,
    HUB_SENDER_ID,
    Permission,
    ProtocolProfile,
    TopicPermission,
    VHostProtocol,
    for_profile,
    is_valid_client_id,
)

from .broker_definitions import (
    BindingDef,
    DefinitionItem,
    Definitions,
    ExchangeDef,
    FrozenMapping,
    ItemKey,
    ItemKind,
    PermissionDef,
    PolicyDef,
    QueueDef,
    TopicPermissionDef,
    UserDef,
    VHostDef,
)

#: Tag on every user the operator creates.  Tags grant nothing outside the management UI; this one lets the
#: operator tell its own users (whose stray permissions it revokes) from users somebody else manages.
MANAGED_USER_TAG = "hub-operator"
#: Production default (HUBSANTE.md §6).
DEFAULT_MESSAGE_TTL_MS = 24 * 60 * 60 * 1000
DEFAULT_DISPATCHER_USERNAME = "dispatcher"
#: The operator's own management identity needs full permissions in the vhosts it manages: the management API
#: refuses (401) to delete a queue, exchange or binding in a vhost where the acting user has none.
MANAGEMENT_PERMISSION = Permission(configure=".*", write=".*", read=".*")


class InvalidBrokerSpec(ValueError):
    """A vhost or client specification that cannot be turned into broker definitions."""


class QueueType(str, enum.Enum):
    CLASSIC = "classic"
    QUORUM = "quorum"

    @property
    def arguments(self) -> Mapping[str, object]:
        # Classic queues use the v2 index/store: measured faster than v1 (LOCAL_COMPONENTS.md).
        if self is QueueType.QUORUM:
            return {"x-queue-type": "quorum"}
        return {"x-queue-version": 2}


@dataclass(frozen=True)
class VHostTopology:
    """What the operator needs to know about one ``VHostVersion``."""

    vhost: str
    profile: ProtocolProfile = ProtocolProfile.CURRENT
    queue_type: QueueType = QueueType.CLASSIC
    message_ttl_ms: int = DEFAULT_MESSAGE_TTL_MS
    dispatcher_username: str = DEFAULT_DISPATCHER_USERNAME

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "profile", ProtocolProfile(self.profile))
            object.__setattr__(self, "queue_type", QueueType(self.queue_type))
        except ValueError as error:
            raise InvalidBrokerSpec(f"vhost {self.vhost!r}: {error}") from None
        if not isinstance(self.vhost, str) or not self.vhost.strip() or self.vhost.startswith("/"):
            raise InvalidBrokerSpec(f"invalid vhost name {self.vhost!r}: non-empty, no leading slash")
        ttl = self.message_ttl_ms
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise InvalidBrokerSpec(f"vhost {self.vhost!r}: message TTL must be a positive integer (ms), not {ttl!r}")
        if not self.dispatcher_username or not self.dispatcher_username.strip():
            raise InvalidBrokerSpec(f"vhost {self.vhost!r}: the dispatcher username must not be empty")

    @property
    def protocol(self) -> VHostProtocol:
        return for_profile(self.profile)


@dataclass(frozen=True)
class ClientAccess:
    """What the operator needs to know about one ``HubClient``: its broker user (the certificate CN) and ids."""

    username: str
    client_ids: tuple[str, ...]
    suspended: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.username, str) or not self.username.strip():
            raise InvalidBrokerSpec("a client's username (certificate CN) must not be empty")
        if isinstance(self.client_ids, str):
            raise InvalidBrokerSpec(f"client {self.username!r}: client_ids must be a sequence, not a string")
        ids = tuple(sorted(set(self.client_ids)))
        if not ids:
            raise InvalidBrokerSpec(f"client {self.username!r} has no client id")
        invalid = [client_id for client_id in ids if not is_valid_client_id(client_id)]
        if invalid:
            raise InvalidBrokerSpec(f"client {self.username!r}: invalid client id(s) {invalid}")
        if HUB_SENDER_ID in ids:
            raise InvalidBrokerSpec(f"client {self.username!r}: {HUB_SENDER_ID} is the hub's own id")
        object.__setattr__(self, "client_ids", ids)


class OwnerKind(str, enum.Enum):
    VHOST = "vhost"
    CLIENT = "client"


@dataclass(frozen=True, order=True)
class Owner:
    """Who a desired item exists for: the operator reports changes per owner (one Event per custom resource)."""

    kind: OwnerKind
    name: str

    @classmethod
    def vhost(cls, name: str) -> Owner:
        return cls(OwnerKind.VHOST, name)

    @classmethod
    def client(cls, username: str) -> Owner:
        return cls(OwnerKind.CLIENT, username)

    def __str__(self) -> str:
        return f"{self.kind.value} {self.name}"


ItemRef = tuple[ItemKind, ItemKey]


def item_ref(item: DefinitionItem) -> ItemRef:
    return (item.kind, item.key)


@dataclass(frozen=True)
class DesiredState:
    """Desired definitions plus, for each item, the owner(s) it exists for."""

    definitions: Definitions
    owners: Mapping[ItemRef, frozenset[Owner]] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def build(cls, owned_items: Iterable[tuple[Owner, Iterable[DefinitionItem]]]) -> DesiredState:
        items: list[DefinitionItem] = []
        owners: dict[ItemRef, set[Owner]] = {}
        for owner, owner_items in owned_items:
            for item in owner_items:
                items.append(item)
                owners.setdefault(item_ref(item), set()).add(owner)
        return cls(Definitions.of(items), MappingProxyType({ref: frozenset(o) for ref, o in owners.items()}))

    def owners_of(self, item: DefinitionItem) -> frozenset[Owner]:
        return self.owners.get(item_ref(item), frozenset())

    @property
    def vhosts(self) -> frozenset[str]:
        return self.definitions.vhosts

    @property
    def usernames(self) -> frozenset[str]:
        return self.definitions.usernames

    def merge(self, *others: DesiredState) -> DesiredState:
        """Union of several desired states (e.g. several vhosts applied together); owners are united too."""
        owners: dict[ItemRef, frozenset[Owner]] = dict(self.owners)
        for state in others:
            for ref, state_owners in state.owners.items():
                owners[ref] = owners.get(ref, frozenset()) | state_owners
        definitions = self.definitions.merge(*(state.definitions for state in others))
        return DesiredState(definitions, MappingProxyType(owners))

    def with_management_access(self, username: str) -> DesiredState:
        """Add the operator's own full permission in every vhost (see :data:`MANAGEMENT_PERMISSION`)."""
        return self.merge(
            DesiredState.build((Owner.vhost(vhost), [management_permission(vhost, username)]) for vhost in self.vhosts)
        )


# -- builders ----------------------------------------------------------------------------------------------


def managed_user(username: str) -> UserDef:
    """A certificate-only user: no password, only the operator's marker tag (no management access)."""
    return UserDef(name=username, tags=frozenset({MANAGED_USER_TAG}), password_hash="")


def _permission(username: str, vhost: str, permission: Permission) -> PermissionDef:
    return PermissionDef(user=username, vhost=vhost, **_fields(permission))


def _topic_permission(username: str, vhost: str, permission: TopicPermission) -> TopicPermissionDef:
    return TopicPermissionDef(
        user=username, vhost=vhost, exchange=permission.exchange, write=permission.write, read=permission.read
    )


def _fields(permission: Permission) -> dict[str, str]:
    return {"configure": permission.configure, "write": permission.write, "read": permission.read}


def management_permission(vhost: str, username: str) -> PermissionDef:
    return _permission(username, vhost, MANAGEMENT_PERMISSION)


def _queue(topology: VHostTopology, name: str) -> QueueDef:
    return QueueDef(
        vhost=topology.vhost,
        name=name,
        durable=True,
        auto_delete=False,
        arguments=FrozenMapping(topology.queue_type.arguments),
    )


def _exchange(topology: VHostTopology, name: str, exchange_type: str) -> ExchangeDef:
    return ExchangeDef(vhost=topology.vhost, name=name, type=exchange_type, durable=True)


def vhost_items(topology: VHostTopology) -> list[DefinitionItem]:
    """The vhost and its shared topology (HUBSANTE.md §3), plus the dispatcher identity."""
    vhost, protocol = topology.vhost, topology.protocol
    return [
        VHostDef(vhost),
        _exchange(topology, HUB_EXCHANGE, "topic"),
        _exchange(topology, DISTRIBUTION_EXCHANGE, "direct"),
        _exchange(topology, DEAD_LETTER_EXCHANGE, "fanout"),
        _queue(topology, DISPATCH_QUEUE),
        _queue(topology, DEAD_LETTER_QUEUE),
        BindingDef(vhost, HUB_EXCHANGE, DISPATCH_QUEUE, protocol.dispatch_binding_key),
        BindingDef(vhost, DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, ""),
        PolicyDef(
            vhost=vhost,
            name=CLIENT_QUEUE_POLICY,
            pattern=protocol.client_queue_policy_pattern,
            apply_to="queues",
            definition=FrozenMapping(
                {"message-ttl": topology.message_ttl_ms, "dead-letter-exchange": DEAD_LETTER_EXCHANGE}
            ),
        ),
        managed_user(topology.dispatcher_username),
        _permission(topology.dispatcher_username, vhost, protocol.dispatcher_permission),
    ]


def client_queue_items(topology: VHostTopology, client_ids: Iterable[str]) -> list[QueueDef | BindingDef]:
    """The three queues of each client id and their bindings to ``distribution`` (routing key = queue name)."""
    items: list[QueueDef | BindingDef] = []
    for client_id in client_ids:
        for queue in topology.protocol.client_queues(client_id):
            items.append(_queue(topology, queue))
            items.append(BindingDef(topology.vhost, DISTRIBUTION_EXCHANGE, queue, queue))
    return items


def client_items(topology: VHostTopology, access: ClientAccess) -> list[DefinitionItem]:
    """A client's user, queues and bindings; its permissions only while it is not suspended."""
    items: list[DefinitionItem] = [managed_user(access.username), *client_queue_items(topology, access.client_ids)]
    if not access.suspended:
        protocol, vhost = topology.protocol, topology.vhost
        items.append(_permission(access.username, vhost, protocol.client_permission(access.client_ids)))
        items.append(_topic_permission(access.username, vhost, protocol.client_topic_permission(access.client_ids)))
    return items


def desired_vhost_state(topology: VHostTopology, clients: Collection[ClientAccess] = ()) -> DesiredState:
    """Everything one vhost must contain: its topology, its dispatcher and each client's access.

    Raises :class:`~.broker_definitions.ConflictingDefinitions` when two inputs disagree about one identity,
    e.g. the same username listed twice with different ids, or a client named like the dispatcher.
    """
    return DesiredState.build(
        [
            (Owner.vhost(topology.vhost), vhost_items(topology)),
            *((Owner.client(access.username), client_items(topology, access)) for access in clients),
        ]
    )
