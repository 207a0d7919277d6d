"""Kubernetes Events on the hub's custom resources (what ``kubectl describe`` shows), sent in the background.

An Event is a report, never a step of a reconcile: a failure to post one is logged and forgotten.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from hub_operator.api.base import API_VERSION
from hub_operator.clients.kubernetes import (
    KubernetesClient,
    KubernetesError,
    ObjectReference,
)
from hub_operator.inventory import KIND_OF_RECORD, ObjectRecord

log = logging.getLogger(__name__)

NORMAL: Final = "Normal"
WARNING: Final = "Warning"


class EventRecorder:
    def __init__(self, kube: KubernetesClient) -> None:
        self._kube = kube
        self._tasks: set[asyncio.Task[None]] = set()

    def emit(self, record: ObjectRecord, event_type: str, reason: str, message: str) -> None:
        reference = ObjectReference(API_VERSION, _kind(record), record.namespace, record.name, record.uid)
        level = logging.WARNING if event_type == WARNING else logging.INFO
        log.log(level, "%s %s/%s: %s: %s", reference.kind, record.namespace, record.name, reason, message,
                extra={"object": f"{record.namespace}/{record.name}", "kind": reference.kind, "reason": reason})
        task = asyncio.create_task(self._post(reference, event_type, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, reference: ObjectReference, event_type: str, reason: str, message: str) -> None:
        try:
            await self._kube.create_event(reference, type=event_type, reason=reason, message=message)
        except KubernetesError as error:
            log.debug("could not post Event %s on %s/%s: %s", reason, reference.namespace, reference.name, error)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _kind(record: ObjectRecord) -> str:
    for record_type, kind in KIND_OF_RECORD.items():
        if isinstance(record, record_type):
            return kind
    raise TypeError(type(record).__name__)
