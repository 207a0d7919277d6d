"""The local node: the kubelet of a machine without containers, for the dispatcher pods of one namespace.

The local control plane has a controller manager (Deployments get ReplicaSets and Pods) but no kubelet.  The
local node takes its place for the pods the operator's Deployments create: for each pod it

1. writes the pod's Secret and ConfigMap volumes to local folders and runs its bundle-copying init container
   (the bundle image stands for the local bundle of the VHostVersion's model version),
2. starts the container's command (``hub-dispatcher``, the project's console script) as a local process with
   the container's environment, translated by :mod:`hub_devenv.localpods`,
3. probes the container's readiness endpoint and writes the pod status a kubelet would (Ready only while
   ``/readyz`` answers 200; a process that exits shows as a crash loop and is restarted with a back-off),
4. refreshes ConfigMap volumes (the dispatchers reload their client preferences live, as in a pod),
5. stops the process (SIGTERM: the dispatcher drains) when the pod goes away — scale-down, rollout, deletion.

It also runs the cert-manager stand-in (:mod:`hub_devenv.certmanager`) for the namespace.  Every process it
starts is recorded in the environment's state file, so ``hub-devenv down`` stops them even if the node died.

    python -m hub_devenv node --namespace hub-sandbox      # started (detached) by the demo
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub_operator import pki
from hub_operator.api.base import GROUP, VERSION
from hub_operator.api.modelbundle import DEFAULT_MODELS_ROOT
from hub_operator.api.vhostversion import VHOSTVERSION
from hub_operator.builders.workloads import APP_NAME, LABEL_NAME, LABEL_VHOST_VERSION
from kubernetes import client as k8s

from .certmanager import CertManagerEmulator
from .environment import DISPATCHER_PROCESS_PREFIX, register_process, unregister_process
from .kubelet import running_status
from .localpods import (
    LocalContainer,
    ProjectedSource,
    UnsupportedPod,
    container_ports,
    plan_container,
    plan_init_copies,
    plan_volumes,
)
from .processes import free_ports, terminate

log = logging.getLogger("hub_devenv.localnode")

DISPATCHER_PODS = f"{LABEL_NAME}={APP_NAME}"
PROCESS_FILE = "process.json"
NODE_STARTED_LINE = "local node running for namespace"
SYNC_INTERVAL = 1.0
VOLUME_REFRESH_INTERVAL = 5.0
RESTART_BACKOFF_MAX = 30.0
#: Readiness probes answer in milliseconds on loopback; a slow answer is a failed probe, as in a kubelet.
PROBE_TIMEOUT = 2.0


def list_pods(api_client: k8s.ApiClient, namespace: str, label_selector: str) -> list[dict[str, Any]]:
    """The pods as plain manifests (camelCase, as ``kubectl get -o json`` shows them)."""
    listing = k8s.CoreV1Api(api_client).list_namespaced_pod(namespace, label_selector=label_selector)
    manifests: list[dict[str, Any]] = api_client.sanitize_for_serialization(listing).get("items") or []
    return manifests


def pod_directory(root: Path, pod_name: str) -> Path:
    """Where the node keeps a pod's volumes and its process description (``process.json``)."""
    return root / "pods" / pod_name


def pod_log_path(root: Path, pod_name: str) -> Path:
    return root / "logs" / f"{pod_name}.log"


