"""Which namespace owns a vhost on a shared broker, recorded in the vhost's description.

Namespaces are hub environments; two environments may share a broker but never a vhost (their clients would
see each other's queues).  The first VHostVersion to provision a vhost writes its namespace into the vhost's
description; a VHostVersion of another namespace then finds it taken and provisions nothing.  A vhost without
a claim (created by hand, or whose description a definitions import reset) is adopted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hub_operator.clients.broker_api import BrokerManagement

CLAIM_PREFIX = "managed by hub-operator for namespace "
_CLAIM_RE = re.compile(r"managed by hub-operator for namespace (?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)")


def claim_description(namespace: str) -> str:
    return CLAIM_PREFIX + namespace


def claimant(description: str | None) -> str | None:
    """The namespace a vhost description names as owner, if any."""
    match = _CLAIM_RE.search(description or "")
    return match.group("namespace") if match else None


@dataclass(frozen=True)
class ClaimResult:
    claimed: bool
    reason: str
    """Claimed, Adopted, Created or ClaimedByOtherNamespace."""
    message: str
    holder: str | None = None
    recorded: bool = True
    """False while the claim still has to be written (the vhost does not exist yet, or has no owner)."""
    existed: bool = True


async def check_claim(broker: BrokerManagement, vhost: str, namespace: str) -> ClaimResult:
    """Whether ``namespace`` may provision ``vhost`` on this broker (read only).

    A missing vhost is created by the apply that follows (so that its first provisioning is reported as a
    creation, not as a repair); :func:`record_claim` then writes the claim.
    """
    existing = await broker.get_vhost(vhost)
    holder = claimant((existing or {}).get("description"))
    if existing is None:
        return ClaimResult(True, "Created", f"vhost {vhost} created for namespace {namespace}", namespace,
                           recorded=False, existed=False)
    if holder == namespace:
        return ClaimResult(True, "Claimed", f"vhost {vhost} belongs to namespace {namespace}", namespace)
    if holder is not None:
        return _taken(vhost, holder)
    return ClaimResult(True, "Adopted", f"vhost {vhost} existed without an owner; adopted by namespace {namespace}",
                       namespace, recorded=False)


async def record_claim(broker: BrokerManagement, vhost: str, namespace: str, claim: ClaimResult) -> ClaimResult:
    """Write the claim if it is not there yet; the result says who owns the vhost afterwards."""
    if claim.recorded or not claim.claimed:
        return claim
    await broker.create_vhost(vhost, claim_description(namespace))
    confirmed = claimant(((await broker.get_vhost(vhost)) or {}).get("description"))
    if confirmed is not None and confirmed != namespace:
        return _taken(vhost, confirmed)  # another namespace wrote its claim at the same moment
    return ClaimResult(claim.claimed, claim.reason, claim.message, namespace, recorded=True, existed=claim.existed)


async def claim_vhost(broker: BrokerManagement, vhost: str, namespace: str) -> ClaimResult:
    """Check and record in one go (when nothing has to happen in between)."""
    return await record_claim(broker, vhost, namespace, await check_claim(broker, vhost, namespace))


def _taken(vhost: str, holder: str) -> ClaimResult:
    return ClaimResult(
        False,
        "ClaimedByOtherNamespace",
        f"vhost {vhost} on this broker belongs to namespace {holder}: two hub environments cannot share a vhost; "
        "use another broker (spec.brokerRef) or delete the other VHostVersion",
        holder,
    )
