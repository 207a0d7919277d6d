"""The hub of the scale tests: four vhosts and a population of clients whose size is the only parameter.

The shape repeats one *block* per SAMU, so that every size (250, 500, 1,000 clients) has the same proportions and
the cold-start times compare as "time per client":

==========================================  ======================================  =========================
client ids of block ``k`` (SAMU ``k``)      what it is                              vhosts
==========================================  ======================================  =========================
``fr.health.samu{k:03d}``                   the SAMU's call centre                  15-15_v2.0, 15-nexsis_v1.9
``fr.fire.nexsis.sdis{k:02d}``              the fire brigade of the same département  15-nexsis_v1.9
``fr.health.samu{k:03d}.smur1`` … ``smur5``   tablets of its mobile units (SMUR)      15-smur_v1.6, 15-gps_v1.0
``fr.health.samu{k:03d}.tracker1`` … ``3``    its vehicle-position trackers            15-gps_v1.0
==========================================  ======================================  =========================

Ten clients per block, 16 vhost accesses per block (1.6 per client on average, each client on one or two vhosts):
per block 1 client on 15-15, 2 on 15-nexsis (the legacy profile), 5 on 15-smur and 8 on 15-gps.

The vhosts are the *later* versions of HUBSANTE.md §2, so that they never collide with the session hub of
``conftest.py`` (15-15_v1.5, 15-nexsis_v1.8, 15-smur_v1.4) on the shared broker.  Dispatchers are scaled to zero:
the scale tests measure the operator, not dispatcher pods.

Certificate CNs carry a per-run tag: one CN is one broker user, global on a broker shared by several namespaces
(the session hub already has users ``fr.health.samu050`` and ``fr.health.samu076``).  That is also what production
looks like: with the national PKI the CN is the editor's host name, not the client id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hub_dispatcher.protocol import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DISPATCH_QUEUE,
    DISTRIBUTION_EXCHANGE,
    HUB_EXCHANGE,
    ProtocolProfile,
    QueueKind,
    vhost_name,
)
from hub_operator.builders.broker import ClientAccess, DesiredState, VHostTopology, desired_vhost_state
from hub_operator.builders.broker_definitions import ItemKind
from hub_operator.reconcile.desired import dispatcher_username

from tests.integration.operator.operator_manifests import hub_client, perimeter, vhost_version

#: Clients per block (one SAMU, its fire brigade, five SMUR tablets, three trackers).
BLOCK_SIZE = 10
SMUR_TABLETS_PER_SAMU = 5
TRACKERS_PER_SAMU = 3


@dataclass(frozen=True)
class ScaleVHost:
    perimeter: str
    version: str
    profile: ProtocolProfile
    models_version: str

    @property
    def name(self) -> str:
        return vhost_name(self.perimeter, self.version)

    @property
    def vhost_version(self) -> str:
        """The VHostVersion object's name."""
        return f"{self.perimeter}-v{self.version}"

    @property
    def topology(self) -> VHostTopology:
        return VHostTopology(self.name, profile=self.profile, dispatcher_username=dispatcher_username(self.name))

    def manifests(self) -> list[dict[str, Any]]:
        # deletionPolicy Delete: tearing the test down removes the vhost (and its queues) through the operator.
        return [
            perimeter(self.perimeter, dispatcher={"replicas": 0}),
            vhost_version(self.perimeter, self.version, models={"version": self.models_version},
                          profile=self.profile.value, deletionPolicy="delete"),
        ]


SAMU_SAMU = ScaleVHost("15-15", "2.0", ProtocolProfile.CURRENT, "2.2")
SAMU_FIRE = ScaleVHost("15-nexsis", "1.9", ProtocolProfile.LEGACY, "2.2")
SAMU_SMUR = ScaleVHost("15-smur", "1.6", ProtocolProfile.CURRENT, "2.2")
POSITIONS = ScaleVHost("15-gps", "1.0", ProtocolProfile.CURRENT, "1.1")
SCALE_VHOSTS = (SAMU_SAMU, SAMU_FIRE, SAMU_SMUR, POSITIONS)


@dataclass(frozen=True)
class ScaleClient:
    name: str
    """The HubClient object's name."""
    client_id: str
    vhosts: tuple[ScaleVHost, ...]

    def common_name(self, run_tag: str) -> str:
        return f"{self.name}.{run_tag}.hub.test"

    def manifest(self, run_tag: str) -> dict[str, Any]:
        return hub_client(self.name, self.client_id, [v.vhost_version for v in self.vhosts],
                          certificate={"commonName": self.common_name(run_tag)})


def samu_block(k: int) -> list[ScaleClient]:
    samu = f"samu{k:03d}"
    block = [
        ScaleClient(samu, f"fr.health.{samu}", (SAMU_SAMU, SAMU_FIRE)),
        ScaleClient(f"sdis{k:02d}", f"fr.fire.nexsis.sdis{k:02d}", (SAMU_FIRE,)),
    ]
    block += [smur_tablet(k, j) for j in range(1, SMUR_TABLETS_PER_SAMU + 1)]
    block += [ScaleClient(f"{samu}-tracker{j}", f"fr.health.{samu}.tracker{j}", (POSITIONS,))
              for j in range(1, TRACKERS_PER_SAMU + 1)]
    assert len(block) == BLOCK_SIZE
    return block


