"""VHostVersion handlers: reconcile on change, drift repair on a timer, clean-up on deletion."""

from __future__ import annotations

import datetime as dt
from typing import Any

import kopf

from hub_operator.api.base import GROUP, VERSION
from hub_operator.context import OperatorContext
from hub_operator.events import WARNING
from hub_operator.inventory import VHostVersionRecord
from hub_operator.status import Problem

from .retry import backoff, deletion_message, elapsed_since, should_give_up
from .stopping import unless_stopped

PLURAL = "vhostversions"
KIND = "VHostVersion"


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    settings = context.settings

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, id="vhostversion")
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="vhostversion")
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, id="vhostversion")
    async def vhost_version_changed(body: kopf.Body, retry: int, **kwargs: Any) -> None:
        context.attach_indexes(kwargs)
        record = VHostVersionRecord.from_body(body)
        outcome = await context.vhosts.reconcile(record.key)
        context.update_gauges()
        if outcome.problem is not None and outcome.problem.transient:
            raise kopf.TemporaryError(f"{outcome.problem.reason}: {outcome.problem.message}", delay=backoff(retry))

    # Drift repair, scaling and dispatcher certificate renewal: one full (coalesced) reconcile per interval.
    @kopf.timer(GROUP, VERSION, PLURAL, registry=registry, id="drift", interval=settings.drift_interval,
                initial_delay=settings.drift_interval)
    async def vhost_version_drift(body: kopf.Body, stopped: kopf.DaemonStopped, **kwargs: Any) -> None:
        context.attach_indexes(kwargs)
        # A deletion must not wait for this run (see handlers.stopping); the deletion handler runs the vhost itself.
        await unless_stopped(context.vhosts.reconcile(VHostVersionRecord.from_body(body).key), stopped)

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, id="cleanup")
    async def vhost_version_deleted(body: kopf.Body, retry: int, started: dt.datetime, **kwargs: Any) -> None:
        context.attach_indexes(kwargs)
        record = VHostVersionRecord.from_body(body)
        outcome = await context.vhosts.reconcile(record.key)
        if outcome.deleted or outcome.absent:
            return
        problem = outcome.problem or Problem("DeletionPending", "broker clean-up did not complete", transient=True)
        elapsed = elapsed_since(started, dt.datetime.now(dt.UTC))
        if should_give_up(settings, elapsed):
            context.events.emit(record, WARNING, "BrokerCleanupAbandoned",
                                f"deleted after {elapsed.total_seconds():.0f}s without broker clean-up: {problem.message}")
            await context.vhosts.forget_deleted(record)
            return
        message = deletion_message(KIND, record.name, problem, settings, elapsed)
        await context.vhosts.publish_deletion_pending(record, Problem(problem.reason, message, True))
        raise kopf.TemporaryError(message, delay=backoff(retry, settings.deletion_retry_max_delay))
