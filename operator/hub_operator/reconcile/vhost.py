"""The reconcile of one VHostVersion: its vhost with *all* its HubClients in one bulk apply, then its dispatchers.

Every trigger (the VHostVersion itself, its Perimeter, any of its HubClients, the drift timer) asks for a run of
the vhost; runs are coalesced per vhost (:mod:`.coalescer`), so concurrent triggers collapse into one apply that
sees the latest state of every client.  The apply's changes are attributed to their owners: a drift repair
becomes an Event and a condition on the HubClient or VHostVersion it concerns.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from hub_dispatcher.protocol import DISPATCH_QUEUE, VHostProtocol

from hub_operator.api.common import DeletionPolicy
from hub_operator.api.hubclient import VhostAccessState
from hub_operator.api.vhostversion import VHostVersionStatus
from hub_operator.broker_sync import (
    Change,
    ChangeAction,
    SyncResult,
    apply_desired_state,
    remove_vhost,
)
from hub_operator.brokers import Broker, BrokerConfigError, BrokerPool
from hub_operator.builders.broker import InvalidBrokerSpec, Owner, OwnerKind
from hub_operator.builders.broker_definitions import BindingDef, ConflictingDefinitions
from hub_operator.clients.broker_api import (
    BrokerAccessRefused,
    BrokerAuthenticationFailed,
    BrokerError,
    BrokerRejected,
    BrokerUnreachable,
)
from hub_operator.clients.kubernetes import KubernetesError
from hub_operator.events import NORMAL, WARNING, EventRecorder
from hub_operator.inventory import (
    ClientRecord,
    Inventory,
    ObjectKey,
    VHostVersionRecord,
)
from hub_operator.metrics import Metrics
from hub_operator.reconcile.claims import check_claim, claimant, record_claim
from hub_operator.reconcile.coalescer import Coalescer
from hub_operator.reconcile.desired import VhostPlan, dispatcher_username, plan_vhost
from hub_operator.reconcile.workload import (
    DISPATCHER_REPORTED_MODELS,
    WorkloadManager,
    dispatcher_facts,
    models_from_dispatchers,
)
from hub_operator.settings import OperatorSettings
from hub_operator.status import (
    FALSE,
    TRUE,
    Check,
    Problem,
    Repair,
    StatusPublisher,
    VhostFacts,
    parse_previous,
    ttl_text,
    vhost_version_status,
)

log = logging.getLogger(__name__)

KIND = "VHostVersion"
PLURAL = "vhostversions"

#: Changes that undo something done behind the operator's back.
DRIFT_ACTIONS = frozenset({ChangeAction.REPAIRED, ChangeAction.UPDATED, ChangeAction.RECREATED})


def is_drift(change: Change, protocol: VHostProtocol) -> bool:
    """A repair, or an unbinding of a binding the operator never makes (a client that left keeps none either)."""
    if change.action in DRIFT_ACTIONS:
        return True
    if change.action is ChangeAction.UNBOUND and isinstance(change.item, BindingDef):
        # Bindings of a client that left the vhost have the operator's own shape: routing key = queue name.
        ours = change.item.routing_key == change.item.destination and protocol.queue_kind(change.item.destination)
        return not ours
    return False


@dataclass(frozen=True)
class ClientAccessOutcome:
    """One HubClient's access in this vhost after the last run."""

    uid: str
    state: VhostAccessState
    reason: str
    message: str = ""


@dataclass(frozen=True)
class VhostOutcome:
    key: ObjectKey
    facts: VhostFacts = field(default_factory=VhostFacts)
    accesses: Mapping[str, ClientAccessOutcome] = field(default_factory=dict)
    """By HubClient name."""
    problem: Problem | None = None
    """What kept this run from completing; transient problems are retried."""
    deleted: bool = False
    absent: bool = False
    models_source: str = ""
    """The bundle as described in messages (version and where it comes from)."""
    """The VHostVersion does not exist (any more)."""


def broker_problem(error: BrokerError) -> Problem:
    if isinstance(error, BrokerUnreachable):
        return Problem("BrokerUnreachable", str(error), transient=True)
    if isinstance(error, BrokerAuthenticationFailed):
        return Problem("BrokerAuthenticationFailed", f"{error}: check username and password in the broker Secret",
                       transient=True)
    if isinstance(error, BrokerAccessRefused):
        return Problem("BrokerAccessRefused", str(error), transient=True)
    if isinstance(error, BrokerRejected):
        return Problem("BrokerRejected", str(error), transient=True)
    return Problem("BrokerError", str(error), transient=True)


