"""The one generic apply path from desired broker state to RabbitMQ, and the explicit removal operations.

:func:`apply_desired_state` observes the vhosts concerned (a per-vhost definitions export, their permissions,
topic permissions and connections, the users involved: a handful of requests whatever their size), diffs,
and applies the difference in bulk: one definitions import for everything missing or altered.  A re-run on an
unchanged broker only reads.

What it removes on its own is limited to *access*: permissions and topic permissions held by users the
operator manages but no desired state grants (a suspended or deleted client), connections of users left
without access (existing connections survive a permission or user deletion), and bindings on the hub's own
exchanges that no desired state has (they could leak or misroute messages).  It never deletes a queue, a vhost
or a user: that is :func:`remove_client` / :func:`remove_vhost`, called explicitly.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .builders.broker import (
    MANAGED_USER_TAG,
    ClientAccess,
    DesiredState,
    Owner,
    VHostTopology,
    client_queue_items,
    managed_user,
)
from .builders.broker_definitions import (
    BindingDef,
    DefinitionItem,
    Definitions,
    ExchangeDef,
    ItemKind,
    PermissionDef,
    QueueDef,
    TopicPermissionDef,
    UserDef,
    VHostDef,
)
from .builders.broker_diff import Alteration, diff
from .clients.broker_api import BrokerManagement, BrokerNotFound, BrokerRejected, ConnectionInfo

T = TypeVar("T")

#: Parallel single-object requests (deletions, closes); the bulk work is one import anyway.
DEFAULT_CONCURRENCY = 8
#: How long to keep trying to close, by name, a connection younger than the management statistics interval
#: (5 s by default on a broker; the API only finds connections by name in its statistics).
DEFAULT_SETTLE_SECONDS = 10.0
_SETTLE_POLL_SECONDS = 0.25
REVOCATION_REASON = "hub-operator: access to this vhost was revoked"
REMOVAL_REASON = "hub-operator: this client was removed"
VHOST_REMOVAL_REASON = "hub-operator: this vhost was decommissioned"


class ChangeAction(str, enum.Enum):
    CREATED = "created"  # missing, and its owner had nothing yet in this vhost: first provisioning
    REPAIRED = "repaired"  # missing although its owner is provisioned: deleted behind the operator's back
    UPDATED = "updated"  # present but altered: overwritten by the import
    RECREATED = "recreated"  # exchange of the wrong kind: deleted and declared again (exchanges hold no messages)
    REVOKED = "revoked"  # permission of a managed user that no desired state grants
    UNBOUND = "unbound"  # binding on a hub exchange that no desired state has
    CONFLICT = "conflict"  # queue with other properties: left alone, deleting it would drop its messages
    UNMANAGED = "unmanaged"  # extra item left in place (retained queue, someone else's user or policy)
    UNRESOLVED = "unresolved"  # still missing or different after the apply


#: Actions that changed the broker.
WRITING_ACTIONS = frozenset(
    {
        ChangeAction.CREATED,
        ChangeAction.REPAIRED,
        ChangeAction.UPDATED,
        ChangeAction.RECREATED,
        ChangeAction.REVOKED,
        ChangeAction.UNBOUND,
    }
)
#: Actions that mean the broker is not (yet) in the desired state.
BLOCKING_ACTIONS = frozenset({ChangeAction.CONFLICT, ChangeAction.UNRESOLVED})


@dataclass(frozen=True)
class Change:
    action: ChangeAction
    item: DefinitionItem
    owners: frozenset[Owner]
    #: The broker's version of the item, for updates and conflicts.
    previous: DefinitionItem | None = None

    def describe(self) -> str:
        if self.previous is not None:
            return f"{self.action.value} {Alteration(self.item, self.previous).describe()}"
        return f"{self.action.value} {self.item.describe()}"


@dataclass(frozen=True)
class SyncResult:
    """What one apply found and did; the operator turns it into Events and conditions."""

    vhosts: tuple[str, ...]
    changes: tuple[Change, ...]
    closed_connections: tuple[ConnectionInfo, ...]
    imported_items: int
    elapsed_seconds: float

    def of(self, *actions: ChangeAction) -> tuple[Change, ...]:
        return tuple(change for change in self.changes if change.action in actions)

    def for_owner(self, owner: Owner) -> tuple[Change, ...]:
        return tuple(change for change in self.changes if owner in change.owners)

    @property
    def changed(self) -> bool:
        return bool(self.of(*WRITING_ACTIONS)) or bool(self.closed_connections)

    @property
    def drift(self) -> tuple[Change, ...]:
        """Changes undoing something done behind the operator's back."""
        return self.of(ChangeAction.REPAIRED, ChangeAction.UPDATED, ChangeAction.RECREATED)

    @property
    def converged(self) -> bool:
        return not self.of(*BLOCKING_ACTIONS)


