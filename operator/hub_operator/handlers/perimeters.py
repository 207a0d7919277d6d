"""Perimeter handlers: status, and roll-out of changes to the perimeter's VHostVersions."""

from __future__ import annotations

from typing import Any

import kopf

from hub_operator.api.base import GROUP, VERSION
from hub_operator.context import OperatorContext
from hub_operator.inventory import PerimeterRecord

PLURAL = "perimeters"


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, id="perimeter")
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="perimeter")
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, id="perimeter")
    async def perimeter_changed(body: kopf.Body, **kwargs: Any) -> None:
        context.attach_indexes(kwargs)
        await context.perimeters.reconcile(PerimeterRecord.from_body(body))

    # No finalizer: a Perimeter owns nothing on the broker; its VHostVersions then report PerimeterNotFound.
    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, id="perimeter-deleted", optional=True)
    async def perimeter_deleted(body: kopf.Body, **kwargs: Any) -> None:
        context.attach_indexes(kwargs)
        record = PerimeterRecord.from_body(body)
        context.perimeters.forget(record)
        context.perimeters.roll_out(record.namespace, record.name)
