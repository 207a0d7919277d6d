"""Status of the three kinds: pure functions from what a reconcile found to the status object, and its publisher.

Conditions follow KEP-1623 (``set_condition`` keeps ``lastTransitionTime`` while only the reason or message
changes); ``Ready`` summarises the kind's other conditions and carries the reason of the first one that is not
satisfied, so ``kubectl get`` shows *why* (BrokerUnreachable, PerimeterNotFound, CertificateExpiring...).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hub_operator.api.common import (
    Condition,
    ConditionStatus,
    find_condition,
    set_condition,
)
from hub_operator.api.fieldtypes import format_duration
from hub_operator.api.hubclient import (
    CertificateStatus,
    HubClientCondition,
    HubClientStatus,
    VhostAccessState,
    VhostAccessStatus,
)
from hub_operator.api.perimeter import PerimeterCondition, PerimeterStatus
from hub_operator.api.vhostversion import (
    DispatcherStatus,
    VHostVersionCondition,
    VHostVersionStatus,
)
from hub_operator.certificates import CertificateFacts
from hub_operator.clients.kubernetes import KubernetesClient, KubernetesNotFound
from hub_operator.inventory import ClientRecord, PerimeterRecord, VHostVersionRecord

log = logging.getLogger(__name__)

TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN


@dataclass(frozen=True)
class Problem:
    """Why something is not done; ``transient`` problems are retried with back-off (kopf TemporaryError)."""

    reason: str
    message: str
    transient: bool = False


@dataclass(frozen=True)
class Check:
    """One condition's verdict before it becomes a :class:`Condition`."""

    status: ConditionStatus
    reason: str
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status is TRUE


@dataclass(frozen=True)
class Repair:
    """The last drift repair of an object in a vhost."""

    at: dt.datetime
    what: tuple[str, ...]

    def describe(self) -> str:
        shown = "; ".join(self.what[:10]) + (f" and {len(self.what) - 10} more" if len(self.what) > 10 else "")
        return f"restored at {self.at.strftime('%Y-%m-%dT%H:%M:%SZ')} after a change behind the operator's back: {shown}"


def _conditions(
    previous: Sequence[Condition], checks: Sequence[tuple[str, Check]], generation: int | None, now: dt.datetime
) -> list[Condition]:
    conditions = list(previous)
    for condition_type, check in checks:
        conditions = set_condition(conditions, condition_type, check.status, check.reason, check.message[:32000],
                                   observed_generation=generation, now=now)
    order = [condition_type for condition_type, _ in checks]
    return sorted((c for c in conditions if c.type in order), key=lambda c: order.index(c.type))


def _summary(checks: Sequence[tuple[str, Check]], ready_message: str, *, tolerated: Sequence[str] = ()) -> Check:
    """True when every check is; else the first False one (a known failure), else the first Unknown one."""
    counted = [(t, c) for t, c in checks if t not in tolerated]
    for wanted in (FALSE, UNKNOWN):
        for condition_type, check in counted:
            if check.status is wanted:
                return Check(wanted, check.reason, f"{condition_type}: {check.message}")
    return Check(TRUE, "Ready", ready_message)


# -- HubClient -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessFacts:
    """The client's access in one listed vhost, as the vhost's last reconcile left it."""

    vhost_version: str
    vhost: str | None
    state: VhostAccessState
    reason: str
    message: str = ""
    deprecated: bool = False
    repair: Repair | None = None