@dataclass(frozen=True)
class ObservedState:
    definitions: Definitions
    connections: tuple[ConnectionInfo, ...] = ()


@dataclass(frozen=True)
class SyncPlan:
    """The pure part of an apply: what to import, revoke, unbind and recreate, and how to report it."""

    changes: tuple[Change, ...]
    to_import: Definitions
    to_revoke: tuple[PermissionDef | TopicPermissionDef, ...]
    to_unbind: tuple[BindingDef, ...]
    exchanges_to_recreate: Definitions
    #: Per vhost, the users that hold a permission there once the plan is applied.
    users_with_access: Mapping[str, frozenset[str]]

    def stray_connections(self, connections: Iterable[ConnectionInfo]) -> tuple[ConnectionInfo, ...]:
        """Connections of users without access to their vhost: they must be closed to end that access."""
        return tuple(
            c
            for c in connections
            if c.vhost in self.users_with_access and c.user not in self.users_with_access[c.vhost]
        )


# -- pure planning -----------------------------------------------------------------------------------------


def _footprints(desired: DesiredState, actual: Definitions) -> set[tuple[Owner, str]]:
    """(owner, vhost) pairs for which something desired already exists: missing items there are drift."""
    found: set[tuple[Owner, str]] = set()
    for item in desired.definitions:
        if item.vhost is not None and actual.get(item.kind, item.key) is not None:
            found.update((owner, item.vhost) for owner in desired.owners_of(item))
    return found


def _is_repair(
    item: DefinitionItem, owners: Collection[Owner], footprints: set[tuple[Owner, str]], provisioned: set[Owner]
) -> bool:
    if item.vhost is None:  # a user is global: drift when its owner is provisioned in any vhost
        return not provisioned.isdisjoint(owners)
    return any((owner, item.vhost) in footprints for owner in owners)


def plan_sync(desired: DesiredState, actual: Definitions, *, prune_bindings: bool = True) -> SyncPlan:
    """Decide what an apply does; ``actual`` must cover the desired vhosts and users (see :func:`observe`)."""
    difference = diff(desired.definitions, actual)
    footprints = _footprints(desired, actual)
    provisioned = {owner for owner, _ in footprints}
    changes: list[Change] = []
    for item in difference.missing:
        owners = desired.owners_of(item)
        repair = _is_repair(item, owners, footprints, provisioned)
        action = ChangeAction.REPAIRED if repair else ChangeAction.CREATED
        changes.append(Change(action, item, owners))
    for alteration in difference.updates:
        owners = desired.owners_of(alteration.desired)
        changes.append(Change(ChangeAction.UPDATED, alteration.desired, owners, alteration.actual))
    recreate: list[DefinitionItem] = []
    for alteration in difference.conflicts:
        action = ChangeAction.RECREATED if alteration.kind is ItemKind.EXCHANGE else ChangeAction.CONFLICT
        if action is ChangeAction.RECREATED:
            recreate.append(alteration.desired)
        changes.append(Change(action, alteration.desired, desired.owners_of(alteration.desired), alteration.actual))

    def is_managed(username: str) -> bool:
        user = actual.get(ItemKind.USER, (username,))
        return username in desired.usernames or (isinstance(user, UserDef) and MANAGED_USER_TAG in user.tags)

    desired_exchanges = desired.definitions.section(ItemKind.EXCHANGE)
    revoke: list[PermissionDef | TopicPermissionDef] = []
    unbind: list[BindingDef] = []
    access: dict[str, set[str]] = {vhost: set() for vhost in desired.vhosts}
    for permission in desired.definitions.items(ItemKind.PERMISSION):
        if isinstance(permission, PermissionDef):
            access[permission.vhost].add(permission.user)
    for item in difference.extra:
        if isinstance(item, UserDef):
            continue  # users are global: one vhost's view cannot call a user extra
        owners = _extra_owners(desired, item)
        if isinstance(item, PermissionDef | TopicPermissionDef) and is_managed(item.user):
            revoke.append(item)
            changes.append(Change(ChangeAction.REVOKED, item, owners))
        elif isinstance(item, BindingDef) and prune_bindings and (item.vhost, item.source) in desired_exchanges:
            unbind.append(item)
            changes.append(Change(ChangeAction.UNBOUND, item, owners))
        else:
            if isinstance(item, PermissionDef):
                access.setdefault(item.vhost, set()).add(item.user)
            changes.append(Change(ChangeAction.UNMANAGED, item, owners))
    recreated = Definitions.of(recreate)
    return SyncPlan(
        changes=tuple(changes),
        to_import=difference.to_import(),
        to_revoke=tuple(revoke),
        to_unbind=tuple(unbind),
        exchanges_to_recreate=recreated,
        users_with_access={vhost: frozenset(users) for vhost, users in access.items()},
    )


