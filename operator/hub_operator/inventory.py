"""What the operator knows about the custom resources: immutable records, and the lookups reconciles need.

kopf keeps the records in its indexes (``handlers/indexes.py``), which it fills from its watch streams and
keeps current.  kopf starts no handler before every index has seen the initial listing, so a vhost is never
applied from a partial view of its clients: that matters because an apply revokes the access of every managed
user its desired state leaves out.  Unit tests use :class:`MemoryInventory` with the same record types.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import ValidationError

from hub_operator.api.base import API_VERSION
from hub_operator.api.hubclient import HUBCLIENT, HubClientSpec
from hub_operator.api.perimeter import PERIMETER, PerimeterSpec
from hub_operator.api.vhostversion import VHOSTVERSION, VHostVersionSpec

#: Annotation completing a deletion without touching the broker (docs/operations/deletion.md).
SKIP_BROKER_CLEANUP_ANNOTATION = "hubsante.io/skip-broker-cleanup"

ObjectKey = tuple[str, str]
"""(namespace, name)"""


def spec_error_message(error: ValidationError) -> str:
    parts = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem.get("loc", ())) or "spec"
        parts.append(f"{where}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts)[:1000]


@dataclass(frozen=True)
class ObjectRecord:
    """Fields every record has (from ``metadata``)."""

    namespace: str
    name: str
    uid: str
    generation: int | None
    created: str
    """creationTimestamp (RFC 3339 sorts as text): the older object wins a conflict."""
    deleting: bool
    annotations: Mapping[str, str] = field(default_factory=dict, compare=True)
    status: Mapping[str, Any] = field(default_factory=dict)
    spec_error: str | None = None

    @property
    def key(self) -> ObjectKey:
        return (self.namespace, self.name)

    @property
    def skip_broker_cleanup(self) -> bool:
        return self.annotations.get(SKIP_BROKER_CLEANUP_ANNOTATION, "").strip().lower() == "true"

    @property
    def seniority(self) -> tuple[str, str]:
        return (self.created, self.name)


def _metadata_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    return {
        "namespace": metadata.get("namespace") or "",
        "name": metadata.get("name") or "",
        "uid": metadata.get("uid") or "",
        "generation": metadata.get("generation"),
        "created": str(metadata.get("creationTimestamp") or ""),
        "deleting": metadata.get("deletionTimestamp") is not None,
        "annotations": dict(metadata.get("annotations") or {}),
        "status": dict(body.get("status") or {}),
    }


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": True,
            "blockOwnerDeletion": True}


@dataclass(frozen=True)
class PerimeterRecord(ObjectRecord):
    spec: PerimeterSpec | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PerimeterRecord:
        spec, error = _parse(PerimeterSpec, body)
        return cls(**_metadata_fields(body), spec=spec, spec_error=error)


@dataclass(frozen=True)
class VHostVersionRecord(ObjectRecord):
    spec: VHostVersionSpec | None = None
    perimeter_name: str | None = None
    """From the raw spec, so that an invalid VHostVersion still shows on its Perimeter."""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> VHostVersionRecord:
        spec, error = _parse(VHostVersionSpec, body)
        raw_ref = (body.get("spec") or {}).get("perimeterRef") or {}
        perimeter = spec.perimeter if spec else (raw_ref.get("name") if isinstance(raw_ref, dict) else None)
        return cls(**_metadata_fields(body), spec=spec, spec_error=error, perimeter_name=perimeter)

    @property
    def owner(self) -> dict[str, Any]:
        return owner_reference(API_VERSION, VHOSTVERSION.kind, self.name, self.uid)

    @property
    def vhost(self) -> str | None:
        return self.spec.vhost_name if self.spec else None


@dataclass(frozen=True)
class ClientRecord(ObjectRecord):
    spec: HubClientSpec | None = None
    vhost_versions: tuple[str, ...] = ()
    """From the raw spec when it is invalid, so that its vhosts still learn it exists."""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ClientRecord:
        spec, error = _parse(HubClientSpec, body)
        if spec is not None:
            vhosts = tuple(spec.vhost_versions)
        else:
            raw = (body.get("spec") or {}).get("vhostVersions")
            vhosts = tuple(v for v in raw if isinstance(v, str)) if isinstance(raw, list) else ()
        return cls(**_metadata_fields(body), spec=spec, spec_error=error, vhost_versions=vhosts)

    @property
    def owner(self) -> dict[str, Any]:
        return owner_reference(API_VERSION, HUBCLIENT.kind, self.name, self.uid)

    @property
    def username(self) -> str | None:
        return self.spec.username if self.spec else None


def _parse(model: Any, body: Mapping[str, Any]) -> tuple[Any, str | None]:
    try:
        return model.model_validate(body.get("spec") or {}), None
    except ValidationError as error:
        return None, spec_error_message(error)


# -- index keys ------------------------------------------------------------------------------------------------
# One kopf index per kind; each record is filed under several tagged keys.

BY_NAME = "name"
BY_VHOST_VERSION = "vhost-version"
BY_USERNAME = "username"
BY_PERIMETER = "perimeter"


def client_index_keys(record: ClientRecord) -> list[tuple[str, str, str]]:
    keys = [(BY_NAME, record.namespace, record.name)]
    keys += [(BY_VHOST_VERSION, record.namespace, vhost_version) for vhost_version in record.vhost_versions]
    if record.username:
        keys.append((BY_USERNAME, record.namespace, record.username))
    return keys


def vhost_version_index_keys(record: VHostVersionRecord) -> list[tuple[str, str, str]]:
    keys = [(BY_NAME, record.namespace, record.name)]
    if record.perimeter_name:
        keys.append((BY_PERIMETER, record.namespace, record.perimeter_name))
    return keys


def perimeter_index_keys(record: PerimeterRecord) -> list[tuple[str, str, str]]:
    return [(BY_NAME, record.namespace, record.name)]


R = TypeVar("R", bound=ObjectRecord)
R_co = TypeVar("R_co", bound=ObjectRecord, covariant=True)


class IndexView(Protocol[R_co]):
    """What kopf's ``Index`` offers: key -> a collection of records."""

    def __contains__(self, key: object) -> bool: ...

    def __getitem__(self, key: Any) -> Iterable[R_co]: ...

    def __iter__(self) -> Any: ...