def client_status(
    record: ClientRecord,
    certificate: CertificateFacts | None,
    accesses: Sequence[AccessFacts],
    previous: HubClientStatus | None,
    *,
    now: dt.datetime,
    drift_window: dt.timedelta,
    deletion: Problem | None = None,
) -> HubClientStatus:
    """``deletion``: what a pending deletion waits for (then Ready says so)."""
    previous_conditions = previous.conditions if previous else []
    spec = record.spec
    if spec is None:
        invalid = Check(FALSE, "InvalidSpec", record.spec_error or "invalid spec")
        checks = [(HubClientCondition.READY, invalid)]
        return HubClientStatus(
            conditions=_conditions(previous_conditions, checks, record.generation, now),
            observed_generation=record.generation,
        )
    if certificate is None:
        certificate_check = Check(UNKNOWN, "Pending", "the certificate has not been checked yet")
    else:
        certificate_check = Check(TRUE if certificate.ready else FALSE, certificate.reason, certificate.message)
    access_check = _access_check(spec.suspended, accesses, now, drift_window)
    suspended_check = _suspended_check(spec.suspended, accesses)
    deprecated = [a.vhost_version for a in accesses if a.deprecated]
    deprecated_check = (
        Check(TRUE, "Deprecated", f"deprecated VHostVersion(s): {', '.join(deprecated)}; plan the move to a newer one")
        if deprecated else Check(FALSE, "NotDeprecated", "no listed VHostVersion is deprecated")
    )
    if deletion is not None:
        ready = Check(FALSE, deletion.reason, deletion.message)
    elif spec.suspended:
        ready = (Check(TRUE, "Suspended", "suspended on purpose: " + suspended_check.message)
                 if suspended_check.ok else Check(FALSE, suspended_check.reason, suspended_check.message))
    else:
        ready = _summary(
            [(HubClientCondition.CERTIFICATE_READY, certificate_check),
             (HubClientCondition.ACCESS_PROVISIONED, access_check)],
            f"certificate ready and access provisioned on {len(accesses)} vhost(s)",
        )
    checks = [
        (HubClientCondition.READY, ready),
        (HubClientCondition.CERTIFICATE_READY, certificate_check),
        (HubClientCondition.ACCESS_PROVISIONED, access_check),
        (HubClientCondition.SUSPENDED, suspended_check),
        (HubClientCondition.VHOST_DEPRECATED, deprecated_check),
    ]
    certificate_status = None
    if certificate is not None:
        certificate_status = CertificateStatus(
            secret_name=certificate.secret_name, common_name=certificate.common_name,
            not_after=certificate.not_after, serial=certificate.serial,
        )
    return HubClientStatus(
        conditions=_conditions(previous_conditions, checks, record.generation, now),
        observed_generation=record.generation,
        username=spec.username,
        client_ids=list(spec.all_client_ids),
        certificate=certificate_status,
        vhosts=[
            VhostAccessStatus(
                vhost_version=a.vhost_version, vhost=a.vhost, state=a.state,
                message=(a.message or None) if a.state is not VhostAccessState.PROVISIONED else None,
            )
            for a in accesses
        ],
        ready_vhosts=sum(1 for a in accesses if a.state is VhostAccessState.PROVISIONED),
    )


def _access_check(suspended: bool, accesses: Sequence[AccessFacts], now: dt.datetime,
                  drift_window: dt.timedelta) -> Check:
    wanted = VhostAccessState.SUSPENDED if suspended else VhostAccessState.PROVISIONED
    missing = [a for a in accesses if a.state is not wanted]
    if suspended and not missing:
        return Check(FALSE, "Suspended", "permissions revoked on every listed vhost while suspended")
    if missing:
        first = next((a for a in missing if a.state is VhostAccessState.FAILED), missing[0])
        details = "; ".join(f"{a.vhost_version}: {a.reason}{' (' + a.message + ')' if a.message else ''}"
                            for a in missing)
        return Check(FALSE, first.reason, details)
    repairs = [a for a in accesses if a.repair is not None and now - a.repair.at <= drift_window]
    if repairs:
        return Check(TRUE, "DriftRepaired", "; ".join(f"{a.vhost_version}: {a.repair.describe()}" for a in repairs
                                                      if a.repair is not None))
    return Check(TRUE, "Provisioned",
                 "user, queues, bindings, permissions and topic permissions exist on "
                 + ", ".join(a.vhost or a.vhost_version for a in accesses))


def _suspended_check(suspended: bool, accesses: Sequence[AccessFacts]) -> Check:
    if not suspended:
        return Check(FALSE, "NotSuspended", "spec.suspended is false")
    pending = [a for a in accesses if a.state is not VhostAccessState.SUSPENDED]
    if pending:
        return Check(FALSE, "SuspensionPending", "access not yet revoked on "
                     + "; ".join(f"{a.vhost_version}: {a.reason} {a.message}".strip() for a in pending))
    return Check(TRUE, "Suspended", "permissions revoked and live connections closed on "
                 + ", ".join(a.vhost or a.vhost_version for a in accesses))


# -- VHostVersion ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DispatcherFacts:
    replicas: int | None
    ready_replicas: int | None
    check: Check