def _extra_owners(desired: DesiredState, item: DefinitionItem) -> frozenset[Owner]:
    """Whom an undesired item concerns: the user's owner for access items, the vhost otherwise."""
    if isinstance(item, PermissionDef | TopicPermissionDef):
        return desired.owners_of(managed_user(item.user)) or frozenset({Owner.client(item.user)})
    return frozenset({Owner.vhost(item.vhost)}) if item.vhost else frozenset()


def _recreation_import(desired: DesiredState, exchanges: Definitions) -> Definitions:
    """Recreated exchanges and every desired binding from them (deleting an exchange drops its bindings)."""
    sources = set(exchanges.section(ItemKind.EXCHANGE))
    bindings = [b for b in desired.definitions.items(ItemKind.BINDING) if (b.vhost, b.source) in sources]  # type: ignore[union-attr]
    return exchanges.merge(Definitions.of(bindings))


# -- observation -------------------------------------------------------------------------------------------


async def _gather(*awaitables: Awaitable[T]) -> list[T]:
    """Like ``asyncio.gather`` but lets every request finish before raising the first error (no orphan tasks)."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


async def _run_limited(calls: Iterable[Callable[[], Awaitable[T]]], limit: int = DEFAULT_CONCURRENCY) -> list[T]:
    semaphore = asyncio.Semaphore(limit)

    async def run(call: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await call()

    return await _gather(*(run(call) for call in calls))


async def _settle(*tasks: asyncio.Task[Any]) -> None:
    """Wait for every task, then raise the first failure (no orphan requests left running)."""
    await asyncio.wait(tasks)
    errors = [task.exception() for task in tasks]  # retrieve every one, so asyncio does not log the others
    for error in errors:
        if error is not None:
            raise error


async def _observe_vhost(
    broker: BrokerManagement, vhost: str, with_connections: bool
) -> tuple[list[DefinitionItem], list[ConnectionInfo]]:
    export = asyncio.ensure_future(broker.export_definitions(vhost))
    permissions = asyncio.ensure_future(broker.list_permissions(vhost))
    topic_permissions = asyncio.ensure_future(broker.list_topic_permissions(vhost))
    connections = asyncio.ensure_future(broker.list_connections(vhost=vhost) if with_connections else _nothing())
    try:
        await _settle(export, permissions, topic_permissions, connections)
    except BrokerNotFound:
        return [], []  # the vhost does not exist (yet)
    items: list[DefinitionItem] = [VHostDef(vhost), *Definitions.from_api(export.result(), vhost=vhost)]
    items += [PermissionDef.from_api(entry, vhost) for entry in permissions.result()]
    items += [TopicPermissionDef.from_api(entry, vhost) for entry in topic_permissions.result()]
    return items, connections.result()


async def _nothing() -> list[ConnectionInfo]:
    return []


async def observe(
    broker: BrokerManagement, vhosts: Collection[str], usernames: Collection[str], *, with_connections: bool = True
) -> ObservedState:
    """The broker's state for these vhosts, plus the given users and every user holding access to them."""
    users = asyncio.ensure_future(broker.list_users())
    per_vhost = [asyncio.ensure_future(_observe_vhost(broker, vhost, with_connections)) for vhost in sorted(vhosts)]
    await _settle(users, *per_vhost)
    items = [item for task in per_vhost for item in task.result()[0]]
    involved = set(usernames) | {item.user for item in items if isinstance(item, PermissionDef | TopicPermissionDef)}
    items += [UserDef.from_api(entry) for entry in users.result() if entry.get("name") in involved]
    connections = tuple(c for task in per_vhost for c in task.result()[1])
    return ObservedState(Definitions.of(items), connections)