class Inventory:
    """Lookups over the three indexes (kopf's, or :class:`MemoryIndex` in tests)."""

    def __init__(
        self,
        perimeters: IndexView[PerimeterRecord],
        vhost_versions: IndexView[VHostVersionRecord],
        clients: IndexView[ClientRecord],
    ) -> None:
        self._perimeters = perimeters
        self._vhost_versions = vhost_versions
        self._clients = clients

    @staticmethod
    def _all(index: IndexView[R], key: tuple[str, str, str]) -> list[R]:
        return sorted(index[key], key=lambda record: record.seniority) if key in index else []

    @staticmethod
    def _one(index: IndexView[R], key: tuple[str, str, str]) -> R | None:
        found = Inventory._all(index, key)
        return found[-1] if found else None  # a name is reused only after deletion: the newest wins

    def perimeter(self, namespace: str, name: str) -> PerimeterRecord | None:
        return self._one(self._perimeters, (BY_NAME, namespace, name))

    def vhost_version(self, namespace: str, name: str) -> VHostVersionRecord | None:
        return self._one(self._vhost_versions, (BY_NAME, namespace, name))

    def vhost_versions_of_perimeter(self, namespace: str, perimeter: str) -> list[VHostVersionRecord]:
        return self._all(self._vhost_versions, (BY_PERIMETER, namespace, perimeter))

    def client(self, namespace: str, name: str) -> ClientRecord | None:
        return self._one(self._clients, (BY_NAME, namespace, name))

    def clients_of_vhost_version(self, namespace: str, vhost_version: str) -> list[ClientRecord]:
        return self._all(self._clients, (BY_VHOST_VERSION, namespace, vhost_version))

    def clients_with_username(self, namespace: str, username: str) -> list[ClientRecord]:
        return self._all(self._clients, (BY_USERNAME, namespace, username))

    def _of_kind(self, index: IndexView[R]) -> list[R]:
        return [record for key in list(index) if key[0] == BY_NAME for record in index[key]]

    def all_perimeters(self) -> list[PerimeterRecord]:
        return self._of_kind(self._perimeters)

    def all_vhost_versions(self) -> list[VHostVersionRecord]:
        return self._of_kind(self._vhost_versions)

    def all_clients(self) -> list[ClientRecord]:
        return self._of_kind(self._clients)


K = TypeVar("K", bound=Hashable)


class MemoryIndex(Generic[R]):
    """An in-memory stand-in for a kopf index (unit tests)."""

    def __init__(self, keys: Callable[[R], list[tuple[str, str, str]]]) -> None:
        self._keys = keys
        self._records: dict[str, R] = {}

    def put(self, record: R) -> None:
        self._records[record.uid] = record

    def remove(self, record: R) -> None:
        self._records.pop(record.uid, None)

    def _view(self) -> dict[tuple[str, str, str], list[R]]:
        view: dict[tuple[str, str, str], list[R]] = {}
        for record in self._records.values():
            for key in self._keys(record):
                view.setdefault(key, []).append(record)
        return view

    def __contains__(self, key: object) -> bool:
        return key in self._view()

    def __getitem__(self, key: Any) -> list[R]:
        return self._view()[key]

    def __iter__(self) -> Any:
        return iter(list(self._view()))


class MemoryInventory(Inventory):
    def __init__(self) -> None:
        self.perimeters: MemoryIndex[PerimeterRecord] = MemoryIndex(perimeter_index_keys)
        self.vhost_versions: MemoryIndex[VHostVersionRecord] = MemoryIndex(vhost_version_index_keys)
        self.clients: MemoryIndex[ClientRecord] = MemoryIndex(client_index_keys)
        super().__init__(self.perimeters, self.vhost_versions, self.clients)

    def put(self, record: ObjectRecord) -> None:
        if isinstance(record, PerimeterRecord):
            self.perimeters.put(record)
        elif isinstance(record, VHostVersionRecord):
            self.vhost_versions.put(record)
        elif isinstance(record, ClientRecord):
            self.clients.put(record)
        else:
            raise TypeError(type(record).__name__)

    def remove(self, record: ObjectRecord) -> None:
        for index in (self.perimeters, self.vhost_versions, self.clients):
            index.remove(record)  # type: ignore[arg-type]


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


KIND_OF_RECORD: Mapping[type, str] = {
    PerimeterRecord: PERIMETER.kind,
    VHostVersionRecord: VHOSTVERSION.kind,
    ClientRecord: HUBCLIENT.kind,
}
PLURAL_OF_RECORD: Mapping[type, str] = {
    PerimeterRecord: PERIMETER.plural,
    VHostVersionRecord: VHOSTVERSION.plural,
    ClientRecord: HUBCLIENT.plural,
}
