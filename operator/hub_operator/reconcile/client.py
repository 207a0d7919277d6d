"""The reconcile of one HubClient: its certificate, then a run of every vhost it uses, then its status.

Broker access is never applied client by client: a HubClient asks each of its vhosts for a (coalesced) run that
includes it with all the vhost's other clients, and waits for it.  Its status is then computed from the
certificate and the access each vhost reported.  While a HubClient's own reconcile runs, the vhost reconciles
leave its status to it (one status write instead of one per vhost).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hub_operator.api.common import DeletionPolicy
from hub_operator.api.hubclient import (
    CertificateMode,
    HubClientStatus,
    VhostAccessState,
)
from hub_operator.api.vhostversion import LifecycleState
from hub_operator.broker_sync import REMOVAL_REASON, remove_client
from hub_operator.brokers import BrokerConfigError, BrokerPool
from hub_operator.builders.broker import (
    ClientAccess,
    InvalidBrokerSpec,
    QueueType,
    VHostTopology,
)
from hub_operator.certificates import (
    CertificateAuthorityStore,
    CertificateFacts,
    client_certificate_request,
    ensure_cert_manager_certificate,
    ensure_operator_certificate,
    external_certificate,
)
from hub_operator.clients.broker_api import BrokerError
from hub_operator.clients.kubernetes import KubernetesClient
from hub_operator.events import NORMAL, WARNING, EventRecorder
from hub_operator.inventory import ClientRecord, Inventory, ObjectKey
from hub_operator.metrics import Metrics
from hub_operator.reconcile.desired import dispatcher_username
from hub_operator.reconcile.vhost import VhostOutcome, VhostReconciler, broker_problem
from hub_operator.settings import OperatorSettings
from hub_operator.status import (
    AccessFacts,
    Problem,
    StatusPublisher,
    client_status,
    parse_previous,
)

log = logging.getLogger(__name__)

KIND = "HubClient"
PLURAL = "hubclients"
#: Status writes at once when a vhost run touched many clients.
PUBLISH_CONCURRENCY = 16
#: Certificate reasons worth retrying soon (cert-manager still working, a CA Secret that may appear).
TRANSIENT_CERTIFICATE_REASONS = frozenset({"CertificatePending", "CASecretNotFound", "SecretConflict"})


@dataclass(frozen=True)
class ClientResult:
    problems: tuple[Problem, ...] = ()

    @property
    def transient(self) -> Problem | None:
        return next((p for p in self.problems if p.transient), None)


@dataclass(frozen=True)
class DeletionResult:
    done: bool
    problem: Problem | None = None


class ClientReconciler:
    def __init__(
        self,
        *,
        settings: OperatorSettings,
        inventory: Callable[[], Inventory],
        kube: KubernetesClient,
        authorities: CertificateAuthorityStore,
        brokers: BrokerPool,
        vhosts: VhostReconciler,
        publisher: StatusPublisher,
        events: EventRecorder,
        metrics: Metrics,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._settings = settings
        self._inventory = inventory
        self._kube = kube
        self._authorities = authorities
        self._brokers = brokers
        self._vhosts = vhosts
        self._publisher = publisher
        self._events = events
        self._metrics = metrics
        self._now = now
        self.certificates: dict[ObjectKey, tuple[str, CertificateFacts]] = {}
        """Last certificate check per HubClient, with the uid it was made for."""
        self._in_flight: collections.Counter[ObjectKey] = collections.Counter()
        self._deletions: dict[ObjectKey, Problem] = {}
        vhosts.clients_changed = self.publish_many

    # -- reconcile ------------------------------------------------------------------------------------------
    async def reconcile(self, record: ClientRecord, *, previous_vhosts: Iterable[str] = ()) -> ClientResult:
        """Certificate, access on every vhost it uses (and revocation on those it left), status."""
        key = record.key
        self._in_flight[key] += 1
        try:
            with self._metrics.timed(KIND):
                certificate = await self.check_certificate(record)
                targets = set(record.vhost_versions) | set(previous_vhosts) | self._vhosts_holding(record)
                outcomes = await asyncio.gather(*(self._vhosts.reconcile((record.namespace, v)) for v in sorted(targets)))
                await self._retire_previous_username(record, targets)
            await self.publish(record.namespace, record.name)
        finally:
            self._in_flight[key] -= 1
            if not self._in_flight[key]:
                del self._in_flight[key]
        problems = [o.problem for o in outcomes if o.problem is not None and o.problem.transient]
        if certificate is not None and not certificate.ready:
            problems.append(Problem(certificate.reason, certificate.message,
                                    certificate.reason in TRANSIENT_CERTIFICATE_REASONS))
        self._metrics.reconciles.labels(KIND, "error" if problems else "success").inc()
        for problem in problems:
            self._metrics.errors.labels(KIND, problem.reason).inc()
        return ClientResult(tuple(problems))

    async def _retire_previous_username(self, record: ClientRecord, vhost_versions: Iterable[str]) -> None:
        """After a CN change the old user has lost its permissions (the runs above revoked them): remove it."""
        stored = self._publisher.last(PLURAL, record.namespace, record.name, record.status) or {}
        previous = stored.get("username")
        if record.spec is None or not previous or previous == record.spec.username:
            return
        if any(not c.deleting for c in self._inventory().clients_with_username(record.namespace, previous)):
            return  # another HubClient of the namespace is that user
        for secret in self._broker_secrets(record.namespace, vhost_versions):
            try:
                broker = await self._brokers.get(record.namespace, secret)
                await broker.management.delete_user(previous)
                await broker.management.close_user_connections(previous, REMOVAL_REASON)
            except (BrokerConfigError, BrokerError) as error:
                log.warning("could not remove user %s (the old CN of HubClient %s/%s): %s", previous,
                            record.namespace, record.name, error)
                return
        self._events.emit(record, NORMAL, "UserRetired", f"user {previous} removed: the certificate CN is now "
                          f"{record.spec.username}")

    def _broker_secrets(self, namespace: str, vhost_versions: Iterable[str]) -> set[str]:
        inventory = self._inventory()
        secrets = set()
        for name in vhost_versions:
            vhost_version = inventory.vhost_version(namespace, name)
            if vhost_version is not None and vhost_version.spec is not None:
                ref = vhost_version.spec.broker_ref
                secrets.add(ref.secret_name if ref else self._settings.broker_secret_name)
        return secrets

    def _vhosts_holding(self, record: ClientRecord) -> set[str]:
        """VHostVersions whose last run gave this client access (it may have left them since)."""
        return {name for (namespace, name), outcome in self._vhosts.outcomes.items()
                if namespace == record.namespace and record.name in outcome.accesses}

    async def check_certificate(self, record: ClientRecord) -> CertificateFacts | None:
        """Issue, renew or verify the certificate (timer and reconcile); remembered for the status."""
        spec = record.spec
        if spec is None:
            return None
        mode = spec.certificate.mode
        common_name = spec.username
        secret_name = spec.certificate_secret_name(record.name)
        if mode is CertificateMode.EXTERNAL:
            facts = external_certificate(common_name)
        elif mode is CertificateMode.CERT_MANAGER:
            assert secret_name is not None
            facts = await ensure_cert_manager_certificate(
                self._kube, name=record.name, namespace=record.namespace, owner=record.owner, spec=spec.certificate,
                common_name=common_name, secret_name=secret_name, now=self._now(),
            )
        else:
            assert secret_name is not None
            request = client_certificate_request(
                namespace=record.namespace, object_name=record.name, owner=record.owner, spec=spec.certificate,
                common_name=common_name, secret_name=secret_name,
            )
            facts = await ensure_operator_certificate(self._kube, self._authorities, request, now=self._now())
            if facts.issued_now:
                self._metrics.certificates_issued.labels("client").inc()
            if facts.renewed:
                self._events.emit(record, NORMAL, "CertificateRenewed", facts.message)
        previous = self.certificates.get(record.key)
        if not facts.ready and (previous is None or previous[1].reason != facts.reason):
            self._events.emit(record, WARNING, facts.reason, facts.message)  # once per new problem, not every check
        self.certificates[record.key] = (record.uid, facts)
        self._update_certificate_metrics(record, facts)
        return facts

    def _update_certificate_metrics(self, record: ClientRecord, facts: CertificateFacts) -> None:
        if facts.not_after is not None:
            self._metrics.certificate_expiry.labels(record.namespace, record.name, KIND).set(facts.not_after.timestamp())
        expiring = sum(1 for (namespace, _), (_, f) in self.certificates.items()
                       if namespace == record.namespace and f.expiring)
        self._metrics.certificates_expiring.labels(record.namespace).set(expiring)

    # -- status ---------------------------------------------------------------------------------------------
    def access_facts(self, record: ClientRecord) -> list[AccessFacts]:
        inventory = self._inventory()
        facts: list[AccessFacts] = []
        for name in record.vhost_versions:
            vhost_version = inventory.vhost_version(record.namespace, name)
            if vhost_version is None or vhost_version.deleting:
                state = "does not exist" if vhost_version is None else "is being deleted"
                facts.append(AccessFacts(name, None, VhostAccessState.PENDING, "VHostVersionNotFound",
                                         f"VHostVersion {name} {state} in namespace {record.namespace}"))
                continue
            deprecated = vhost_version.spec is not None and vhost_version.spec.state is LifecycleState.DEPRECATED
            outcome: VhostOutcome | None = self._vhosts.outcomes.get((record.namespace, name))
            access = outcome.accesses.get(record.name) if outcome else None
            if access is None or access.uid != record.uid:
                facts.append(AccessFacts(name, vhost_version.vhost, VhostAccessState.PENDING, "Pending",
                                         "not provisioned yet", deprecated))
                continue
            repair = self._vhosts.repairs.get((record.namespace, name), {}).get(record.name)
            facts.append(AccessFacts(name, vhost_version.vhost, access.state, access.reason, access.message,
                                     deprecated, repair))
        return facts

    async def publish(self, namespace: str, name: str) -> None:
        record = self._inventory().client(namespace, name)
        if record is None:
            return
        certificate = self.certificates.get(record.key)
        async with self._publisher.lock(PLURAL, namespace, name):
            stored = self._publisher.last(PLURAL, namespace, name, record.status)
            status = client_status(
                record,
                certificate[1] if certificate and certificate[0] == record.uid else None,
                self.access_facts(record),
                parse_previous(HubClientStatus, stored),
                now=self._now(),
                drift_window=dt.timedelta(seconds=self._settings.drift_report_window),
                deletion=self._deletions.get(record.key),
            )
            await self._publisher.write(PLURAL, namespace, name, status.to_wire(), record.status)

    async def publish_many(self, namespace: str, names: Iterable[str]) -> None:
        """Statuses of clients a vhost run touched, except those whose own reconcile will publish."""
        semaphore = asyncio.Semaphore(PUBLISH_CONCURRENCY)

        async def one(name: str) -> None:
            async with semaphore:
                await self.publish(namespace, name)

        inventory = self._inventory()

        def waiting_for_its_own(name: str) -> bool:
            # Being reconciled now, or never reconciled yet (its create/resume handler is queued): its own
            # reconcile writes its status; writing it from here too would only add API writes.
            record = inventory.client(namespace, name)
            return (namespace, name) in self._in_flight or (
                record is not None and not record.status and self._publisher.last(PLURAL, namespace, name, None) is None
            )

        await asyncio.gather(*(one(n) for n in sorted(set(names)) if not waiting_for_its_own(n)))

    # -- deletion -------------------------------------------------------------------------------------------
    async def delete(self, record: ClientRecord) -> DeletionResult:
        """Revoke access (connections closed) on every vhost, then remove the user and, by policy, its queues."""
        spec = record.spec
        if spec is None:
            return await self._deleted(record)
        if record.skip_broker_cleanup:
            self._events.emit(record, WARNING, "BrokerCleanupSkipped",
                              f"deleted without touching the broker (annotation): user {spec.username} and its queues "
                              "are left as they are")
            return await self._deleted(record)
        # The index already shows the client as deleting, so these runs leave it out: its permissions are revoked
        # and its connections closed, and no later run can give them back.
        await asyncio.gather(*(self._vhosts.reconcile((record.namespace, v)) for v in record.vhost_versions),
                             return_exceptions=True)
        inventory = self._inventory()
        others = [c for c in inventory.clients_with_username(record.namespace, spec.username)
                  if c.uid != record.uid and not c.deleting and c.spec is not None]
        if others:  # the CN belongs to another HubClient: it never had its own broker objects
            return await self._deleted(record)
        by_broker: dict[str, list[VHostTopology]] = {}
        keep: set[str] = set()
        for name in record.vhost_versions:
            vhost_version = inventory.vhost_version(record.namespace, name)
            if vhost_version is None or vhost_version.spec is None:
                continue
            vspec = vhost_version.spec
            secret = vspec.broker_ref.secret_name if vspec.broker_ref else self._settings.broker_secret_name
            by_broker.setdefault(secret, []).append(VHostTopology(
                vspec.vhost_name, profile=vspec.profile, queue_type=QueueType(vspec.queue_type.value),
                dispatcher_username=dispatcher_username(vspec.vhost_name),
            ))
            for other in inventory.clients_of_vhost_version(record.namespace, name):
                if other.uid != record.uid and not other.deleting and other.spec is not None:
                    keep.update(other.spec.all_client_ids)
        if not by_broker:
            by_broker[self._settings.broker_secret_name] = []  # at least remove the user
        try:
            access = ClientAccess(spec.username, spec.all_client_ids)
        except InvalidBrokerSpec:
            return await self._deleted(record)
        delete_queues = spec.deletion_policy is DeletionPolicy.DELETE
        removed = retained = closed = 0
        try:
            for secret, topologies in sorted(by_broker.items()):
                try:
                    broker = await self._brokers.get(record.namespace, secret)
                except BrokerConfigError as error:
                    if topologies:
                        raise
                    log.info("no broker to remove user %s from: %s", spec.username, error.message)
                    continue
                result = await remove_client(broker.management, access, topologies, delete_queues=delete_queues,
                                             keep_client_ids=keep)
                removed += len(result.removed)
                retained += len(result.retained)
                closed += len(result.closed_connections)
        except BrokerConfigError as error:
            return self._deletion_pending(record, Problem(error.reason, error.message, transient=True))
        except BrokerError as error:
            return self._deletion_pending(record, broker_problem(error))
        policy = "queues and messages deleted" if delete_queues else f"{retained} queue(s) kept with their messages"
        self._events.emit(record, NORMAL, "ClientRemoved",
                          f"user {spec.username} removed ({closed} connection(s) closed); {policy}")
        return await self._deleted(record)

    async def publish_deletion_pending(self, record: ClientRecord, problem: Problem) -> None:
        self._deletions[record.key] = problem
        await self.publish(record.namespace, record.name)

    def _deletion_pending(self, record: ClientRecord, problem: Problem) -> DeletionResult:
        self._deletions[record.key] = problem
        return DeletionResult(False, problem)

    async def _deleted(self, record: ClientRecord) -> DeletionResult:
        self.forget(record)
        return DeletionResult(True)

    def forget(self, record: ClientRecord) -> None:
        self.certificates.pop(record.key, None)
        self._deletions.pop(record.key, None)
        self._publisher.forget(PLURAL, record.namespace, record.name)
        try:
            self._metrics.certificate_expiry.remove(record.namespace, record.name, KIND)
        except KeyError:
            pass  # no certificate was ever known
