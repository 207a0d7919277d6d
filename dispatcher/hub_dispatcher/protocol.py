"""The wire protocol of one hub vhost: the single definition of its topology.

The dispatcher routes by it, the operator provisions it, and the tests assert with it.  Nothing else in
the project spells an exchange name, a queue suffix, a routing key or a permission regex.

Two profiles exist (HUBSANTE.md §3):

* ``current`` (DST >= 1.1): clients publish to ``hubsante`` with routing key = their client id; recipient
  queues are ``<id>.message``, ``<id>.ack`` and ``<id>.info``.
* ``legacy`` (hub <= 0.8): clients publish with ``<id>.out.<kind>``; recipient queues are ``<id>.in.<kind>``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

HUB_EXCHANGE = "hubsante"
DISTRIBUTION_EXCHANGE = "distribution"
DEAD_LETTER_EXCHANGE = "distribution.dlx"
DISPATCH_QUEUE = "dispatch"
DEAD_LETTER_QUEUE = "dispatch.dlq"

#: The hub's own sender id: error reports come from it.
HUB_SENDER_ID = "fr.health.hub"
#: Header carried by every forwarded copy so a dead letter can be traced back to its sender.
ORIGINAL_ROUTING_KEY_HEADER = "x-death-original-routing-key"
#: Name of the TTL / dead-letter policy the operator puts on client queues.
CLIENT_QUEUE_POLICY = "hubsante-client-queues"

#: Prefix of health actors (SAMU, SMUR...): at least one end of every exchange must be one.
HEALTH_PREFIX = "fr.health"

#: Grammar of a client id: ``fr.<domain>.<org>[.<sub>...]``, lower-case domain, alphanumerics in segments.
CLIENT_ID_PATTERN = r"^fr(\.[a-zA-Z0-9][a-zA-Z0-9_-]*){2,5}$"
_CLIENT_ID_RE = re.compile(CLIENT_ID_PATTERN)

#: Vhost names: ``<perimeter>_v<version>`` with no leading slash.
PERIMETER_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$"
SPEC_VERSION_PATTERN = r"^[0-9]+\.[0-9]+(\.[0-9]+)?$"


class ProtocolProfile(str, enum.Enum):
    CURRENT = "current"
    LEGACY = "legacy"


class QueueKind(str, enum.Enum):
    """The three queues every client id owns in a vhost."""

    MESSAGE = "message"
    ACK = "ack"
    INFO = "info"


_KINDS_ALTERNATION = "(" + "|".join(kind.value for kind in QueueKind) + ")"


def is_valid_client_id(client_id: str) -> bool:
    return bool(_CLIENT_ID_RE.match(client_id))


def is_health_actor(client_id: str) -> bool:
    return client_id == HEALTH_PREFIX or client_id.startswith(HEALTH_PREFIX + ".")


def vhost_name(perimeter: str, version: str) -> str:
    return f"{perimeter}_v{version}"


def _alternation(values: Iterable[str]) -> str:
    """An anchored-safe regex group matching exactly one of ``values`` (each escaped)."""
    unique = sorted(set(values))
    if not unique:
        raise ValueError("at least one client id is required")
    return "(" + "|".join(re.escape(value) for value in unique) + ")"


@dataclass(frozen=True)
class Permission:
    """A RabbitMQ vhost permission triple (regexes)."""

    configure: str
    write: str
    read: str


@dataclass(frozen=True)
class TopicPermission:
    exchange: str
    write: str
    read: str


#: A user that must not touch anything.
NO_ACCESS = "^$"

#: Dispatcher identity: consume its two input queues, publish to ``distribution`` only.
DISPATCHER_PERMISSION = Permission(
    configure=NO_ACCESS,
    write="^" + re.escape(DISTRIBUTION_EXCHANGE) + "$",
    read="^" + re.escape(DISPATCH_QUEUE) + r"(\.dlq)?$",
)


@dataclass(frozen=True)
class VHostProtocol:
    """Names, keys and permissions of a vhost speaking one protocol profile."""

    profile: ProtocolProfile = ProtocolProfile.CURRENT

    # -- queues ---------------------------------------------------------------------------------------
    def client_queue(self, client_id: str, kind: QueueKind) -> str:
        if self.profile is ProtocolProfile.LEGACY:
            return f"{client_id}.in.{kind.value}"
        return f"{client_id}.{kind.value}"

    def client_queues(self, client_id: str) -> list[str]:
        return [self.client_queue(client_id, kind) for kind in QueueKind]

    def queue_for_distribution_kind(self, client_id: str, distribution_kind: str) -> str:
        """Where a message of this EDXL ``distributionKind`` lands at its recipient (HUBSANTE.md §5.9)."""
        if distribution_kind == "Ack":
            return self.client_queue(client_id, QueueKind.ACK)
        if distribution_kind == "Error":
            return self.client_queue(client_id, QueueKind.INFO)
        return self.client_queue(client_id, QueueKind.MESSAGE)

    def info_queue(self, client_id: str) -> str:
        return self.client_queue(client_id, QueueKind.INFO)

    def queue_kind(self, queue: str) -> QueueKind | None:
        """The kind of a client queue of this profile (e.g. of a dead letter's queue), None otherwise."""
        for kind in QueueKind:
            suffix = self.client_queue("", kind)
            if queue.endswith(suffix) and len(queue) > len(suffix):
                return kind
        return None

    @property
    def client_queue_policy_pattern(self) -> str:
        """Matches every client queue and nothing else (never ``dispatch`` / ``dispatch.dlq``)."""
        infix = r"\.in" if self.profile is ProtocolProfile.LEGACY else ""
        return r"^fr\..+" + infix + r"\." + _KINDS_ALTERNATION + "$"

    # -- routing keys -----------------------------------------------------------------------------------
    @property
    def dispatch_binding_key(self) -> str:
        return "#.out.*" if self.profile is ProtocolProfile.LEGACY else "#"

    def publish_routing_key(self, client_id: str, kind: QueueKind = QueueKind.MESSAGE) -> str:
        """The routing key a client uses to publish to ``hubsante``."""
        if self.profile is ProtocolProfile.LEGACY:
            return f"{client_id}.out.{kind.value}"
        return client_id

    def sender_from_routing_key(self, routing_key: str) -> str:
        """The client id a publishing routing key claims (its prefix in the legacy profile)."""
        if self.profile is ProtocolProfile.LEGACY:
            prefix, separator, kind = routing_key.rpartition(".out.")
            if separator and kind in {k.value for k in QueueKind}:
                return prefix
        return routing_key

    # -- permissions -------------------------------------------------------------------------------------
    def client_permission(self, client_ids: Sequence[str]) -> Permission:
        ids = _alternation(client_ids)
        infix = r"\.in" if self.profile is ProtocolProfile.LEGACY else ""
        return Permission(
            configure=NO_ACCESS,
            write="^" + re.escape(HUB_EXCHANGE) + "$",
            read="^" + ids + infix + r"\." + _KINDS_ALTERNATION + "$",
        )

    def client_topic_permission(self, client_ids: Sequence[str]) -> TopicPermission:
        ids = _alternation(client_ids)
        if self.profile is ProtocolProfile.LEGACY:
            write = "^" + ids + r"\.out\." + _KINDS_ALTERNATION + "$"
        else:
            write = "^" + ids + "$"
        return TopicPermission(exchange=HUB_EXCHANGE, write=write, read=NO_ACCESS)

    @property
    def dispatcher_permission(self) -> Permission:
        return DISPATCHER_PERMISSION


CURRENT = VHostProtocol(ProtocolProfile.CURRENT)
LEGACY = VHostProtocol(ProtocolProfile.LEGACY)


def for_profile(profile: ProtocolProfile | str) -> VHostProtocol:
    return CURRENT if ProtocolProfile(profile) is ProtocolProfile.CURRENT else LEGACY