def smur_tablet(k: int, j: int) -> ScaleClient:
    """Tablet ``j`` of SAMU ``k``'s mobile units: on the two largest vhosts (the onboarding probes are these)."""
    return ScaleClient(f"samu{k:03d}-smur{j}", f"fr.health.samu{k:03d}.smur{j}", (SAMU_SMUR, POSITIONS))


def population(size: int) -> list[ScaleClient]:
    if size % BLOCK_SIZE:
        raise ValueError(f"the population grows by blocks of {BLOCK_SIZE} clients, not {size}")
    return [client for k in range(1, size // BLOCK_SIZE + 1) for client in samu_block(k)]


def base_manifests() -> list[dict[str, Any]]:
    return [document for vhost in SCALE_VHOSTS for document in vhost.manifests()]


# -- what the broker must hold ----------------------------------------------------------------------------------

BrokerKey = tuple[str, ...]
"""An object's identity on the broker, the same for the desired state and a management API listing."""


def clients_by_vhost(clients: Iterable[ScaleClient]) -> dict[ScaleVHost, list[ScaleClient]]:
    grouped: dict[ScaleVHost, list[ScaleClient]] = {vhost: [] for vhost in SCALE_VHOSTS}
    for client in clients:
        for vhost in client.vhosts:
            grouped[vhost].append(client)
    return grouped


def desired_broker_state(clients: Iterable[ScaleClient], run_tag: str, management_user: str) -> DesiredState:
    """What the operator's own builders say the four vhosts must hold (plus the operator's management access)."""
    states = [
        desired_vhost_state(vhost.topology, [ClientAccess(c.common_name(run_tag), (c.client_id,)) for c in members])
        for vhost, members in clients_by_vhost(clients).items()
    ]
    return states[0].merge(*states[1:]).with_management_access(management_user)


def desired_broker_keys(state: DesiredState) -> dict[ItemKind, set[BrokerKey]]:
    """The desired state's objects per kind, keyed as :func:`tests.system.scale_measure.broker_census` keys them."""
    keys: dict[ItemKind, set[BrokerKey]] = {kind: set() for kind in ItemKind}
    for item in state.definitions:
        keys[item.kind].add(broker_key(item.kind, item.to_api()))
    return keys


def broker_key(kind: ItemKind, entry: Mapping[str, Any]) -> BrokerKey:
    """Identity of one entry of a management API listing (or of a desired item's ``to_api()``)."""
    if kind is ItemKind.USER:
        return (entry["name"],)
    if kind is ItemKind.VHOST:
        return (entry["name"],)
    if kind in (ItemKind.PERMISSION, ItemKind.TOPIC_PERMISSION):
        return (entry["vhost"], entry["user"])
    if kind is ItemKind.BINDING:
        return (entry["vhost"], entry["source"], entry["destination"], entry["routing_key"])
    return (entry["vhost"], entry["name"])  # queues, exchanges, policies


def spec_counts(clients: Iterable[ScaleClient]) -> Counter[ItemKind]:
    """The same counts written out from the topology of HUBSANTE.md §3, as a check on the builders.

    Per vhost with ``n`` clients (one client id each): the exchanges ``hubsante``, ``distribution`` and
    ``distribution.dlx``; the queues ``dispatch`` and ``dispatch.dlq`` plus one queue per client and
    :class:`QueueKind`, each bound once (``dispatch`` to ``hubsante``, ``dispatch.dlq`` to the dead-letter
    exchange, a client queue to ``distribution``); the one client-queue policy; a permission per client, one for
    the dispatcher and one for the operator's management identity; a topic permission per client.  Users are
    global: one per client (its CN) and one dispatcher per vhost.
    """
    members = clients_by_vhost(clients)
    shared_exchanges = len({HUB_EXCHANGE, DISTRIBUTION_EXCHANGE, DEAD_LETTER_EXCHANGE})
    shared_queues = len({DISPATCH_QUEUE, DEAD_LETTER_QUEUE})
    queues_per_client = len(QueueKind)
    counts: Counter[ItemKind] = Counter()
    for vhost_clients in members.values():
        n = len(vhost_clients)
        counts[ItemKind.VHOST] += 1
        counts[ItemKind.EXCHANGE] += shared_exchanges
        counts[ItemKind.QUEUE] += shared_queues + queues_per_client * n
        counts[ItemKind.BINDING] += shared_queues + queues_per_client * n
        counts[ItemKind.POLICY] += 1
        counts[ItemKind.PERMISSION] += n + 2
        counts[ItemKind.TOPIC_PERMISSION] += n
    counts[ItemKind.USER] = len({c.name for vs in members.values() for c in vs}) + len(members)
    return counts
