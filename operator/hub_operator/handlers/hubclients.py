"""HubClient handlers: certificate and access on change, certificate renewal on a timer, revocation on deletion."""

from __future__ import annotations

import datetime as dt
from typing import Any

import kopf

from hub_operator.api.base import GROUP, VERSION
from hub_operator.context import OperatorContext
from hub_operator.events import WARNING
from hub_operator.inventory import ClientRecord
from hub_operator.status import Problem

from .retry import backoff, deletion_message, elapsed_since, should_give_up

PLURAL = "hubclients"
KIND = "HubClient"


def _previous_vhosts(old: Any) -> list[str]:
    raw = ((old or {}).get("spec") or {}).get("vhostVersions") or []
    return [v for v in raw if isinstance(v, str)]


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    settings = context.settings

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, id="hubclient")
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="hubclient")
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, id="hubclient")
    async def client_changed(body: kopf.Body, retry: int, old: Any = None, **kwargs: Any) -> None:
        context.attach_indexes(kwargs)
        record = ClientRecord.from_body(body)
        result = await context.clients.reconcile(record, previous_vhosts=_previous_vhosts(old))
        context.update_gauges()
        problem = result.transient
        if problem is not None:
            raise kopf.TemporaryError(f"{problem.reason}: {problem.message}", delay=backoff(retry))

    @kopf.timer(GROUP, VERSION, PLURAL, registry=registry, id="certificate", interval=settings.certificate_check_interval,
                initial_delay=settings.certificate_check_interval)
    async def client_certificate_check(body: kopf.Body, **kwargs: Any) -> None:
        context.attach_indexes(kwargs)
        record = ClientRecord.from_body(body)
        await context.clients.check_certificate(record)
        await context.clients.publish(record.namespace, record.name)

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, id="cleanup")
    async def client_deleted(body: kopf.Body, retry: int, started: dt.datetime, **kwargs: Any) -> None:
        context.attach_indexes(kwargs)
        record = ClientRecord.from_body(body)
        result = await context.clients.delete(record)
        if result.done:
            return
        problem = result.problem or Problem("DeletionPending", "broker clean-up did not complete", transient=True)
        elapsed = elapsed_since(started, dt.datetime.now(dt.UTC))
        if should_give_up(settings, elapsed):
            context.events.emit(record, WARNING, "BrokerCleanupAbandoned",
                                f"deleted after {elapsed.total_seconds():.0f}s without broker clean-up: {problem.message}; "
                                "its permissions are revoked by the next apply of each vhost")
            context.clients.forget(record)
            return
        message = deletion_message(KIND, record.name, problem, settings, elapsed)
        await context.clients.publish_deletion_pending(record, Problem(problem.reason, message, True))
        raise kopf.TemporaryError(message, delay=backoff(retry, settings.deletion_retry_max_delay))
