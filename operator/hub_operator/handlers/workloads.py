"""Dispatcher Deployments: their readiness feeds the VHostVersion status without a broker round trip."""

from __future__ import annotations

from typing import Any

import kopf

from hub_operator.api.base import GROUP
from hub_operator.builders.workloads import (
    COMPONENT_DISPATCHER,
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    MANAGED_BY,
)
from hub_operator.context import OperatorContext


def owning_vhost_version(body: kopf.Body) -> str | None:
    for reference in body.get("metadata", {}).get("ownerReferences") or []:
        if reference.get("kind") == "VHostVersion" and str(reference.get("apiVersion", "")).startswith(f"{GROUP}/"):
            return str(reference.get("name"))
    return None


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    @kopf.on.event("apps", "v1", "deployments", registry=registry, id="dispatcher-readiness",
                   labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_COMPONENT: COMPONENT_DISPATCHER})
    async def dispatcher_deployment_event(body: kopf.Body, type: str | None, namespace: str | None,
                                          **kwargs: Any) -> None:
        context.attach_indexes(kwargs)
        name = owning_vhost_version(body)
        if name is None or namespace is None:
            return
        await context.vhosts.dispatcher_changed((namespace, name), None if type == "DELETED" else dict(body))
