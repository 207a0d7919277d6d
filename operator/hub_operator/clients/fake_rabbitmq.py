"""An in-memory broker behind the :class:`~.broker_api.BrokerManagement` protocol, for unit tests.

It reproduces the behaviour measured on RabbitMQ 3.10 that the operator depends on, including the surprising
parts: an import keeps an existing queue or exchange as it is (no equivalence check) but overwrites users,
permissions and policies; a binding whose source or destination is missing is silently skipped by an import;
creating a vhost grants the acting user full permissions there; deleting a queue, exchange or binding needs
the acting user's permission in the vhost (401 "Access refused." otherwise); deleting a user leaves its open
connections alive.  Exports have the real shapes (global entries carry ``vhost``, per-vhost ones do not).

Test controls: ``reachable`` / ``credentials_valid`` (simulated outage / bad password), ``fail_next`` (one-shot
error for a named method), ``open_connection`` (a client connecting, refused without permission) and
``set_queue_depth``; ``calls`` records every API method called, ``write_calls`` the mutating ones.
"""

from __future__ import annotations

import copy
import functools
import itertools
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from .broker_api import (
    BrokerAccessRefused,
    BrokerAuthenticationFailed,
    BrokerError,
    BrokerHealth,
    BrokerNotFound,
    BrokerOverview,
    BrokerRejected,
    BrokerUnreachable,
    ConnectionInfo,
    QueueDepth,
)

FAKE_URL = "fake://rabbitmq"
FAKE_VERSION = "3.10.8"
_FULL_ACCESS = {"configure": ".*", "write": ".*", "read": ".*"}
_REQUIRED_KEYS = {
    "queues": {"name", "vhost", "durable", "auto_delete"},
    "exchanges": {"name", "vhost", "type"},
    "bindings": {"vhost", "source", "destination", "destination_type", "routing_key"},
}

P = ParamSpec("P")
R = TypeVar("R")


class FakeConnectionRefused(Exception):
    """A simulated client connection the broker would refuse (unknown user, no permission in the vhost)."""


