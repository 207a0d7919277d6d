"""Operator-wide kopf configuration: storage of kopf's own state, posting, login and probes."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from hub_operator.api.base import GROUP
from hub_operator.context import OperatorContext

FINALIZER = f"{GROUP}/finalizer"


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    settings = context.settings

    @kopf.on.startup(registry=registry, id="configure")
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # kopf's own bookkeeping lives in hubsante.io annotations (status fields are pruned by the CRD schema).
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        # The operator posts its own meaningful Events; kopf only reports its warnings and errors.
        settings.posting.level = logging.WARNING
        # kopf posts its object log records (e.g. "Handler ... failed ...: <the API server's 403>") as Events
        # only with this on (off by default since kopf 1.45): without it a handler failure is in the log only.
        settings.posting.loggers = True
        settings.posting.reporting_component = "hub-operator"
        settings.posting.reporting_instance = context.settings.identity
        settings.queueing.worker_limit = context.settings.worker_limit or None
        # No CRD or namespace scanning: the served kinds are known, so no cluster-wide RBAC is needed.
        settings.scanning.disabled = True
        # One active operator is ensured by the Lease (hub_operator.leadership), not by kopf peering.
        settings.peering.standalone = True
        settings.networking.request_timeout = 60
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        # Timers return as soon as they are told to stop (handlers.stopping): give them a moment to do so before
        # kopf postpones a deletion, and look again after seconds rather than a minute if one is still finishing.
        settings.background.instant_exit_timeout = 0.1
        settings.background.cancellation_polling = 5

    @kopf.on.login(registry=registry, id="login")
    def login(**_: Any) -> kopf.ConnectionInfo:
        return context.kube.connection_info()

    @kopf.on.probe(id="vhosts", registry=registry)
    def vhosts_probe(**_: Any) -> int:
        return len(context.vhosts.outcomes)

    @kopf.on.probe(id="identity", registry=registry)
    def identity_probe(**_: Any) -> str:
        return settings.identity