# -- the apply path ----------------------------------------------------------------------------------------


#: An import that lost a creation race is sent again, at most this many times in all.
IMPORT_ATTEMPTS = 3


def _lost_a_creation_race(error: BrokerRejected) -> bool:
    return error.status == 400 and "already_exists" in error.reason


async def import_definitions(broker: BrokerManagement, definitions: Definitions) -> None:
    """One definitions import, sent again when it lost a creation race.

    RabbitMQ 3.10 creates an imported user with a check then an insert: two imports creating the same user at once
    (a new client on two vhosts, whose runs import it together) make one fail with 400 ``user_already_exists``
    (seen by tests/system/test_scale_operator.py).  An import is idempotent and the user now exists, so sending it
    again applies the rest.
    """
    for attempt in range(1, IMPORT_ATTEMPTS + 1):
        try:
            await broker.import_definitions(definitions.to_api())
            return
        except BrokerRejected as error:
            if attempt == IMPORT_ATTEMPTS or not _lost_a_creation_race(error):
                raise


async def apply_desired_state(
    broker: BrokerManagement,
    desired: DesiredState,
    *,
    prune_bindings: bool = True,
    close_stray_connections: bool = True,
    verify: bool = True,
    reason: str = REVOCATION_REASON,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
) -> SyncResult:
    """Bring the desired vhosts (and their users) to ``desired``; idempotent, a re-run only reads.

    Order matters for security: stray access is revoked before anything is created, and connections are
    closed last, once no permission lets them come back.  With ``verify`` the broker is read again after a
    write, and anything still not as desired (an import skips, e.g., a binding to a queue that could not be
    declared) is reported as UNRESOLVED instead of being claimed as done.
    """
    started = time.perf_counter()
    desired = desired.with_management_access(broker.username)
    observed = await observe(broker, desired.vhosts, desired.usernames, with_connections=close_stray_connections)
    plan = plan_sync(desired, observed.definitions, prune_bindings=prune_bindings)

    await _run_limited(_revocation(broker, item) for item in plan.to_revoke)
    imported = 0
    if len(plan.to_import):
        await import_definitions(broker, plan.to_import)
        imported += len(plan.to_import)
    if len(plan.exchanges_to_recreate):
        await _run_limited(
            _deletion(broker.delete_exchange, exchange.vhost, exchange.name)
            for exchange in plan.exchanges_to_recreate
            if isinstance(exchange, ExchangeDef)
        )
        recreation = _recreation_import(desired, plan.exchanges_to_recreate)
        await import_definitions(broker, recreation)
        imported += len(recreation)
    await _run_limited(_unbinding(broker, binding) for binding in plan.to_unbind)
    closed: tuple[ConnectionInfo, ...] = ()
    if close_stray_connections:
        closed = await _disconnect_stray(broker, plan, observed.connections, reason, settle_seconds)

    changes = list(plan.changes)
    wrote = imported or plan.to_revoke or plan.to_unbind
    if verify and wrote:
        after = await observe(broker, desired.vhosts, desired.usernames, with_connections=False)
        remaining = diff(desired.definitions, after.definitions)
        changes += [Change(ChangeAction.UNRESOLVED, item, desired.owners_of(item)) for item in remaining.missing]
        changes += [
            Change(ChangeAction.UNRESOLVED, a.desired, desired.owners_of(a.desired), a.actual)
            for a in remaining.altered
            if a.kind is not ItemKind.QUEUE  # queue conflicts are already reported as such
        ]
    return SyncResult(
        vhosts=tuple(sorted(desired.vhosts)),
        changes=tuple(changes),
        closed_connections=closed,
        imported_items=imported,
        elapsed_seconds=time.perf_counter() - started,
    )


async def _disconnect_stray(
    broker: BrokerManagement,
    plan: SyncPlan,
    listed: Iterable[ConnectionInfo],
    reason: str,
    settle_seconds: float,
) -> tuple[ConnectionInfo, ...]:
    """Close connections of users left without access.

    Users revoked just now may have connected a moment ago: their connections are found through the per-user
    listing, which is immediate.  Older stray connections (a suspended or deleted user's) are in the per-vhost
    listing, which comes from statistics; no new one can appear there, as such users cannot connect.
    """
    revoked: dict[str, set[str]] = {}
    for item in plan.to_revoke:
        revoked.setdefault(item.user, set()).add(item.vhost)
    per_user = await _run_limited(
        _disconnecting(broker, user, vhosts, reason, settle_seconds) for user, vhosts in sorted(revoked.items())
    )
    others = [c for c in plan.stray_connections(listed) if c.user not in revoked]
    return tuple(c for closed in per_user for c in closed) + await _close(broker, others, reason)