def _api_call(*, writes: bool) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Record the call and apply the simulated failure modes before running it."""

    def decorate(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(method)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            fake: FakeRabbitMQ = args[0]  # type: ignore[assignment]
            name = method.__name__
            fake.calls.append(name)
            if writes:
                fake.write_calls.append(name)
            if not fake.reachable:
                raise BrokerUnreachable(FAKE_URL, "ConnectError: simulated outage")
            if not fake.credentials_valid:
                raise BrokerAuthenticationFailed(FAKE_URL, fake.username)
            injected = fake.fail_next.pop(name, None)
            if injected is not None:
                raise injected
            return await method(*args, **kwargs)

        return wrapper

    return decorate


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _binding_key(vhost: str, entry: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        vhost,
        entry["source"],
        entry.get("destination_type", "queue"),
        entry["destination"],
        entry.get("routing_key", ""),
        _freeze(entry.get("arguments") or {}),
    )


def _without_vhost(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in entry.items() if k != "vhost"}


@dataclass
class FakeRabbitMQ:
    """A single-node broker in memory, starting like a fresh node: vhost ``/`` and an administrator."""

    username: str = "admin"
    reachable: bool = True
    credentials_valid: bool = True
    fail_next: dict[str, BrokerError] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    write_calls: list[str] = field(default_factory=list)

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    vhosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    permissions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    topic_permissions: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    policies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    queues: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    exchanges: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    bindings: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    connections: dict[str, ConnectionInfo] = field(default_factory=dict)
    depths: dict[tuple[str, str], QueueDepth] = field(default_factory=dict)
    closed: list[tuple[ConnectionInfo, str]] = field(default_factory=list)
    #: Connections not yet in the statistics (see ``open_connection(in_stats=False)``).
    unlisted: set[str] = field(default_factory=set)
    _connection_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def __post_init__(self) -> None:
        self._put_user({"name": self.username, "password_hash": "c2VjcmV0", "tags": ["administrator"]})
        self._add_vhost("/")

    # -- test controls --------------------------------------------------------------------------------------
    def open_connection(self, username: str, vhost: str, *, in_stats: bool = True) -> str:
        """Simulate a client connecting over AMQPS; refused like the real broker would refuse it.

        ``in_stats=False`` makes it younger than the statistics interval: only the per-user listing sees it
        and it cannot be closed by name until :meth:`publish_stats`.
        """
        if username not in self.users:
            raise FakeConnectionRefused(f"unknown user {username!r}")
        if vhost not in self.vhosts:
            raise FakeConnectionRefused(f"unknown vhost {vhost!r}")
        if (vhost, username) not in self.permissions:
            raise FakeConnectionRefused(f"{username!r} has no access to vhost {vhost!r} (530 NOT_ALLOWED)")
        name = f"127.0.0.1:{40000 + next(self._connection_ids)} -> 127.0.0.1:5671"
        self.connections[name] = ConnectionInfo(name, username, vhost)
        if not in_stats:
            self.unlisted.add(name)
        return name

    def publish_stats(self) -> None:
        """The statistics interval elapsed: every open connection is now listed everywhere."""
        self.unlisted.clear()

    def set_queue_depth(self, vhost: str, queue: str, ready: int, unacknowledged: int = 0, consumers: int = 0) -> None:
        if (vhost, queue) not in self.queues:
            raise KeyError(f"no queue {queue!r} in vhost {vhost!r}")
        self.depths[(vhost, queue)] = QueueDepth(queue, ready, unacknowledged, consumers)

    def reset_call_log(self) -> None:
        self.calls.clear()
        self.write_calls.clear()

    # -- helpers --------------------------------------------------------------------------------------------
    def _put_user(self, entry: Mapping[str, Any]) -> None:
        tags = entry.get("tags") or []
        if isinstance(tags, str):
            tags = [tag for tag in tags.split(",") if tag]
        self.users[entry["name"]] = {
            "name": entry["name"],
            "password_hash": entry.get("password_hash", ""),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": list(tags),
            "limits": {},
        }

    def _add_vhost(self, name: str) -> bool:
        if name in self.vhosts:
            return False
        self.vhosts[name] = {"name": name}
        # Measured: the acting user gets full permissions in a vhost it creates (HTTP PUT and import alike).
        self.permissions[(name, self.username)] = {"user": self.username, "vhost": name, **_FULL_ACCESS}
        return True

    def _require_vhost(self, vhost: str, path: str) -> None:
        if vhost not in self.vhosts:
            raise BrokerNotFound(404, "Not Found", path)

    def _require_access(self, vhost: str, path: str, method: str) -> None:
        if (vhost, self.username) not in self.permissions:
            raise BrokerAccessRefused(401, "Access refused.", path, method)

    def _drop_bindings(self, vhost: str, name: str, as_source: bool, destination_type: str | None) -> None:
        for key in [
            k
            for k in self.bindings
            if k[0] == vhost
            and ((as_source and k[1] == name) or (destination_type is not None and k[2:4] == (destination_type, name)))
        ]:
            del self.bindings[key]

    # -- definitions ----------------------------------------------------------------------------------------
    @_api_call(writes=False)
    async def export_definitions(self, vhost: str | None = None) -> dict[str, Any]:
        def in_scope(entry: Mapping[str, Any]) -> bool:
            return vhost is None or entry["vhost"] == vhost

        def shape(entry: Mapping[str, Any]) -> dict[str, Any]:
            return copy.deepcopy(dict(entry)) if vhost is None else _without_vhost(entry)

        topology = {
            "parameters": [],
            "policies": [shape(e) for e in self.policies.values() if in_scope(e)],
            "queues": [shape(e) for e in self.queues.values() if in_scope(e)],
            "exchanges": [shape(e) for e in self.exchanges.values() if in_scope(e)],
            "bindings": [shape(e) for e in self.bindings.values() if in_scope(e)],
        }
        if vhost is not None:
            self._require_vhost(vhost, f"/api/definitions/{vhost}")
            return {"rabbit_version": FAKE_VERSION, **topology}
        return {
            "rabbit_version": FAKE_VERSION,
            "rabbitmq_version": FAKE_VERSION,
            "product_name": "RabbitMQ",
            "product_version": FAKE_VERSION,
            "users": copy.deepcopy(list(self.users.values())),
            "vhosts": copy.deepcopy(list(self.vhosts.values())),
            "permissions": copy.deepcopy(list(self.permissions.values())),
            "topic_permissions": copy.deepcopy(list(self.topic_permissions.values())),
            "global_parameters": [],
            **topology,
        }

    @_api_call(writes=True)
    async def import_definitions(self, definitions: Mapping[str, Any]) -> None:
        # Not atomic, like the real import: entries before a failing one stay applied.
        path = "/api/definitions"

        def reject(*reason: str) -> BrokerRejected:
            return BrokerRejected(400, " ".join(reason), path, "POST")

        # Keys without which 3.10 answers 400 "function_clause" (measured).
        for section, keys in _REQUIRED_KEYS.items():
            for entry in definitions.get(section, []):
                if not keys <= set(entry):
                    raise reject("function_clause")

        for entry in definitions.get("users", []):
            self._put_user(entry)
        for entry in definitions.get("vhosts", []):
            self._add_vhost(entry["name"])
            # Measured: importing a vhost resets its description, even when the vhost exists.
            self.vhosts[entry["name"]]["description"] = entry.get("description", "")
        for entry in definitions.get("permissions", []):
            vhost, user = entry["vhost"], entry["user"]
            if user not in self.users:
                raise reject("no_such_user", user)
            if vhost not in self.vhosts:
                raise reject("no_such_vhost", vhost)
            self.permissions[(vhost, user)] = {
                "user": user,
                "vhost": vhost,
                **{k: entry[k] for k in ("configure", "write", "read")},
            }
        for entry in definitions.get("topic_permissions", []):
            vhost, user, exchange = entry["vhost"], entry["user"], entry["exchange"]
            if user not in self.users:
                raise reject("no_such_user", user)
            if vhost not in self.vhosts:
                raise reject("no_such_vhost", vhost)
            self.topic_permissions[(vhost, user, exchange)] = {
                "user": user,
                "vhost": vhost,
                "exchange": exchange,
                "write": entry["write"],
                "read": entry["read"],
            }
        for entry in definitions.get("policies", []):
            if entry["vhost"] not in self.vhosts:
                raise reject("no_such_vhost", entry["vhost"])
            if not entry.get("definition"):
                raise reject("Validation failed: no policy provided")
            try:
                re.compile(entry["pattern"])
            except re.error as error:
                raise reject("Validation failed: pattern should be regular expression:", str(error)) from None
            self.policies[(entry["vhost"], entry["name"])] = {
                "vhost": entry["vhost"],
                "name": entry["name"],
                "pattern": entry["pattern"],
                "apply-to": entry.get("apply-to", "all"),
                "definition": copy.deepcopy(entry.get("definition", {})),
                "priority": entry.get("priority", 0),
            }
        for entry in definitions.get("queues", []):
            if entry["vhost"] not in self.vhosts:
                raise reject("no_such_vhost", entry["vhost"])
            # An existing queue is kept as it is, whatever the entry says (no equivalence check).
            self.queues.setdefault(
                (entry["vhost"], entry["name"]),
                {
                    "name": entry["name"],
                    "vhost": entry["vhost"],
                    "durable": entry.get("durable", True),
                    "auto_delete": entry.get("auto_delete", False),
                    "arguments": copy.deepcopy(entry.get("arguments", {})),
                },
            )
        for entry in definitions.get("exchanges", []):
            if entry["vhost"] not in self.vhosts:
                raise reject("no_such_vhost", entry["vhost"])
            self.exchanges.setdefault(
                (entry["vhost"], entry["name"]),
                {
                    "name": entry["name"],
                    "vhost": entry["vhost"],
                    "type": entry["type"],
                    "durable": entry.get("durable", True),
                    "auto_delete": entry.get("auto_delete", False),
                    "internal": entry.get("internal", False),
                    "arguments": copy.deepcopy(entry.get("arguments", {})),
                },
            )
        for entry in definitions.get("bindings", []):
            vhost = entry["vhost"]
            destinations = self.queues if entry.get("destination_type", "queue") == "queue" else self.exchanges
            if (vhost, entry["source"]) not in self.exchanges or (vhost, entry["destination"]) not in destinations:
                continue  # measured: silently skipped
            self.bindings[_binding_key(vhost, entry)] = {
                "source": entry["source"],
                "vhost": vhost,
                "destination": entry["destination"],
                "destination_type": entry.get("destination_type", "queue"),
                "routing_key": entry.get("routing_key", ""),
                "arguments": copy.deepcopy(entry.get("arguments", {})),
            }

    @_api_call(writes=False)
    async def list_users(self) -> list[dict[str, Any]]:
        return copy.deepcopy(list(self.users.values()))

    @_api_call(writes=False)
    async def list_permissions(self, vhost: str) -> list[dict[str, Any]]:
        self._require_vhost(vhost, f"/api/vhosts/{vhost}/permissions")
        return [copy.deepcopy(p) for (v, _), p in self.permissions.items() if v == vhost]

    @_api_call(writes=False)
    async def list_topic_permissions(self, vhost: str) -> list[dict[str, Any]]:
        self._require_vhost(vhost, f"/api/vhosts/{vhost}/topic-permissions")
        return [copy.deepcopy(p) for (v, _, _), p in self.topic_permissions.items() if v == vhost]

    # -- single objects -------------------------------------------------------------------------------------
    @_api_call(writes=False)
    async def get_vhost(self, vhost: str) -> dict[str, Any] | None:
        entry = self.vhosts.get(vhost)
        return None if entry is None else {"description": "", "tags": [], **copy.deepcopy(entry)}

    @_api_call(writes=True)
    async def create_vhost(self, vhost: str, description: str = "") -> bool:
        created = self._add_vhost(vhost)
        self.vhosts[vhost]["description"] = description  # measured: PUT on an existing vhost updates it
        return created

    @_api_call(writes=True)
    async def delete_vhost(self, vhost: str) -> bool:
        if vhost not in self.vhosts:
            return False
        del self.vhosts[vhost]
        tables: list[dict[Any, dict[str, Any]]] = [
            self.permissions,
            self.topic_permissions,
            self.policies,
            self.queues,
            self.exchanges,
        ]
        for table in tables:
            for key in [k for k in table if k[0] == vhost]:
                del table[key]
        for key in [k for k in self.bindings if k[0] == vhost]:
            del self.bindings[key]
        for name in [n for n, c in self.connections.items() if c.vhost == vhost]:
            del self.connections[name]
        return True

    @_api_call(writes=True)
    async def delete_queue(self, vhost: str, queue: str) -> bool:
        if (vhost, queue) not in self.queues:
            return False
        self._require_access(vhost, f"/api/queues/{vhost}/{queue}", "DELETE")
        del self.queues[(vhost, queue)]
        self.depths.pop((vhost, queue), None)
        self._drop_bindings(vhost, queue, as_source=False, destination_type="queue")
        return True

    @_api_call(writes=True)
    async def delete_exchange(self, vhost: str, exchange: str) -> bool:
        if (vhost, exchange) not in self.exchanges:
            return False
        self._require_access(vhost, f"/api/exchanges/{vhost}/{exchange}", "DELETE")
        del self.exchanges[(vhost, exchange)]
        self._drop_bindings(vhost, exchange, as_source=True, destination_type="exchange")
        return True

    @_api_call(writes=True)
    async def delete_user(self, username: str) -> bool:
        if username not in self.users:
            return False
        del self.users[username]
        tables: list[dict[Any, dict[str, Any]]] = [self.permissions, self.topic_permissions]
        for table in tables:
            for key in [k for k in table if k[1] == username]:
                del table[key]
        return True  # measured: its open connections survive

    @_api_call(writes=True)
    async def delete_permission(self, vhost: str, username: str) -> bool:
        return self.permissions.pop((vhost, username), None) is not None

    @_api_call(writes=True)
    async def delete_topic_permissions(self, vhost: str, username: str) -> bool:
        keys = [k for k in self.topic_permissions if k[:2] == (vhost, username)]
        for key in keys:
            del self.topic_permissions[key]
        return bool(keys)

    @_api_call(writes=True)
    async def unbind(
        self,
        vhost: str,
        source: str,
        destination: str,
        routing_key: str,
        arguments: Mapping[str, Any] | None = None,
        destination_type: str = "queue",
    ) -> bool:
        entry = {
            "source": source,
            "destination": destination,
            "destination_type": destination_type,
            "routing_key": routing_key,
            "arguments": dict(arguments or {}),
        }
        key = _binding_key(vhost, entry)
        if key not in self.bindings:
            return False
        self._require_access(vhost, f"/api/bindings/{vhost}/e/{source}/q/{destination}", "DELETE")
        del self.bindings[key]
        return True

    # -- connections ----------------------------------------------------------------------------------------
    @_api_call(writes=False)
    async def list_connections(self, *, vhost: str | None = None, username: str | None = None) -> list[ConnectionInfo]:
        return [
            c
            for c in self.connections.values()
            if (vhost is None or c.vhost == vhost)
            and (username is None or c.user == username)
            and (username is not None or c.name not in self.unlisted)
        ]

    @_api_call(writes=True)
    async def close_connection(self, name: str, reason: str) -> bool:
        if name not in self.connections or name in self.unlisted:
            return False
        self.closed.append((self.connections.pop(name), reason))
        return True

    @_api_call(writes=True)
    async def close_user_connections(self, username: str, reason: str) -> None:
        for name in [n for n, c in self.connections.items() if c.user == username]:
            self.closed.append((self.connections.pop(name), reason))
            self.unlisted.discard(name)

    # -- monitoring -----------------------------------------------------------------------------------------
    @_api_call(writes=False)
    async def queue_depths(self, vhost: str) -> list[QueueDepth]:
        self._require_vhost(vhost, f"/api/queues/{vhost}")
        return [self.depths.get((v, name), QueueDepth(name, 0, 0, 0)) for (v, name) in self.queues if v == vhost]

    @_api_call(writes=False)
    async def overview(self) -> BrokerOverview:
        return BrokerOverview(rabbitmq_version=FAKE_VERSION, cluster_name="fake@localhost", node="fake@localhost")

    @_api_call(writes=False)
    async def check_health(self) -> BrokerHealth:
        return BrokerHealth()

    async def aclose(self) -> None:
        return None
