"""The custom resources of one hub environment, parsed with the API models, and lookups across them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from hub_operator.api.common import Condition, ConditionStatus, find_condition
from hub_operator.api.crdgen import KINDS
from hub_operator.api.hubclient import HUBCLIENT
from hub_operator.api.perimeter import PERIMETER
from hub_operator.api.resources import HubClient, Perimeter, VHostVersion
from hub_operator.api.vhostversion import VHOSTVERSION
from hub_operator.cli.errors import HubctlError
from hub_operator.cli.kube import HubReader

Resource = TypeVar("Resource", Perimeter, VHostVersion, HubClient)
#: Readiness reasons hubctl uses when the operator has written nothing (yet).
NO_STATUS = "NoStatus"
NO_READY_CONDITION = "NoReadyCondition"


@dataclass(frozen=True)
class Readiness:
    """The Ready condition as hubctl shows it, and whether it describes the current spec."""

    status: str
    reason: str = ""
    message: str = ""
    stale: bool = False
    """True when the operator has not yet reconciled the current metadata.generation."""

    @property
    def ready(self) -> bool:
        return self.status == ConditionStatus.TRUE.value and not self.stale

    @classmethod
    def of(cls, resource: Perimeter | VHostVersion | HubClient) -> Readiness:
        conditions: list[Condition] = resource.status.conditions if resource.status else []
        ready = find_condition(conditions, "Ready")
        generation = resource.metadata.generation
        observed = ready.observed_generation if ready and ready.observed_generation is not None else (
            resource.status.observed_generation if resource.status else None)
        stale = generation is not None and (observed is None or observed < generation)
        if ready is None:
            return cls("Unknown", NO_STATUS if resource.status is None else NO_READY_CONDITION, stale=stale)
        return cls(ready.status.value, ready.reason, ready.message, stale)


@dataclass
class Inventory:
    namespace: str
    perimeters: list[Perimeter] = field(default_factory=list)
    vhost_versions: list[VHostVersion] = field(default_factory=list)
    hub_clients: list[HubClient] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Objects that do not match the API models (shown as warnings, never fatal)."""

    @classmethod
    def load(cls, reader: HubReader, kinds: Iterable[str] = tuple(info.kind for info in KINDS)) -> Inventory:
        inventory = cls(reader.namespace)
        wanted = set(kinds)
        if PERIMETER.kind in wanted:
            inventory.perimeters = inventory._parse(Perimeter, reader.list(PERIMETER))
        if VHOSTVERSION.kind in wanted:
            inventory.vhost_versions = inventory._parse(VHostVersion, reader.list(VHOSTVERSION))
        if HUBCLIENT.kind in wanted:
            inventory.hub_clients = inventory._parse(HubClient, reader.list(HUBCLIENT))
        return inventory

    def _parse(self, model: type[Resource], bodies: list[dict[str, Any]]) -> list[Resource]:
        parsed: list[Resource] = []
        for body in bodies:
            name = body.get("metadata", {}).get("name", "?")
            try:
                parsed.append(model.model_validate(body))
                continue
            except ValidationError as error:
                problem = _first_error(error)
            # A status written by a newer operator may carry fields this hubctl does not know: keep the spec.
            try:
                parsed.append(model.model_validate({key: value for key, value in body.items() if key != "status"}))
                self.problems.append(f"{model.__name__} {name}: status ignored ({problem})")
            except ValidationError as error:
                self.problems.append(f"{model.__name__} {name}: skipped, not a valid {model.__name__} "
                                     f"({_first_error(error)})")
        return parsed

    # -- lookups ------------------------------------------------------------------------------------------------
    def vhost_version(self, name: str) -> VHostVersion | None:
        return next((v for v in self.vhost_versions if v.metadata.name == name), None)

    def vhost_version_for(self, vhost_or_name: str) -> VHostVersion:
        """A VHostVersion by object name (``15-15-v2.0``) or vhost name (``15-15_v2.0``)."""
        for candidate in self.vhost_versions:
            if vhost_or_name in (candidate.metadata.name, candidate.spec.vhost_name):
                return candidate
        known = ", ".join(f"{v.spec.vhost_name} ({v.metadata.name})" for v in self.vhost_versions) or "none"
        raise HubctlError(f"no VHostVersion {vhost_or_name!r} in namespace {self.namespace}; known: {known}")

    def client_serving(self, client_id: str) -> HubClient:
        """The HubClient whose clientId or additionalClientIds include ``client_id``."""
        serving = [c for c in self.hub_clients if client_id in c.spec.all_client_ids]
        if not serving:
            known = ", ".join(sorted(i for c in self.hub_clients for i in c.spec.all_client_ids)) or "none"
            raise HubctlError(f"no HubClient serves client id {client_id} in namespace {self.namespace}",
                              hint=f"client ids served there: {known}")
        if len(serving) > 1:
            names = ", ".join(c.metadata.name for c in serving)
            raise HubctlError(f"client id {client_id} is served by several HubClients ({names}); fix that first")
        return serving[0]

    def perimeter(self, name: str) -> Perimeter | None:
        return next((p for p in self.perimeters if p.metadata.name == name), None)


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}"
