"""kopf indexes of the three kinds: the operator's in-memory inventory (see hub_operator.inventory)."""

from __future__ import annotations

from typing import Any

import kopf

from hub_operator.api.base import GROUP, VERSION
from hub_operator.context import (
    CLIENT_INDEX,
    PERIMETER_INDEX,
    VHOSTVERSION_INDEX,
    OperatorContext,
)
from hub_operator.inventory import (
    ClientRecord,
    PerimeterRecord,
    VHostVersionRecord,
    client_index_keys,
    perimeter_index_keys,
    vhost_version_index_keys,
)


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    def perimeters(body: kopf.Body, **_: Any) -> dict[Any, PerimeterRecord]:
        record = PerimeterRecord.from_body(body)
        return {key: record for key in perimeter_index_keys(record)}

    def vhost_versions(body: kopf.Body, **_: Any) -> dict[Any, VHostVersionRecord]:
        record = VHostVersionRecord.from_body(body)
        return {key: record for key in vhost_version_index_keys(record)}

    def clients(body: kopf.Body, **_: Any) -> dict[Any, ClientRecord]:
        record = ClientRecord.from_body(body)
        return {key: record for key in client_index_keys(record)}

    kopf.index(GROUP, VERSION, "perimeters", id=PERIMETER_INDEX, registry=registry)(perimeters)
    kopf.index(GROUP, VERSION, "vhostversions", id=VHOSTVERSION_INDEX, registry=registry)(vhost_versions)
    kopf.index(GROUP, VERSION, "hubclients", id=CLIENT_INDEX, registry=registry)(clients)