@dataclass(frozen=True)
class VhostFacts:
    """What the last reconcile of a VHostVersion found."""

    vhost: str | None = None
    broker_secret_name: str | None = None
    message_ttl: str | None = None
    clients: int | None = None
    blocked: Problem | None = None
    """Nothing could be provisioned: invalid spec, missing Perimeter, broker Secret or broker problem, vhost taken."""
    claim: Check | None = None
    provisioning: Problem | None = None
    """The apply ran but left something unresolved (a queue conflict...)."""
    repair: Repair | None = None
    models: Check | None = None
    dispatcher: DispatcherFacts | None = None
    deletion: Problem | None = None
    """Deletion waiting (e.g. for an unreachable broker)."""


def vhost_version_status(
    record: VHostVersionRecord,
    facts: VhostFacts,
    previous: VHostVersionStatus | None,
    *,
    now: dt.datetime,
    drift_window: dt.timedelta,
) -> VHostVersionStatus:
    previous_conditions = previous.conditions if previous else []
    if record.spec is None:
        invalid = Check(FALSE, "InvalidSpec", record.spec_error or "invalid spec")
        return VHostVersionStatus(
            conditions=_conditions(previous_conditions, [(VHostVersionCondition.READY, invalid)], record.generation,
                                   now),
            observed_generation=record.generation,
        )
    claim = facts.claim or Check(UNKNOWN, facts.blocked.reason if facts.blocked else "Pending",
                                 "not checked: " + (facts.blocked.message if facts.blocked else "not reconciled yet"))
    if facts.blocked is not None:
        broker = Check(FALSE, facts.blocked.reason, facts.blocked.message)
    elif facts.provisioning is not None:
        broker = Check(FALSE, facts.provisioning.reason, facts.provisioning.message)
    elif facts.repair is not None and now - facts.repair.at <= drift_window:
        broker = Check(TRUE, "DriftRepaired", facts.repair.describe())
    else:
        broker = Check(TRUE, "Provisioned", f"vhost {facts.vhost}: exchanges, dispatch queues, dead-letter policy and "
                       f"dispatcher user in place; {facts.clients or 0} client(s) provisioned")
    dispatcher = facts.dispatcher.check if facts.dispatcher else Check(UNKNOWN, "Pending", "not reconciled yet")
    models = facts.models or Check(UNKNOWN, "Pending", "not reconciled yet")
    scaled_to_zero = facts.dispatcher is not None and facts.dispatcher.replicas == 0
    parts = [
        (VHostVersionCondition.VHOST_CLAIMED, claim),
        (VHostVersionCondition.BROKER_PROVISIONED, broker),
        (VHostVersionCondition.DISPATCHER_AVAILABLE, dispatcher),
        (VHostVersionCondition.MODELS_AVAILABLE, models),
    ]
    if facts.deletion is not None:
        ready = Check(FALSE, facts.deletion.reason, facts.deletion.message)
    elif scaled_to_zero:
        ready = _summary(parts, "", tolerated=(VHostVersionCondition.MODELS_AVAILABLE,))
        if ready.ok:
            ready = Check(TRUE, "ScaledToZero", "vhost provisioned; dispatchers scaled to zero on purpose: messages "
                          "wait in the dispatch queue")
    else:
        ready = _summary(parts, f"vhost {facts.vhost} provisioned and {facts.dispatcher.ready_replicas if facts.dispatcher else 0} "
                         "dispatcher(s) ready")
    checks = [(VHostVersionCondition.READY, ready), *parts]
    return VHostVersionStatus(
        conditions=_conditions(previous_conditions, checks, record.generation, now),
        observed_generation=record.generation,
        vhost=facts.vhost,
        broker_secret_name=facts.broker_secret_name,
        message_ttl=facts.message_ttl,
        dispatcher=(DispatcherStatus(replicas=facts.dispatcher.replicas, ready_replicas=facts.dispatcher.ready_replicas)
                    if facts.dispatcher else None),
        clients=facts.clients,
    )


def ttl_text(delta: dt.timedelta) -> str:
    return format_duration(delta)


# -- Perimeter -------------------------------------------------------------------------------------------------