def _disconnecting(
    broker: BrokerManagement, username: str, vhosts: Collection[str], reason: str, settle_seconds: float
) -> Callable[[], Awaitable[tuple[ConnectionInfo, ...]]]:
    return lambda: disconnect_user(broker, username, vhosts, reason=reason, settle_seconds=settle_seconds)


async def disconnect_user(
    broker: BrokerManagement,
    username: str,
    vhosts: Collection[str] | None = None,
    *,
    reason: str = REVOCATION_REASON,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
) -> tuple[ConnectionInfo, ...]:
    """Close the user's connections in these vhosts (every vhost when None), brand-new ones included.

    When that is all of its connections they go in one immediate call.  Otherwise each is closed by name,
    retrying for up to ``settle_seconds`` a connection still too young to be found by name.
    """
    connections = await broker.list_connections(username=username)
    targets = [c for c in connections if vhosts is None or c.vhost in vhosts]
    if not targets:
        return ()
    if len(targets) == len(connections):
        await broker.close_user_connections(username, reason)
        return tuple(targets)
    pending = {c.name: c for c in targets}
    closed: list[ConnectionInfo] = []
    deadline = time.monotonic() + settle_seconds
    while True:
        attempts = list(pending.values())
        outcomes = await _run_limited(_closing(broker, c, reason) for c in attempts)
        closed += [c for c, done in zip(attempts, outcomes, strict=True) if done]
        open_now = {c.name for c in await broker.list_connections(username=username)}
        pending = {name: c for name, c in pending.items() if name in open_now}
        if not pending or time.monotonic() >= deadline:
            return tuple(closed)  # leftovers are closed by the next apply's sweep
        await asyncio.sleep(_SETTLE_POLL_SECONDS)


def _deletion(delete: Callable[[str, str], Awaitable[bool]], *args: str) -> Callable[[], Awaitable[bool]]:
    return lambda: delete(*args)


def _revocation(broker: BrokerManagement, item: PermissionDef | TopicPermissionDef) -> Callable[[], Awaitable[bool]]:
    if isinstance(item, PermissionDef):
        return _deletion(broker.delete_permission, item.vhost, item.user)
    return _deletion(broker.delete_topic_permissions, item.vhost, item.user)


def _closing(broker: BrokerManagement, connection: ConnectionInfo, reason: str) -> Callable[[], Awaitable[bool]]:
    return lambda: broker.close_connection(connection.name, reason)


def _unbinding(broker: BrokerManagement, binding: BindingDef) -> Callable[[], Awaitable[bool]]:
    return lambda: broker.unbind(
        binding.vhost,
        binding.source,
        binding.destination,
        binding.routing_key,
        binding.arguments.thaw(),
        binding.destination_type,
    )


async def _close(
    broker: BrokerManagement, connections: Iterable[ConnectionInfo], reason: str
) -> tuple[ConnectionInfo, ...]:
    targets = list(connections)
    closed = await _run_limited(_closing(broker, c, reason) for c in targets)
    return tuple(c for c, done in zip(targets, closed, strict=True) if done)


# -- explicit operations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemovalResult:
    """What an explicit operation deleted (``removed``), deliberately kept (``retained``) and disconnected."""

    removed: tuple[DefinitionItem, ...] = ()
    retained: tuple[DefinitionItem, ...] = ()
    closed_connections: tuple[ConnectionInfo, ...] = ()


@dataclass(frozen=True)
class RevocationResult:
    username: str
    #: Vhosts where a permission / topic permissions existed and were removed.
    permissions_removed: tuple[str, ...]
    topic_permissions_removed: tuple[str, ...]
    closed_connections: tuple[ConnectionInfo, ...]