ClientsChanged = Callable[[str, Iterable[str]], Awaitable[None]]


class VhostReconciler:
    def __init__(
        self,
        *,
        settings: OperatorSettings,
        inventory: Callable[[], Inventory],
        brokers: BrokerPool,
        workloads: WorkloadManager,
        publisher: StatusPublisher,
        events: EventRecorder,
        metrics: Metrics,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._settings = settings
        self._inventory = inventory
        self._brokers = brokers
        self._workloads = workloads
        self._publisher = publisher
        self._events = events
        self._metrics = metrics
        self._now = now
        self.outcomes: dict[ObjectKey, VhostOutcome] = {}
        #: Last drift repair per vhost and owner ("vhost" or a HubClient name), kept across runs.
        self.repairs: dict[ObjectKey, dict[str, Repair]] = {}
        self.coalescer: Coalescer[ObjectKey, VhostOutcome] = Coalescer(self._run, name="vhost reconcile")
        #: Set by the operator: publishes the statuses of these HubClients (namespace, names).
        self.clients_changed: ClientsChanged | None = None
        #: Set by the operator: publishes the status of a Perimeter (namespace, name).
        self.perimeter_changed: Callable[[str, str], Awaitable[None]] | None = None

    # -- entry points ---------------------------------------------------------------------------------------
    async def reconcile(self, key: ObjectKey) -> VhostOutcome:
        """A run of this VHostVersion that starts after this call."""
        return await self.coalescer.request(key)

    def trigger(self, key: ObjectKey) -> None:
        self.coalescer.trigger(key)

    async def dispatcher_changed(self, key: ObjectKey, deployment: Mapping[str, object] | None) -> None:
        """A dispatcher Deployment changed (pods became ready...): refresh the status without a broker apply."""
        outcome = self.outcomes.get(key)
        record = self._inventory().vhost_version(*key)
        if outcome is None or record is None or record.deleting or outcome.facts.dispatcher is None:
            return
        replicas = outcome.facts.dispatcher.replicas
        if replicas is None:
            return
        previous_dispatcher = outcome.facts.dispatcher
        refreshed = dispatcher_facts(deployment, replicas)  # type: ignore[arg-type]
        if refreshed == previous_dispatcher:
            return
        models = outcome.facts.models
        if models is not None and models.reason in DISPATCHER_REPORTED_MODELS:
            models = models_from_dispatchers(refreshed, outcome.models_source)
        facts = dataclasses.replace(outcome.facts, dispatcher=refreshed, models=models)
        self.outcomes[key] = dataclasses.replace(outcome, facts=facts)
        await self._publish_vhost(record, facts)

    # -- the run --------------------------------------------------------------------------------------------
    async def _run(self, key: ObjectKey) -> VhostOutcome:
        record = self._inventory().vhost_version(*key)
        if record is None:
            previous = self.outcomes.pop(key, None)
            self.repairs.pop(key, None)
            if previous is not None and self.clients_changed is not None:
                await self.clients_changed(key[0], previous.accesses)
            return VhostOutcome(key, absent=True)
        if record.deleting:
            return await self._delete(record)
        with self._metrics.timed(KIND):
            try:
                outcome = await self._provision(record)
            except KubernetesError as error:
                # The broker part is done (or not started); what failed is a Kubernetes call: retry.
                self._metrics.errors.labels(KIND, "KubernetesUnavailable").inc()
                previous = self.outcomes.get(key)
                problem = Problem("KubernetesError", str(error), transient=True)
                outcome = VhostOutcome(key, previous.facts if previous else VhostFacts(),
                                       previous.accesses if previous else {}, problem)
        self._metrics.reconciles.labels(KIND, "error" if outcome.problem else "success").inc()
        if outcome.problem is not None:
            self._metrics.errors.labels(KIND, outcome.problem.reason).inc()
        previous = self.outcomes.get(key)
        self.outcomes[key] = outcome
        await self._publish_vhost(record, outcome.facts)
        if self.clients_changed is not None:
            names = set(outcome.accesses) | set(previous.accesses if previous else ())
            await self.clients_changed(record.namespace, names)
        return outcome

    async def _provision(self, record: VHostVersionRecord) -> VhostOutcome:
        key = record.key
        inventory = self._inventory()
        spec = record.spec
        clients = inventory.clients_of_vhost_version(record.namespace, record.name)
        known = VhostFacts()  # what the status can say so far

        def blocked(problem: Problem, claim: Check | None = None) -> VhostOutcome:
            """Nothing provisioned: every client of the vhost reports why."""
            accesses = {
                c.name: ClientAccessOutcome(c.uid, VhostAccessState.FAILED, problem.reason,
                                            f"vhost not provisioned: {problem.message}")
                for c in clients if not c.deleting
            }
            return VhostOutcome(key, dataclasses.replace(known, blocked=problem, claim=claim), accesses, problem)

        if spec is None:
            return blocked(Problem("InvalidSpec", record.spec_error or "invalid spec"))
        secret_name = self._broker_secret_name(record)
        known = VhostFacts(vhost=spec.vhost_name, broker_secret_name=secret_name)
        perimeter = inventory.perimeter(record.namespace, spec.perimeter)
        if perimeter is None or perimeter.deleting:
            return blocked(Problem("PerimeterNotFound",
                                   f"Perimeter {spec.perimeter} does not exist in namespace {record.namespace}"))
        if perimeter.spec is None:
            return blocked(Problem("PerimeterInvalid", f"Perimeter {spec.perimeter}: {perimeter.spec_error}"))
        try:
            plan = plan_vhost(spec, perimeter.spec, clients, username_holder=self._username_holder(record.namespace))
        except (InvalidBrokerSpec, ConflictingDefinitions) as error:
            return blocked(Problem("InvalidSpec", str(error)))
        known = dataclasses.replace(known, message_ttl=ttl_text(plan.effective.message_ttl))
        try:
            broker = await self._brokers.get(record.namespace, secret_name)
        except BrokerConfigError as error:
            return blocked(Problem(error.reason, error.message, transient=True))

        try:
            claim = await check_claim(broker.management, spec.vhost_name, record.namespace)
            if not claim.claimed:
                return blocked(Problem(claim.reason, claim.message), Check(FALSE, claim.reason, claim.message))
            started = self._now()
            result = await apply_desired_state(broker.management, plan.desired)
            claim = await record_claim(broker.management, spec.vhost_name, record.namespace, claim)
            if not claim.claimed:  # lost a race for a brand-new vhost: the other namespace keeps it
                return blocked(Problem(claim.reason, claim.message), Check(FALSE, claim.reason, claim.message))
            self._metrics.broker_applies.labels(spec.vhost_name).inc()
            self._metrics.broker_apply_duration.observe(result.elapsed_seconds)
            depth = await self._dispatch_depth(broker, plan)
        except BrokerError as error:
            problem = broker_problem(error)
            return blocked(Problem(problem.reason, f"{problem.message} (broker Secret {secret_name})",
                                   problem.transient))
        accesses, provisioning = self._attribute(record, plan, result, started)
        provisioned = sum(1 for a in accesses.values() if a.state is VhostAccessState.PROVISIONED)
        self._metrics.vhost_clients.labels(record.namespace, spec.vhost_name).set(provisioned)

        workload = await self._workloads.reconcile(record, perimeter.spec, plan, broker.connection, depth)
        if workload.certificate_renewed:
            self._metrics.certificates_issued.labels("dispatcher").inc()
            self._events.emit(record, NORMAL, "DispatcherCertificateRenewed",
                              f"dispatcher certificate re-issued, valid until {workload.certificate_not_after}")
        if workload.dispatcher.replicas is not None:
            self._metrics.dispatcher_replicas.labels(record.namespace, spec.vhost_name).set(workload.dispatcher.replicas)
        facts = dataclasses.replace(
            known,
            clients=provisioned,
            claim=Check(TRUE, claim.reason, claim.message),
            provisioning=provisioning,
            repair=self.repairs.get(key, {}).get("vhost"),
            models=workload.models,
            dispatcher=workload.dispatcher,
        )
        return VhostOutcome(key, facts, accesses, provisioning if provisioning and provisioning.transient else None,
                            models_source=workload.models_source)

    def _broker_secret_name(self, record: VHostVersionRecord) -> str:
        spec = record.spec
        if spec is not None and spec.broker_ref is not None:
            return spec.broker_ref.secret_name
        return self._settings.broker_secret_name

    def _username_holder(self, namespace: str) -> Callable[[str], str | None]:
        inventory = self._inventory()

        def holder(username: str) -> str | None:
            live = [c for c in inventory.clients_with_username(namespace, username) if not c.deleting and c.spec]
            return live[0].name if live else None

        return holder

    async def _dispatch_depth(self, broker: Broker, plan: VhostPlan) -> int | None:
        """Messages waiting for dispatchers, when autoscaling needs it (None = unknown: keep what runs)."""
        if plan.effective.dispatcher.autoscaling is None:
            return None
        try:
            depths = await broker.management.queue_depths(plan.topology.vhost)
        except BrokerError:
            return None
        return next((d.total for d in depths if d.name == DISPATCH_QUEUE), None)

    # -- attributing an apply's changes to the custom resources --------------------------------------------
    def _attribute(
        self, record: VHostVersionRecord, plan: VhostPlan, result: SyncResult, started: dt.datetime
    ) -> tuple[dict[str, ClientAccessOutcome], Problem | None]:
        key = record.key
        vhost = plan.topology.vhost
        by_username: dict[str, list[ClientRecord]] = {}
        for client in plan.accepted:
            assert client.spec is not None
            by_username.setdefault(client.spec.username, []).append(client)
        inventory = self._inventory()

        def owners_of(owner: Owner) -> list[ClientRecord | VHostVersionRecord]:
            if owner.kind is OwnerKind.VHOST:
                return [record]
            found = by_username.get(owner.name)
            if found is None:  # a client revoked here: suspended, removed from this vhost, or being deleted
                found = inventory.clients_with_username(record.namespace, owner.name)
            return list(found)

        drift: dict[str, list[str]] = {}
        blocking: dict[str, list[str]] = {}
        revoked: dict[str, list[str]] = {}
        for change in result.changes:
            for owner in change.owners:
                targets = owners_of(owner)
                for target in targets:
                    owner_key = "vhost" if isinstance(target, VHostVersionRecord) else target.name
                    if is_drift(change, plan.topology.protocol):
                        drift.setdefault(owner_key, []).append(change.describe())
                        self._metrics.drift_repairs.labels(vhost, change.item.kind.label).inc()
                    elif change.action in (ChangeAction.CONFLICT, ChangeAction.UNRESOLVED):
                        blocking.setdefault(owner_key, []).append(change.describe())
                    elif change.action is ChangeAction.REVOKED and isinstance(target, ClientRecord):
                        revoked.setdefault(target.name, []).append(change.item.describe())
                        self._metrics.revocations.labels(vhost).inc()
                if not targets and is_drift(change, plan.topology.protocol):
                    self._metrics.drift_repairs.labels(vhost, change.item.kind.label).inc()
            if change.action is ChangeAction.CREATED:
                log.debug("vhost %s: %s", vhost, change.describe())

        repairs = self.repairs.setdefault(key, {})
        targets_by_key: dict[str, ClientRecord | VHostVersionRecord] = {"vhost": record}
        targets_by_key.update({c.name: c for c in plan.accepted})
        for owner_key, what in drift.items():
            repairs[owner_key] = Repair(started, tuple(what))
            found = targets_by_key.get(owner_key) or inventory.client(record.namespace, owner_key)
            if found is not None:
                self._events.emit(found, WARNING, "DriftRepaired",
                                  f"vhost {vhost}: restored after a change behind the operator's back: " + "; ".join(what))
        for name, what in revoked.items():
            revoked_client = inventory.client(record.namespace, name)
            if revoked_client is not None:
                self._events.emit(revoked_client, NORMAL, "AccessRevoked", f"vhost {vhost}: " + "; ".join(what))
        closed: dict[str, int] = {}
        for connection in result.closed_connections:
            closed[connection.user] = closed.get(connection.user, 0) + 1
        for username, count in closed.items():
            self._metrics.closed_connections.labels(vhost).inc(count)
            for target in owners_of(Owner.client(username)):
                if isinstance(target, ClientRecord):
                    self._events.emit(target, NORMAL, "ConnectionsClosed",
                                      f"vhost {vhost}: closed {count} live connection(s) of {username}: access revoked")
        for owner_key, what in blocking.items():
            blocked_owner = targets_by_key.get(owner_key)
            if blocked_owner is not None:
                self._events.emit(blocked_owner, WARNING, "ProvisioningConflict", f"vhost {vhost}: " + "; ".join(what))

        accesses: dict[str, ClientAccessOutcome] = {}
        for client in plan.accepted:
            assert client.spec is not None
            if client.name in blocking:
                reason = "QueueConflict" if any("conflict" in w for w in blocking[client.name]) else "Unresolved"
                accesses[client.name] = ClientAccessOutcome(client.uid, VhostAccessState.FAILED, reason,
                                                            "; ".join(blocking[client.name]))
            elif client.spec.suspended:
                accesses[client.name] = ClientAccessOutcome(client.uid, VhostAccessState.SUSPENDED, "Suspended",
                                                            "permissions revoked, connections closed")
            else:
                accesses[client.name] = ClientAccessOutcome(client.uid, VhostAccessState.PROVISIONED, "Provisioned")
        for name, rejection in plan.rejected.items():
            rejected = next((c for c in inventory.clients_of_vhost_version(record.namespace, record.name)
                             if c.name == name), None)
            if rejected is not None:
                accesses[name] = ClientAccessOutcome(rejected.uid, VhostAccessState.FAILED, rejection.reason,
                                                     rejection.message)
        provisioning = None
        if "vhost" in blocking:
            provisioning = Problem("QueueConflict" if any("conflict" in w for w in blocking["vhost"]) else "Unresolved",
                                   "; ".join(blocking["vhost"]),
                                   transient=not any("conflict" in w for w in blocking["vhost"]))
        return accesses, provisioning

    # -- status ---------------------------------------------------------------------------------------------
    async def _publish_vhost(self, record: VHostVersionRecord, facts: VhostFacts) -> None:
        async with self._publisher.lock(PLURAL, record.namespace, record.name):
            stored = self._publisher.last(PLURAL, record.namespace, record.name, record.status)
            status = vhost_version_status(
                record, facts, parse_previous(VHostVersionStatus, stored), now=self._now(),
                drift_window=dt.timedelta(seconds=self._settings.drift_report_window),
            )
            await self._publisher.write(PLURAL, record.namespace, record.name, status.to_wire(), record.status)
        if self.perimeter_changed is not None and record.perimeter_name:
            await self.perimeter_changed(record.namespace, record.perimeter_name)

    # -- deletion ---------------------------------------------------------------------------------------------
    async def _delete(self, record: VHostVersionRecord) -> VhostOutcome:
        spec = record.spec
        self._workloads.forget(record.namespace, record.name)
        if spec is None or record.skip_broker_cleanup:
            why = "invalid spec" if spec is None else "annotation hubsante.io/skip-broker-cleanup"
            self._events.emit(record, WARNING, "BrokerCleanupSkipped",
                              f"deleted without touching the broker ({why}): the vhost and its users are left as they are")
            return await self._deleted(record)
        vhost = spec.vhost_name
        try:
            broker = await self._brokers.get(record.namespace, self._broker_secret_name(record))
            existing = await broker.management.get_vhost(vhost)
            holder = claimant((existing or {}).get("description"))
            if existing is not None and holder not in (None, record.namespace):
                self._events.emit(record, NORMAL, "BrokerCleanupSkipped",
                                  f"vhost {vhost} belongs to namespace {holder}: left untouched")
                return await self._deleted(record)
            delete = spec.deletion_policy is DeletionPolicy.DELETE
            removal = await remove_vhost(broker.management, vhost, delete=delete)
            # The dispatcher identity exists for this vhost only.
            await broker.management.delete_user(dispatcher_username(vhost))
        except BrokerConfigError as error:
            return self._deletion_pending(record, Problem(error.reason, error.message, transient=True))
        except BrokerError as error:
            return self._deletion_pending(record, broker_problem(error))
        kept = "deleted with its queues and messages" if delete else "kept with its queues and messages (retain)"
        self._events.emit(record, NORMAL, "VhostDecommissioned",
                          f"vhost {vhost} {kept}; {len(removal.closed_connections)} connection(s) closed; "
                          f"dispatcher user removed")
        return await self._deleted(record)

    def _deletion_pending(self, record: VHostVersionRecord, problem: Problem) -> VhostOutcome:
        previous = self.outcomes.get(record.key)
        facts = previous.facts if previous else VhostFacts()
        facts = dataclasses.replace(facts, deletion=problem)
        outcome = VhostOutcome(record.key, facts, previous.accesses if previous else {}, problem)
        self.outcomes[record.key] = outcome
        return outcome

    async def _deleted(self, record: VHostVersionRecord) -> VhostOutcome:
        previous = self.outcomes.pop(record.key, None)
        self.repairs.pop(record.key, None)
        self._publisher.forget(PLURAL, record.namespace, record.name)
        if previous is not None and self.clients_changed is not None:
            await self.clients_changed(record.namespace, previous.accesses)
        return VhostOutcome(record.key, deleted=True)

    async def forget_deleted(self, record: VHostVersionRecord) -> None:
        """The deletion completes without broker clean-up (given up)."""
        await self._deleted(record)

    async def publish_deletion_pending(self, record: VHostVersionRecord, problem: Problem) -> None:
        outcome = self.outcomes.get(record.key)
        facts = outcome.facts if outcome else VhostFacts(vhost=record.vhost)
        await self._publish_vhost(record, dataclasses.replace(facts, deletion=problem))

    async def close(self) -> None:
        await self.coalescer.close()

