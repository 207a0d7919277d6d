"""How a pod's container runs as a local process: pure functions from a pod manifest to a :class:`LocalContainer`.

The local node (:mod:`hub_devenv.localnode`) is the kubelet of a machine without containers.  For each pod it
materialises the volumes as folders (:func:`plan_volumes` says what goes where), emulates the bundle-copying init
container (:func:`plan_init_copies`), and starts the container's command with the container's environment
(:func:`plan_container`), translated so that the process finds what the container would have found:

* a path under a volume mount becomes the same path under the volume's local folder
  (``/etc/hub-dispatcher/tls/tls.crt`` -> ``<pod dir>/volumes/tls/tls.crt``);
* a path inside the container image becomes the local folder standing in for it (the project image keeps the
  model bundles in ``/opt/hubsante-models``; locally they are :func:`hub_devenv.paths.models_root`);
* every pod has its own network namespace in a cluster, but here they share the machine's loopback: each
  declared container port gets a free local port, the environment variable carrying the port is rewritten, and
  the program is told to listen on 127.0.0.1 only.

Nothing here does I/O, so the translation is unit-tested on rendered manifests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final

#: Environment a program needs to keep listening on loopback only (a pod would listen on its own pod IP).
LOOPBACK_SETTINGS: Final[Mapping[str, Mapping[str, str]]] = {
    "hub-dispatcher": {"HUB_DISPATCHER_METRICS_HOST": "127.0.0.1"},
}
#: Variables of the node's own environment a container never inherits (a pod only gets what its spec declares).
_NOT_INHERITED_PREFIXES: Final = ("HUB_", "KUBECONFIG")

#: Resolves a path inside a container image to the local folder standing in for it: (image, path) -> folder.
ImagePathResolver = Callable[[str, str], Path | None]


class UnsupportedPod(ValueError):
    """A pod the local node cannot run faithfully (the message says what is missing)."""


@dataclass(frozen=True)
class ProjectedSource:
    """A Secret or ConfigMap projected into a volume: every key (``items`` None) or the listed ones."""

    kind: str
    """``Secret`` or ``ConfigMap``."""
    name: str
    items: tuple[tuple[str, str], ...] | None
    """(key, relative path) pairs; None = every key, each as a file named after it."""
    mode: int


@dataclass(frozen=True)
class VolumePlan:
    name: str
    sources: tuple[ProjectedSource, ...] = ()
    """Empty for an emptyDir."""


@dataclass(frozen=True)
class InitCopy:
    """The bundle init container: ``cp -R <source>/. <volume>``, the source being a path of its image."""

    container: str
    image: str
    source: str
    volume: str
    subpath: str = ""


@dataclass(frozen=True)
class LocalContainer:
    """A container as a local process: what to run, with which environment, and how to probe it."""

    pod: str
    container: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    ports: Mapping[int, int] = field(default_factory=dict)
    """Container port -> local port."""
    readiness_url: str | None = None
    liveness_url: str | None = None


def plan_volumes(pod: Mapping[str, Any]) -> list[VolumePlan]:
    """What each volume of the pod holds, in the pod's order."""
    plans = []
    for volume in _spec(pod).get("volumes") or []:
        name = volume["name"]
        if "emptyDir" in volume:
            plans.append(VolumePlan(name))
        elif "secret" in volume:
            plans.append(VolumePlan(name, (_source("Secret", volume["secret"], volume["secret"].get("secretName")),)))
        elif "configMap" in volume:
            plans.append(VolumePlan(name, (_source("ConfigMap", volume["configMap"], volume["configMap"].get("name")),)))
        elif "projected" in volume:
            projected = volume["projected"]
            sources = []
            for entry in projected.get("sources") or []:
                if "configMap" in entry:
                    sources.append(_source("ConfigMap", {"defaultMode": projected.get("defaultMode"), **entry["configMap"]},
                                           entry["configMap"].get("name")))
                elif "secret" in entry:
                    sources.append(_source("Secret", {"defaultMode": projected.get("defaultMode"), **entry["secret"]},
                                           entry["secret"].get("name")))
                else:
                    raise UnsupportedPod(f"volume {name}: only Secret and ConfigMap projections run locally, got {sorted(entry)}")
            plans.append(VolumePlan(name, tuple(sources)))
        else:
            kinds = sorted(key for key in volume if key != "name")
            raise UnsupportedPod(f"volume {name}: {', '.join(kinds)} volumes do not run locally")
    return plans


def _source(kind: str, definition: Mapping[str, Any], name: str | None) -> ProjectedSource:
    if not name:
        raise UnsupportedPod(f"a {kind} volume without a name")
    items = definition.get("items")
    pairs = tuple((item["key"], item["path"]) for item in items) if items else None
    for _, path in pairs or ():
        _relative(path)
    mode = definition.get("defaultMode")
    return ProjectedSource(kind, name, pairs, int(mode) if mode is not None else 0o644)


def _relative(path: str) -> PurePosixPath:
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts:
        raise UnsupportedPod(f"volume item path {path!r} leaves its volume")
    return relative


def plan_init_copies(pod: Mapping[str, Any]) -> list[InitCopy]:
    """The pod's init containers, which must all be bundle copies (``cp -R <dir>/. <mount>``)."""
    copies = []
    for container in _spec(pod).get("initContainers") or []:
        command = [*(container.get("command") or []), *(container.get("args") or [])]
        if len(command) != 4 or command[:2] != ["cp", "-R"] or not command[2].endswith("/."):
            raise UnsupportedPod(f"init container {container['name']}: only `cp -R <dir>/. <volume>` runs locally, "
                                 f"got {command}")
        mounts = _mounts(container)
        found = _under_mount(command[3], mounts)
        if found is None:
            raise UnsupportedPod(f"init container {container['name']}: {command[3]} is not on a volume")
        volume, subpath = found
        copies.append(InitCopy(container["name"], container.get("image", ""), command[2][:-2] or "/", volume, subpath))
    return copies