async def revoke_client(
    broker: BrokerManagement,
    username: str,
    vhosts: Collection[str],
    *,
    reason: str = REVOCATION_REASON,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
) -> RevocationResult:
    """Suspension: remove the user's permissions and topic permissions in these vhosts, then close its
    connections there.  The user and its queues stay; a reconnect is refused (no access to the vhost).

    Permissions go first, so no new connection can open while the existing ones are being closed.
    """
    targets = sorted(set(vhosts))
    permissions, topic_permissions = await _gather(
        _run_limited(_deletion(broker.delete_permission, vhost, username) for vhost in targets),
        _run_limited(_deletion(broker.delete_topic_permissions, vhost, username) for vhost in targets),
    )
    return RevocationResult(
        username=username,
        permissions_removed=tuple(v for v, done in zip(targets, permissions, strict=True) if done),
        topic_permissions_removed=tuple(v for v, done in zip(targets, topic_permissions, strict=True) if done),
        closed_connections=await disconnect_user(
            broker, username, targets, reason=reason, settle_seconds=settle_seconds
        ),
    )


async def remove_client(
    broker: BrokerManagement,
    access: ClientAccess,
    topologies: Iterable[VHostTopology],
    *,
    delete_queues: bool,
    keep_client_ids: Collection[str] = (),
    reason: str = REMOVAL_REASON,
) -> RemovalResult:
    """Deletion of a client: its user (and with it every permission), its connections, and in each vhost
    either its queues (``delete_queues``) or only their bindings, so the queues keep their messages while the
    dispatcher stops routing to them.  ``keep_client_ids`` protects ids another client still serves."""
    user_deleted = await broker.delete_user(access.username)  # first: no new connection can open anywhere
    closed = await disconnect_user(broker, access.username, None, reason=reason)
    removed: list[DefinitionItem] = [managed_user(access.username)] if user_deleted else []
    retained: list[DefinitionItem] = []
    ids = [client_id for client_id in access.client_ids if client_id not in set(keep_client_ids)]
    for topology in topologies:
        items = client_queue_items(topology, ids)
        queues = [item for item in items if isinstance(item, QueueDef)]
        if delete_queues:
            done = await _run_limited(_deletion(broker.delete_queue, q.vhost, q.name) for q in queues)
            removed += [q for q, deleted in zip(queues, done, strict=True) if deleted]
        else:
            bindings = [item for item in items if isinstance(item, BindingDef)]
            done = await _run_limited(_unbinding(broker, b) for b in bindings)
            removed += [b for b, deleted in zip(bindings, done, strict=True) if deleted]
            retained += queues
    return RemovalResult(tuple(removed), tuple(retained), closed)


async def remove_vhost(
    broker: BrokerManagement, vhost: str, *, delete: bool, reason: str = VHOST_REMOVAL_REASON
) -> RemovalResult:
    """Deletion of a vhost.  ``delete``: the vhost and everything in it (the broker closes its connections).
    Otherwise (retain): queues and messages stay, but every user the operator manages loses its access there
    and is disconnected.  Users themselves are global and stay (a dispatcher identity may serve other vhosts)."""
    if delete:
        connections = await broker.list_connections(vhost=vhost)
        deleted = await broker.delete_vhost(vhost)
        return RemovalResult(
            removed=(VHostDef(vhost),) if deleted else (), closed_connections=tuple(connections) if deleted else ()
        )
    try:
        permissions, topic_permissions, users = await _gather(
            broker.list_permissions(vhost), broker.list_topic_permissions(vhost), broker.list_users()
        )
    except BrokerNotFound:
        return RemovalResult()
    managed = {u["name"] for u in users if MANAGED_USER_TAG in UserDef.from_api(u).tags}
    revoke: list[PermissionDef | TopicPermissionDef] = [
        PermissionDef.from_api(p, vhost) for p in permissions if p["user"] in managed
    ]
    revoke += [TopicPermissionDef.from_api(p, vhost) for p in topic_permissions if p["user"] in managed]
    await _run_limited(_revocation(broker, item) for item in revoke)
    revoked_users = sorted({item.user for item in revoke})
    per_user = await _run_limited(
        _disconnecting(broker, u, [vhost], reason, DEFAULT_SETTLE_SECONDS) for u in revoked_users
    )
    keeping_access = {p["user"] for p in permissions} - managed
    others = [
        c
        for c in await broker.list_connections(vhost=vhost)
        if c.user not in keeping_access and c.user not in revoked_users
    ]
    closed = tuple(c for cs in per_user for c in cs) + await _close(broker, others, reason)
    return RemovalResult(removed=tuple(revoke), retained=(VHostDef(vhost),), closed_connections=closed)