def perimeter_status(
    record: PerimeterRecord,
    vhost_versions: Sequence[tuple[VHostVersionRecord, Condition | None]],
    previous: PerimeterStatus | None,
    *,
    now: dt.datetime,
) -> PerimeterStatus:
    """``vhost_versions``: the perimeter's VHostVersions with their current Ready condition."""
    previous_conditions = previous.conditions if previous else []
    if record.spec is None:
        ready = Check(FALSE, "InvalidSpec", record.spec_error or "invalid spec")
        return PerimeterStatus(
            conditions=_conditions(previous_conditions, [(PerimeterCondition.READY, ready)], record.generation, now),
            observed_generation=record.generation,
        )
    live = [(v, ready) for v, ready in vhost_versions if not v.deleting]
    waiting = [(v, ready) for v, ready in live if ready is None or ready.status is not TRUE]
    if not live:
        ready = Check(TRUE, "Ready", "no VHostVersion uses this perimeter yet")
    elif waiting:
        ready = Check(FALSE, "VHostVersionsNotReady", "; ".join(
            f"{v.name}: {c.reason if c else 'Pending'}" for v, c in waiting))
    else:
        ready = Check(TRUE, "Ready", f"{len(live)} VHostVersion(s) ready: " + ", ".join(v.name for v, _ in live))
    return PerimeterStatus(
        conditions=_conditions(previous_conditions, [(PerimeterCondition.READY, ready)], record.generation, now),
        observed_generation=record.generation,
        use_cases=record.spec.use_case_summary,
        vhosts=sorted({v.vhost or v.name for v, _ in live}),
    )


# -- publishing ------------------------------------------------------------------------------------------------


class StatusPublisher:
    """Writes statuses, skipping writes that change nothing; one writer at a time per object.

    The last status written is remembered, so a status computed from fresh in-memory facts never waits for the
    watch stream to echo the previous write back.
    """

    def __init__(self, kube: KubernetesClient) -> None:
        self._kube = kube
        self._published: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        self.writes = 0

    def lock(self, plural: str, namespace: str, name: str) -> asyncio.Lock:
        return self._locks.setdefault((plural, namespace, name), asyncio.Lock())

    def last(self, plural: str, namespace: str, name: str, stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The status last written by this process, else the one stored on the object."""
        published = self._published.get((plural, namespace, name))
        if published is not None:
            return published
        return dict(stored) if stored else None

    async def write(self, plural: str, namespace: str, name: str, status: Mapping[str, Any],
                    stored: Mapping[str, Any] | None) -> bool:
        """Patch the status unless it equals what is known to be there; True if a write happened.

        Call with :meth:`lock` held, after computing ``status`` from :meth:`last`.
        """
        key = (plural, namespace, name)
        wire = dict(status)
        known = self._published.get(key)
        if known is None and stored is not None:
            known = {k: v for k, v in stored.items() if k in wire or k in _STATUS_FIELDS.get(plural, ())}
        if known == wire:
            self._published[key] = wire
            return False
        # Fields the new status no longer has must be removed explicitly: a merge patch keeps absent keys.
        patch: dict[str, Any] = {**{field: None for field in (known or {}) if field not in wire}, **wire}
        try:
            await self._kube.patch_status(plural, namespace, name, patch)
        except KubernetesNotFound:
            self.forget(plural, namespace, name)
            return False
        self._published[key] = wire
        self.writes += 1
        return True

    def forget(self, plural: str, namespace: str, name: str) -> None:
        self._published.pop((plural, namespace, name), None)
        self._locks.pop((plural, namespace, name), None)


_STATUS_FIELDS: Mapping[str, tuple[str, ...]] = {
    "hubclients": tuple(HubClientStatus.model_json_schema(by_alias=True)["properties"]),
    "vhostversions": tuple(VHostVersionStatus.model_json_schema(by_alias=True)["properties"]),
    "perimeters": tuple(PerimeterStatus.model_json_schema(by_alias=True)["properties"]),
}


def parse_previous(model: Any, stored: Mapping[str, Any] | None) -> Any:
    """The previous status as a model (an unreadable one counts as none: it is rewritten)."""
    if not stored:
        return None
    try:
        return model.model_validate({k: v for k, v in stored.items() if k in _fields_of(model)})
    except Exception:  # noqa: BLE001 - any stored garbage means "start afresh"
        return None


@functools.cache
def _fields_of(model: Any) -> frozenset[str]:
    return frozenset(model.model_json_schema(by_alias=True)["properties"])


def ready_condition(status: Mapping[str, Any] | None) -> Condition | None:
    conditions = []
    for raw in (status or {}).get("conditions") or []:
        try:
            conditions.append(Condition.model_validate(raw))
        except Exception:  # noqa: BLE001, S112 - a malformed stored condition is simply not one
            continue
    return find_condition(conditions, "Ready")


def seconds(delta: float) -> dt.timedelta:
    return dt.timedelta(seconds=delta)