def read_process_file(root: Path, pod_name: str) -> dict[str, Any] | None:
    """What the node wrote about a pod's process (pid, local ports, probe URLs, log), None before it started."""
    try:
        description: dict[str, Any] = json.loads((pod_directory(root, pod_name) / PROCESS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return description


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PodProcess:
    """One pod's container as a local process, with what its status last said."""

    name: str
    uid: str
    directory: Path
    container: LocalContainer
    log_path: Path
    grace_seconds: float
    volume_sources: list[tuple[Path, ProjectedSource]]
    """Where each Secret or ConfigMap projection was written, to refresh ConfigMaps as a kubelet does."""
    process: subprocess.Popen[bytes] | None = None
    started_at: str = ""
    restarts: int = 0
    last_exit: dict[str, Any] | None = None
    restart_at: float = 0.0
    written_status: tuple[Any, ...] | None = None

    @property
    def process_name(self) -> str:
        return DISPATCHER_PROCESS_PREFIX + self.name


@dataclass
class LocalNode:
    api_client: k8s.ApiClient
    namespace: str
    root: Path
    """The environment's state folder (``.cache/devenv``): state file, logs, pod folders."""
    models_root: Path
    issuers: Mapping[str, pki.CertificateAuthority] = field(default_factory=dict)
    """cert-manager issuers by name (the stand-in issues their Certificates); empty = no cert-manager."""
    scripts_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)
    label_selector: str = DISPATCHER_PODS
    _pods: dict[str, PodProcess] = field(default_factory=dict, init=False)
    _waiting: dict[str, str] = field(default_factory=dict, init=False)
    _last_refresh: float = field(default=0.0, init=False)
    _stopping: list[threading.Thread] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._core = k8s.CoreV1Api(self.api_client)
        self._objects = k8s.CustomObjectsApi(self.api_client)
        self._cert_manager = (CertManagerEmulator(self.api_client, self.namespace, dict(self.issuers))
                              if self.issuers else None)

    # -- the loop ---------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        log.info("%s %s (pods %s)", NODE_STARTED_LINE, self.namespace, self.label_selector)
        try:
            while not stop.is_set():
                try:
                    self.sync_once()
                except Exception:
                    log.exception("sync failed")
                stop.wait(SYNC_INTERVAL)
        finally:
            self.shutdown()

    def sync_once(self) -> None:
        if self._cert_manager is not None:
            try:
                self._cert_manager.sync_once()
            except k8s.ApiException as error:
                log.debug("cert-manager stand-in: %s", error.reason)
        alive = {pod["metadata"]["uid"]: pod for pod in list_pods(self.api_client, self.namespace, self.label_selector)
                 if not pod["metadata"].get("deletionTimestamp")}
        for uid in [uid for uid in self._pods if uid not in alive]:
            # A draining dispatcher may take its grace period: the other pods' probes must not wait for it.
            stopping = threading.Thread(target=self._stop_pod, args=(self._pods.pop(uid),), daemon=True)
            stopping.start()
            self._stopping.append(stopping)
        self._stopping = [thread for thread in self._stopping if thread.is_alive()]
        refresh = time.monotonic() - self._last_refresh > VOLUME_REFRESH_INTERVAL
        for uid, pod in alive.items():
            running = self._pods.get(uid)
            if running is None:
                running = self._start_pod(pod)
                if running is None:
                    continue
                self._pods[uid] = running
            elif refresh:
                self._refresh_volumes(running)
            self._supervise(running)
            self._write_status(running, pod)
        if refresh:
            self._last_refresh = time.monotonic()

    def shutdown(self) -> None:
        """Stop every pod's process (in parallel: each drains on SIGTERM)."""
        pods, self._pods = list(self._pods.values()), {}
        threads = [threading.Thread(target=self._stop_pod, args=(pod,)) for pod in pods]
        for thread in threads:
            thread.start()
        for thread in [*threads, *self._stopping]:
            thread.join()

    # -- starting a pod ---------------------------------------------------------------------------------------
    def _start_pod(self, manifest: dict[str, Any]) -> PodProcess | None:
        name = str(manifest["metadata"]["name"])
        directory = pod_directory(self.root, name)
        try:
            volume_dirs, sources = self._materialise_volumes(manifest, directory)
            self._run_init_copies(manifest, volume_dirs)
            ports = container_ports(manifest)
            local_ports = dict(zip(ports, free_ports(len(ports)), strict=True))
            container = plan_container(
                manifest, volume_dirs=volume_dirs, resolve_image_path=self._image_path_resolver(manifest),
                local_ports=local_ports, scripts_dir=self.scripts_dir, inherited_env=os.environ,
            )
        except (UnsupportedPod, MissingObject) as problem:
            if self._waiting.get(name) != str(problem):
                log.warning("pod %s cannot start: %s", name, problem)
                self._waiting[name] = str(problem)
                self._write_pending(name, problem)
            return None
        self._waiting.pop(name, None)
        running = PodProcess(
            name=name, uid=str(manifest["metadata"]["uid"]), directory=directory, container=container,
            log_path=pod_log_path(self.root, name), volume_sources=sources,
            grace_seconds=float(manifest["spec"].get("terminationGracePeriodSeconds") or 30),
        )
        self._spawn(running)
        return running

    def _materialise_volumes(
        self, manifest: Mapping[str, Any], directory: Path
    ) -> tuple[dict[str, Path], list[tuple[Path, ProjectedSource]]]:
        volume_dirs: dict[str, Path] = {}
        sources: list[tuple[Path, ProjectedSource]] = []
        for plan in plan_volumes(manifest):
            folder = directory / "volumes" / plan.name
            folder.mkdir(parents=True, exist_ok=True)
            volume_dirs[plan.name] = folder
            for source in plan.sources:
                self._project(folder, source)
                sources.append((folder, source))
        return volume_dirs, sources

    def _project(self, folder: Path, source: ProjectedSource) -> bool:
        """Write a Secret's or ConfigMap's keys into ``folder``; True when a file changed."""
        data = self._object_data(source.kind, source.name)
        pairs = source.items if source.items is not None else tuple((key, key) for key in sorted(data))
        changed = False
        for key, relative in pairs:
            if key not in data:
                raise MissingObject(f"{source.kind} {source.name} has no key {key}")
            target = folder / relative
            if target.exists() and target.read_bytes() == data[key]:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.tmp")
            temporary.write_bytes(data[key])
            # The pod's mode is for its fsGroup; locally the owner is the only reader that matters.
            temporary.chmod(source.mode & 0o700 or 0o600)
            temporary.replace(target)  # atomic, as the kubelet's symlink swap: a reader never sees half a file
            changed = True
        return changed

    def _object_data(self, kind: str, name: str) -> dict[str, bytes]:
        try:
            if kind == "Secret":
                secret = self._core.read_namespaced_secret(name, self.namespace)
                return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}
            config_map = self._core.read_namespaced_config_map(name, self.namespace)
        except k8s.ApiException as error:
            if error.status == 404:
                raise MissingObject(f"{kind} {name} not found (yet)") from None
            raise
        data = {key: value.encode() for key, value in (config_map.data or {}).items()}
        data.update({key: base64.b64decode(value) for key, value in (config_map.binary_data or {}).items()})
        return data

    def _image_path_resolver(self, manifest: Mapping[str, Any]) -> Callable[[str, str], Path | None]:
        """Paths inside images: the project image keeps the bundles in /opt/hubsante-models, and a bundle image
        stands for the local bundle of its VHostVersion's model version."""
        bundle_images = self._bundle_images(manifest)

        def resolve(image: str, path: str) -> Path | None:
            if image in bundle_images:
                return bundle_images[image]
            if path == DEFAULT_MODELS_ROOT or path.startswith(DEFAULT_MODELS_ROOT + "/"):
                return self.models_root / path[len(DEFAULT_MODELS_ROOT):].lstrip("/")
            return None

        return resolve

    def _bundle_images(self, manifest: Mapping[str, Any]) -> dict[str, Path]:
        owner = ((manifest.get("metadata") or {}).get("labels") or {}).get(LABEL_VHOST_VERSION)
        if not owner:
            return {}
        try:
            vhost_version: dict[str, Any] = self._objects.get_namespaced_custom_object(  # type: ignore[assignment]
                GROUP, VERSION, self.namespace, VHOSTVERSION.plural, owner)
        except k8s.ApiException:
            return {}
        models = (vhost_version.get("spec") or {}).get("models") or {}
        image = models.get("image") or {}
        return {image["reference"]: self.models_root / models["version"]} if image.get("reference") else {}

    def _run_init_copies(self, manifest: Mapping[str, Any], volume_dirs: Mapping[str, Path]) -> None:
        resolve = self._image_path_resolver(manifest)
        for copy in plan_init_copies(manifest):
            source = resolve(copy.image, copy.source)
            if source is None or not source.is_dir():
                raise UnsupportedPod(f"init container {copy.container}: {copy.source} of image {copy.image} has no "
                                     f"local stand-in")
            shutil.copytree(source, volume_dirs[copy.volume] / copy.subpath, dirs_exist_ok=True)

    def _refresh_volumes(self, running: PodProcess) -> None:
        for folder, source in running.volume_sources:
            if source.kind != "ConfigMap":
                continue  # Secrets change with a new pod (the operator rolls dispatchers on a new certificate)
            with contextlib.suppress(MissingObject, k8s.ApiException):
                if self._project(folder, source):
                    log.info("pod %s: ConfigMap %s updated in its volume", running.name, source.name)

    # -- processes --------------------------------------------------------------------------------------------
    def _spawn(self, running: PodProcess) -> None:
        running.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(running.log_path, "ab") as log_file:
            running.process = subprocess.Popen(
                list(running.container.argv), env=dict(running.container.env), stdout=log_file,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=running.directory,
            )
        running.started_at = _now()
        register_process(running.process_name, running.process.pid, self.root)
        description = {
            "pod": running.name, "pid": running.process.pid, "argv": list(running.container.argv),
            "ports": {str(k): v for k, v in running.container.ports.items()},
            "readinessUrl": running.container.readiness_url, "log": str(running.log_path),
            "startedAt": running.started_at, "restarts": running.restarts,
        }
        (running.directory / PROCESS_FILE).write_text(json.dumps(description, indent=2))
        log.info("pod %s: started %s (pid %d)", running.name, " ".join(running.container.argv), running.process.pid)

    def _supervise(self, running: PodProcess) -> None:
        """Restart an exited process with an exponential back-off (restartPolicy Always)."""
        process = running.process
        if process is not None and process.poll() is not None:
            running.last_exit = {"exitCode": _exit_code(process.returncode), "finishedAt": _now()}
            running.restarts += 1
            delay = min(RESTART_BACKOFF_MAX, 2.0 ** min(running.restarts, 5))
            running.restart_at = time.monotonic() + delay
            running.process = None
            unregister_process(running.process_name, self.root)
            log.warning("pod %s: process exited with %s; restarting in %.0fs", running.name, process.returncode, delay)
        if running.process is None and time.monotonic() >= running.restart_at:
            self._spawn(running)

    def _probe(self, running: PodProcess) -> tuple[bool, str]:
        url = running.container.readiness_url
        if running.process is None:
            return False, f"back-off restarting the container (exit code {(running.last_exit or {}).get('exitCode')})"
        if url is None:
            return True, ""
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as response:
                return response.status == 200, ""
        except urllib.error.HTTPError as error:
            return False, f"readiness probe failed: HTTP {error.code} {error.read()[:200].decode(errors='replace')}"
        except (urllib.error.URLError, OSError) as error:
            return False, f"readiness probe failed: {error}"

    def _write_status(self, running: PodProcess, pod: Mapping[str, Any]) -> None:
        ready, message = self._probe(running)
        crashed = running.process is None
        key = (ready, running.restarts, crashed, running.process.pid if running.process else None)
        if key == running.written_status:
            return
        pid = running.process.pid if running.process else 0
        status = running_status(
            [container["name"] for container in pod["spec"]["containers"]], ready=ready, started_at=running.started_at,
            restart_count=running.restarts, container_id=f"local://{pid}" if pid else "",
            message=message, terminated=running.last_exit if crashed else None,
        )
        try:
            self._core.patch_namespaced_pod_status(running.name, self.namespace, {"status": status})
        except k8s.ApiException as error:
            if error.status != 404:
                raise
            return  # deleted meanwhile: the next sync stops it
        running.written_status = key
        log.info("pod %s: %s%s", running.name, "Ready" if ready else "not ready", f" ({message})" if message else "")

    def _write_pending(self, name: str, problem: Exception) -> None:
        """A pod that cannot start stays Pending with the reason, as a kubelet shows a failed mount."""
        reason = "FailedMount" if isinstance(problem, MissingObject) else "UnsupportedByLocalNode"
        status = {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": _now()},
            {"type": "Ready", "status": "False", "reason": reason, "message": str(problem),
             "lastTransitionTime": _now()},
        ]}
        with contextlib.suppress(k8s.ApiException):
            self._core.patch_namespaced_pod_status(name, self.namespace, {"status": status})

    def _stop_pod(self, running: PodProcess) -> None:
        if running.process is not None:
            log.info("pod %s: gone, stopping pid %d (grace %.0fs)", running.name, running.process.pid,
                     running.grace_seconds)
            terminate(running.process, grace=running.grace_seconds)
        unregister_process(running.process_name, self.root)
        shutil.rmtree(running.directory, ignore_errors=True)


def _exit_code(returncode: int) -> int:
    """As a container runtime reports it: killed by signal N is 128 + N (SIGKILL: 137)."""
    return 128 - returncode if returncode < 0 else returncode


class MissingObject(LookupError):
    """A Secret or ConfigMap a pod mounts does not exist (yet): the pod waits, as with a kubelet."""


def main(namespace: str, root: Path, kubeconfig: Path, models_root: Path, issuer_ca_dir: Path | None) -> int:
    """Run the node until SIGTERM/SIGINT; its dispatchers are stopped (drained) before it exits."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    issuers: dict[str, pki.CertificateAuthority] = {}
    if issuer_ca_dir is not None:
        authority = pki.CertificateAuthority.from_pem((issuer_ca_dir / "ca.crt").read_bytes(),
                                                      (issuer_ca_dir / "ca.key").read_bytes())
        issuers = {name: authority for name in SANDBOX_ISSUERS}
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    LocalNode(api_client, namespace, root, models_root, issuers).run(stop)
    return 0


#: The cert-manager issuers the demo's stand-in serves (the examples' certManager client names this one).
SANDBOX_ISSUERS = ("hub-sandbox-ca",)
