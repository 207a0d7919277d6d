"""Thin kopf registrations: each handler turns a kopf call into a record and hands it to a reconciler.

Handlers are registered on a registry passed in (never kopf's global one), so that a test can build an operator
of its own.  Every handler first attaches kopf's live indexes to the context (kopf hands them to handlers only).
"""

from __future__ import annotations

import kopf

from hub_operator.context import OperatorContext

from . import hubclients, indexes, perimeters, runtime, vhostversions, workloads


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    runtime.register(registry, context)
    indexes.register(registry, context)
    perimeters.register(registry, context)
    vhostversions.register(registry, context)
    hubclients.register(registry, context)
    workloads.register(registry, context)


__all__ = ["register"]