def plan_container(
    pod: Mapping[str, Any],
    *,
    volume_dirs: Mapping[str, Path],
    resolve_image_path: ImagePathResolver,
    local_ports: Mapping[int, int],
    scripts_dir: Path,
    inherited_env: Mapping[str, str],
    container_name: str | None = None,
) -> LocalContainer:
    """The local process standing for a container of ``pod`` (its only one unless ``container_name``)."""
    spec = _spec(pod)
    containers = spec.get("containers") or []
    if container_name is None and len(containers) != 1:
        raise UnsupportedPod(f"pod {_name(pod)} has {len(containers)} containers: name the one to run")
    container = next((c for c in containers if container_name in (None, c["name"])), None)
    if container is None:
        raise UnsupportedPod(f"pod {_name(pod)} has no container {container_name}")
    command = [*(container.get("command") or []), *(container.get("args") or [])]
    if not command:
        raise UnsupportedPod(f"container {container['name']}: no command (the image's entrypoint is unknown locally)")
    program = command[0]
    executable = scripts_dir / program
    if "/" in program or not executable.exists():
        raise UnsupportedPod(f"container {container['name']}: {program} is not a program of this project "
                             f"(looked for {executable})")

    mounts = _mounts(container)
    unknown = sorted({volume for _, volume, _ in mounts} - set(volume_dirs))
    if unknown:
        raise UnsupportedPod(f"container {container['name']}: no local folder for volume(s) {', '.join(unknown)}")
    image = container.get("image", "")
    ports = {int(p["containerPort"]): int(local_ports[int(p["containerPort"])]) for p in container.get("ports") or []
             if int(p["containerPort"]) in local_ports}
    missing_ports = [int(p["containerPort"]) for p in container.get("ports") or [] if int(p["containerPort"]) not in ports]
    if missing_ports:
        raise UnsupportedPod(f"container {container['name']}: no local port for {missing_ports}")

    def translate(value: str) -> str:
        if not value.startswith("/"):
            return value
        found = _under_mount(value, mounts)
        if found is not None:
            volume, rest = found
            return str(volume_dirs[volume] / rest) if rest else str(volume_dirs[volume])
        local = resolve_image_path(image, value)
        return str(local) if local is not None else value

    env = {key: value for key, value in inherited_env.items() if not key.startswith(_NOT_INHERITED_PREFIXES)}
    for variable in container.get("env") or []:
        if "value" not in variable:
            raise UnsupportedPod(f"container {container['name']}: env {variable['name']} uses valueFrom, which does "
                                 "not run locally")
        value = translate(str(variable["value"]))
        if variable["name"].endswith("_PORT") and value.isdigit() and int(value) in ports:
            value = str(ports[int(value)])
        env[variable["name"]] = value
    env.update(LOOPBACK_SETTINGS.get(program, {}))
    tmp = _under_mount("/tmp", mounts)
    if tmp is not None:
        env["TMPDIR"] = translate("/tmp")

    named_ports = {p["name"]: int(p["containerPort"]) for p in container.get("ports") or [] if p.get("name")}

    def probe_url(probe: Mapping[str, Any] | None) -> str | None:
        http = (probe or {}).get("httpGet")
        if not http:
            return None
        port = http.get("port")
        container_port = named_ports.get(port) if isinstance(port, str) else int(port)
        if container_port is None or container_port not in ports:
            raise UnsupportedPod(f"container {container['name']}: probe port {port!r} is not a declared port")
        return f"http://127.0.0.1:{ports[container_port]}{http.get('path', '/')}"

    return LocalContainer(
        pod=_name(pod),
        container=container["name"],
        argv=(str(executable), *command[1:]),
        env=env,
        ports=ports,
        readiness_url=probe_url(container.get("readinessProbe")),
        liveness_url=probe_url(container.get("livenessProbe")),
    )


def container_ports(pod: Mapping[str, Any]) -> list[int]:
    """Every port the pod's containers declare (the node gives each a local port)."""
    return [int(port["containerPort"]) for container in _spec(pod).get("containers") or []
            for port in container.get("ports") or []]


def _spec(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return pod.get("spec") or {}


def _name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name", "?"))


def _mounts(container: Mapping[str, Any]) -> list[tuple[PurePosixPath, str, str]]:
    """(mount path, volume, sub path) of a container, deepest first so that the longest prefix wins."""
    mounts = [(PurePosixPath(m["mountPath"]), m["name"], m.get("subPath", "")) for m in container.get("volumeMounts") or []]
    return sorted(mounts, key=lambda mount: len(mount[0].parts), reverse=True)


def _under_mount(path: str, mounts: Sequence[tuple[PurePosixPath, str, str]]) -> tuple[str, str] | None:
    """(volume, path inside the volume) when ``path`` lies on one of the mounts."""
    target = PurePosixPath(path)
    for mount_path, volume, subpath in mounts:
        if target == mount_path or mount_path in target.parents:
            rest = target.relative_to(mount_path)
            inside = PurePosixPath(subpath) / rest if subpath else rest
            return volume, "" if str(inside) == "." else str(inside)
    return None
