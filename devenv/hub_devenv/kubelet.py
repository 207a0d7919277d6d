"""Pod statuses as a kubelet writes them, and a stand-in kubelet that marks the pods of a namespace Ready.

The local control plane has no node, so Deployments get ReplicaSets and Pods that never run.  The
:class:`KubeletEmulator` does what kwok does: it writes the status a kubelet would write for a healthy pod, so
that Deployments report ready replicas and the operator's dispatcher conditions can be tested.  ``ready``
decides per pod; the default marks every pod Ready.  The demo's local node (:mod:`hub_devenv.localnode`) goes
further: it runs each dispatcher pod as a real process and writes these statuses from its probes.

    with KubeletEmulator(cluster.api_client(), namespace):
        ...  # Deployments in the namespace become available
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any, Self

from kubernetes import client as k8s

log = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready_status(pod: Any) -> dict[str, Any]:
    return running_status([container.name for container in pod.spec.containers], ready=True)


def running_status(
    containers: list[str],
    *,
    ready: bool,
    started_at: str | None = None,
    restart_count: int = 0,
    container_id: str = "",
    message: str = "",
    terminated: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The status of a scheduled pod whose containers run (``ready`` or not), or wait after ``terminated``.

    ``terminated`` (``{"exitCode": ..., "finishedAt": ...}``) describes a container that exited and waits to be
    restarted: it is shown the way a kubelet shows a crash loop.
    """
    now = _now()
    readiness = "True" if ready else "False"
    conditions = [{"type": kind, "status": "True", "lastTransitionTime": now} for kind in ("PodScheduled", "Initialized")]
    conditions += [
        {"type": kind, "status": readiness, "lastTransitionTime": now,
         **({} if ready or not message else {"reason": "ContainersNotReady", "message": message})}
        for kind in ("ContainersReady", "Ready")
    ]
    if terminated is not None:
        state: dict[str, Any] = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        last_state: dict[str, Any] = {"terminated": {"reason": "Error", **terminated}}
    else:
        state, last_state = {"running": {"startedAt": started_at or now}}, {}
    return {
        "phase": "Running",
        "startTime": started_at or now,
        "conditions": conditions,
        "containerStatuses": [
            {"name": name, "ready": ready, "started": terminated is None, "restartCount": restart_count,
             "image": "emulated", "imageID": "", "containerID": container_id, "state": state,
             **({"lastState": last_state} if last_state else {})}
            for name in containers
        ],
    }


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


class KubeletEmulator:
    def __init__(
        self,
        api_client: k8s.ApiClient,
        namespace: str,
        *,
        label_selector: str | None = None,
        ready: Callable[[Any], bool] = lambda pod: True,
        interval: float = 0.3,
    ) -> None:
        self._core = k8s.CoreV1Api(api_client)
        self.namespace = namespace
        self.label_selector = label_selector
        self.ready = ready
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"kubelet-{namespace}", daemon=True)
        self.marked: set[str] = set()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sync_once(self) -> None:
        pods = self._core.list_namespaced_pod(self.namespace, label_selector=self.label_selector)
        for pod in pods.items:
            if pod.metadata.deletion_timestamp is not None or is_ready(pod) or not self.ready(pod):
                continue
            self._core.patch_namespaced_pod_status(pod.metadata.name, self.namespace, {"status": ready_status(pod)})
            self.marked.add(pod.metadata.name)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except Exception as error:  # noqa: BLE001 - an API hiccup must not end the emulation
                log.debug("kubelet emulator: %s", error)
            self._stop.wait(self.interval)
