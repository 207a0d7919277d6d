"""The dispatcher workload of one vhost as Kubernetes manifests, rendered from jinja2 templates (pure, no I/O).

The kopf handlers turn a ``VHostVersion`` (with its Perimeter and the operator's settings) into a
:class:`DispatcherWorkload`, then apply what :func:`render_dispatcher_manifests` returns: a Deployment, a
headless metrics Service and, when more than one dispatcher runs, a PodDisruptionBudget.  Objects are named
after the VHostVersion (:func:`dispatcher_workload_name`); the operator deletes the PodDisruptionBudget of that
name when a render no longer contains one (one dispatcher or none).

The dispatcher reads its settings from ``HUB_DISPATCHER_<FIELD>`` environment variables
(:mod:`hub_dispatcher.settings`); every variable rendered here is checked against that dataclass, so a renamed
field fails the render instead of being silently ignored by the worker.

Model bundles, by ``spec.models`` source (docs/reference/crds.md):

* builtin / path: the bundle is a directory the dispatcher image already has; nothing is mounted.
* image: an init container runs the *bundle image* and copies its ``image.path`` directory with
  ``cp -R <path>/. <volume>`` into an ``emptyDir``.  Contract: the bundle image has a ``cp`` accepting ``-R``
  (busybox, distroless ``:debug``, any distribution base) and runs as any non-root uid.  Kubernetes image
  volumes would avoid the copy but need a recent kubelet *and* container runtime with the feature enabled,
  which a hospital's managed cluster rarely guarantees; a copy of a few MiB at pod start works everywhere.
* configMaps: one projected volume; a ConfigMap with a ``directory`` is laid out key by key under it, which
  Kubernetes can only do from the key names, so the operator passes the keys it read
  (``models_config_map_keys``).  Nested volume mounts are not an option: the kubelet cannot create a mount
  point inside a read-only ConfigMap volume.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, Final

import jinja2
import yaml
from hub_dispatcher import settings as worker_settings
from hub_dispatcher.preferences import ClientPreference
from hub_dispatcher.protocol import ProtocolProfile, is_valid_client_id
from hub_dispatcher.usecases import BY_KEY as USE_CASES_BY_KEY

from hub_operator.api.base import API_VERSION
from hub_operator.api.dispatching import ResourceRequirements
from hub_operator.api.modelbundle import (
    DEFAULT_MODELS_ROOT,
    ImagePullPolicy,
    ModelBundle,
    ModelSourceKind,
)
from hub_operator.api.perimeter import PerimeterSpec
from hub_operator.api.vhostversion import (
    VHOSTVERSION,
    VHOSTVERSION_NAME_PATTERN,
    VHostVersionSpec,
)


class InvalidWorkload(ValueError):
    """A workload description that cannot be turned into valid manifests."""


# -- names and labels ---------------------------------------------------------------------------------------

#: Service names are DNS-1035 labels (no dots, at most 63, starting with a letter); every object of the
#: workload shares one name, so the strictest rule applies to all.
NAME_MAX: Final = 63
#: libyaml's loader and dumper when PyYAML has them (it does in the image): every vhost run renders its manifests and
#: the preferences of all its clients, which the pure-Python ones made a tenth of a run at 1,000 clients.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_CONFIG_MAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_VHOSTVERSION_NAME = re.compile(VHOSTVERSION_NAME_PATTERN)
_HASH_LENGTH: Final = 8

WORKLOAD_PREFIX: Final = "dispatcher-"
PREFERENCES_SUFFIX: Final = "-preferences"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_LENGTH]


def _shortened(text: str, limit: int, original: str) -> str:
    """``text`` if it fits, else its head and a hash of ``original`` (so distinct inputs stay distinct)."""
    if len(text) <= limit:
        return text
    head = text[: limit - _HASH_LENGTH - 1].rstrip("-._")
    return f"{head}-{_digest(original)}"


def _require_vhost_version_name(name: str) -> None:
    if not isinstance(name, str) or not _VHOSTVERSION_NAME.match(name):
        raise InvalidWorkload(
            f"{name!r} is not a VHostVersion name: expected <perimeter>-v<version>, e.g. 15-15-v1.5"
        )


def dispatcher_workload_name(vhost_version_name: str) -> str:
    """Name of the Deployment, Service and PodDisruptionBudget of a VHostVersion's dispatchers.

    ``15-15-v1.5`` -> ``dispatcher-15-15-v1-5``: dots become dashes because a Service name is a DNS-1035
    label.  That is one-to-one on VHostVersion names (the version after the last ``-v`` has only digits and
    dots); names longer than 63 characters keep their head and end with a hash of the whole name.
    """
    _require_vhost_version_name(vhost_version_name)
    candidate = WORKLOAD_PREFIX + vhost_version_name.replace(".", "-")
    return _shortened(candidate, NAME_MAX, vhost_version_name)


def preferences_config_map_name(vhost_version_name: str) -> str:
    """Name of the ConfigMap holding the client preferences of a VHostVersion's dispatchers."""
    return dispatcher_workload_name(vhost_version_name) + PREFERENCES_SUFFIX


def label_value(text: str) -> str:
    """``text`` as a valid label value: unchanged when it already is one, else sanitised and hashed."""
    if len(text) <= NAME_MAX and _LABEL_VALUE.match(text):
        return text
    cleaned = re.sub(r"[^-A-Za-z0-9_.]", "-", text).strip("-_.")
    return _shortened(f"{cleaned}-{_digest(text)}" if cleaned else _digest(text), NAME_MAX, text)


#: Labels of every object (`app.kubernetes.io/*` are the Kubernetes recommended labels).
APP_NAME: Final = "hub-dispatcher"
#: The console script that runs a dispatcher; the one project image starts the operator by default.
DISPATCHER_COMMAND: Final = ("hub-dispatcher",)
PART_OF: Final = "hub-sante"
MANAGED_BY: Final = "hub-operator"
COMPONENT_DISPATCHER: Final = "dispatcher"
COMPONENT_PREFERENCES: Final = "client-preferences"
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_VHOST: Final = "hubsante.io/vhost"
LABEL_VHOST_VERSION: Final = "hubsante.io/vhost-version"

#: Pod annotations whose change rolls the dispatchers (their content is not otherwise in the pod template).
TLS_CHECKSUM_ANNOTATION: Final = "hubsante.io/tls-checksum"
MODELS_CHECKSUM_ANNOTATION: Final = "hubsante.io/models-checksum"
_PROMETHEUS_PREFIX: Final = "prometheus.io/"


def selector_labels(workload_name: str) -> dict[str, str]:
    """The Deployment's selector: only labels that never change (a Deployment's selector is immutable)."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: workload_name}


def data_checksum(data: Mapping[str, str | bytes]) -> str:
    """A stable digest of a Secret's or ConfigMap's data, for the ``*_checksum`` fields of a workload.

    Keys are sorted, and every key and value is length-prefixed so that no two different mappings collide.
    """
    digest = hashlib.sha256()
    for key in sorted(data):
        value = data[key]
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        for part in (key.encode("utf-8"), raw):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


# -- owner ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnerReference:
    """The controlling owner (a VHostVersion): garbage collection deletes the workload with it."""

    name: str
    uid: str
    api_version: str = API_VERSION
    kind: str = VHOSTVERSION.kind

    def __post_init__(self) -> None:
        for label, value in (("name", self.name), ("uid", self.uid), ("apiVersion", self.api_version),
                             ("kind", self.kind)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidWorkload(f"owner reference: {label} must be a non-empty string, got {value!r}")
        if not _DNS1123_SUBDOMAIN.match(self.name):
            raise InvalidWorkload(f"owner reference: {self.name!r} is not a Kubernetes object name")

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> OwnerReference:
        """The reference to a stored object (a kopf ``body`` or a manifest read from the API server)."""
        metadata = body.get("metadata") or {}
        return cls(
            name=metadata.get("name", ""),
            uid=metadata.get("uid", ""),
            api_version=body.get("apiVersion", API_VERSION),
            kind=body.get("kind", VHOSTVERSION.kind),
        )

    def to_manifest(self) -> dict[str, Any]:
        # blockOwnerDeletion: a foreground deletion of the VHostVersion waits for its dispatchers to stop.
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


# -- the workload ---------------------------------------------------------------------------------------------

#: Where the dispatcher container finds what the pod mounts.
TLS_MOUNT: Final = PurePosixPath("/etc/hub-dispatcher/tls")
PREFERENCES_MOUNT: Final = PurePosixPath("/etc/hub-dispatcher/preferences")
MODELS_MOUNT: Final = PurePosixPath("/var/lib/hub-dispatcher/models")
TMP_MOUNT: Final = PurePosixPath("/tmp")
#: Keys of the dispatcher's certificate Secret (the operator issues it in this shape, like cert-manager).
TLS_CA_KEY: Final = "ca.crt"
TLS_CERT_KEY: Final = "tls.crt"
TLS_KEY_KEY: Final = "tls.key"
#: Key of the preferences ConfigMap; the file name the dispatcher reads.
PREFERENCES_KEY: Final = "preferences.yaml"

#: Non-root identity of both containers.  Fixed rather than taken from the images because a bundle image
#: (often busybox) runs as root by default, which ``runAsNonRoot`` would refuse.
RUN_AS_USER: Final = 65532
#: Seconds between SIGTERM and SIGKILL: a dispatcher stops consuming, then finishes the messages in flight
#: (each waits for its publisher confirm before its input is acked; unacked ones are redelivered anyway).
DEFAULT_TERMINATION_GRACE_SECONDS: Final = 60
#: Used when neither the Perimeter nor the VHostVersion sets resources ("the operator's defaults").
DEFAULT_DISPATCHER_RESOURCES: Final = ResourceRequirements.model_validate(
    {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
)
_DEFAULT_METRICS_PORT = next(
    (f.default for f in dataclasses.fields(worker_settings.DispatcherSettings) if f.name == "metrics_port"), 9102
)
#: The dispatcher's own default, so that a process started by hand and a pod agree.
DEFAULT_METRICS_PORT: Final[int] = int(_DEFAULT_METRICS_PORT)  # type: ignore[arg-type]
_UNPRIVILEGED_PORTS: Final = range(1024, 65536)


@dataclass(frozen=True, kw_only=True)
class DispatcherWorkload:
    """Everything the dispatcher templates need, already resolved from the CRs and the operator settings.

    Build one with :func:`dispatcher_workload_for` (from the specs) or directly.  Mappings are copied into
    sorted read-only mappings, so two workloads built from the same values render byte-identical YAML.
    """

    name: str
    """Name of every object, from :func:`dispatcher_workload_name`; a DNS-1035 label."""
    namespace: str
    owner: OwnerReference
    vhost: str
    profile: ProtocolProfile = ProtocolProfile.CURRENT
    image: str
    image_pull_policy: ImagePullPolicy = ImagePullPolicy.IF_NOT_PRESENT
    image_pull_secrets: tuple[str, ...] = ()
    replicas: int
    """Fixed by the spec, or computed by :func:`hub_operator.builders.scaling.dispatcher_replicas`."""
    resources: ResourceRequirements | None = None
    """None = :data:`DEFAULT_DISPATCHER_RESOURCES`; also given to the bundle-copying init container."""
    allowed_use_cases: tuple[str, ...] | None = None
    """Use-case keys the perimeter accepts; None or empty = every use case (as ``Perimeter.allowedUseCases``)."""
    message_ttl_ms: int
    models: ModelBundle
    models_root: str = DEFAULT_MODELS_ROOT
    models_config_map_keys: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Keys of each bundle ConfigMap (configMaps source); required for those with a ``directory``."""
    amqps_host: str
    amqps_port: int
    tls_secret_name: str
    """The dispatcher's certificate Secret (keys ca.crt, tls.crt, tls.key)."""
    preferences_config_map: str
    """From :func:`preferences_config_map_name`, rendered by :func:`render_preferences_config_map`."""
    metrics_port: int = DEFAULT_METRICS_PORT
    """Prometheus ``/metrics`` and the probes' ``/healthz`` and ``/readyz``."""
    termination_grace_period_seconds: int = DEFAULT_TERMINATION_GRACE_SECONDS
    extra_settings: Mapping[str, str] = field(default_factory=dict)
    """Other dispatcher settings by field name (e.g. ``prefetch``), as their environment strings."""
    tls_checksum: str = ""
    """:func:`data_checksum` of the TLS Secret: a renewed certificate rolls the dispatchers."""
    models_checksum: str = ""
    """:func:`data_checksum` of the bundle ConfigMaps: a changed bundle rolls the dispatchers (they load it once)."""
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    """Added to every object and pod; may not replace the labels set here."""
    extra_annotations: Mapping[str, str] = field(default_factory=dict)
    """Added to every object and pod."""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "profile", ProtocolProfile(self.profile))
            object.__setattr__(self, "image_pull_policy", ImagePullPolicy(self.image_pull_policy))
        except ValueError as error:
            raise InvalidWorkload(f"dispatcher {self.name!r}: {error}") from None
        for name in ("extra_settings", "extra_labels", "extra_annotations"):
            object.__setattr__(self, name, _frozen_str_mapping(name, getattr(self, name)))
        if not isinstance(self.models_config_map_keys, Mapping):
            raise InvalidWorkload("models_config_map_keys must map ConfigMap names to their keys")
        object.__setattr__(self, "models_config_map_keys", MappingProxyType({
            config_map: tuple(sorted(set(_strings(f"models_config_map_keys[{config_map}]", keys))))
            for config_map, keys in sorted(self.models_config_map_keys.items())
        }))
        object.__setattr__(self, "image_pull_secrets",
                           tuple(sorted(set(_strings("image_pull_secrets", self.image_pull_secrets)))))
        if self.allowed_use_cases is not None:
            keys = tuple(sorted(set(_strings("allowed_use_cases", self.allowed_use_cases))))
            object.__setattr__(self, "allowed_use_cases", keys or None)
        _validate(self)

    @property
    def effective_resources(self) -> ResourceRequirements:
        return self.resources if self.resources is not None else DEFAULT_DISPATCHER_RESOURCES

    @property
    def bundle_dir(self) -> PurePosixPath:
        """Where the dispatcher reads its model bundle."""
        directory = self.models.directory(self.models_root)
        return directory if directory is not None else MODELS_MOUNT

    @property
    def amqp_url(self) -> str:
        host = f"[{self.amqps_host}]" if ":" in self.amqps_host else self.amqps_host
        return f"amqps://{host}:{self.amqps_port}/"

    def settings_environment(self) -> dict[str, str]:
        """The dispatcher's environment (``HUB_DISPATCHER_*``), in the settings dataclass's field order."""
        values = {**self.extra_settings, **{name: value(self) for name, value in _MANAGED_SETTINGS.items()}}
        return {_env_name(name): values[name] for name in _SETTING_NAMES if name in values}


#: The settings the workload sets itself, from its fields; ``extra_settings`` may set any other.
_MANAGED_SETTINGS: Final[Mapping[str, Callable[[DispatcherWorkload], str]]] = MappingProxyType({
    "vhost": lambda workload: workload.vhost,
    "bundle_dir": lambda workload: str(workload.bundle_dir),
    "profile": lambda workload: workload.profile.value,
    # The dispatcher reads "*" as "every use case", like an empty Perimeter.allowedUseCases.
    "allowed_use_cases": lambda workload: ",".join(workload.allowed_use_cases or ("*",)),
    "default_ttl_ms": lambda workload: str(workload.message_ttl_ms),
    "preferences_file": lambda workload: str(PREFERENCES_MOUNT / PREFERENCES_KEY),
    "amqp_url": lambda workload: workload.amqp_url,
    "tls_ca_file": lambda workload: str(TLS_MOUNT / TLS_CA_KEY),
    "tls_cert_file": lambda workload: str(TLS_MOUNT / TLS_CERT_KEY),
    "tls_key_file": lambda workload: str(TLS_MOUNT / TLS_KEY_KEY),
    "metrics_port": lambda workload: str(workload.metrics_port),
})
MANAGED_SETTING_NAMES: Final = frozenset(_MANAGED_SETTINGS)
_SETTING_NAMES: Final = tuple(f.name for f in dataclasses.fields(worker_settings.DispatcherSettings))
_REQUIRED_SETTINGS: Final = tuple(
    f.name for f in dataclasses.fields(worker_settings.DispatcherSettings)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
)


def _env_name(setting: str) -> str:
    return f"{worker_settings.ENV_PREFIX}{setting.upper()}"


def _strings(what: str, values: Iterable[Any]) -> list[str]:
    if isinstance(values, str | bytes):
        raise InvalidWorkload(f"{what} must be a sequence of strings, not a single string")
    items = list(values)
    wrong = [value for value in items if not isinstance(value, str)]
    if wrong:
        raise InvalidWorkload(f"{what} must hold strings, got {wrong!r}")
    return items


def _frozen_str_mapping(what: str, values: Mapping[str, str]) -> Mapping[str, str]:
    if not isinstance(values, Mapping):
        raise InvalidWorkload(f"{what} must be a mapping of strings, got {type(values).__name__}")
    wrong = sorted(repr(key) for key, value in values.items() if not isinstance(key, str) or not isinstance(value, str))
    if wrong:
        raise InvalidWorkload(f"{what}: keys and values must be strings (offending keys: {', '.join(wrong)})")
    return MappingProxyType(dict(sorted(values.items())))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(workload: DispatcherWorkload) -> None:
    where = f"dispatcher {workload.name!r}"
    problems: list[str] = []
    if not isinstance(workload.name, str) or len(workload.name) > NAME_MAX or not _DNS1035_LABEL.match(workload.name):
        problems.append(
            f"name {workload.name!r} must be a DNS-1035 label (lower-case letters, digits and '-', starting with a "
            f"letter, at most {NAME_MAX}): derive it with dispatcher_workload_name()"
        )
    if not isinstance(workload.namespace, str) or len(workload.namespace) > NAME_MAX or not _DNS1123_LABEL.match(
        workload.namespace
    ):
        problems.append(f"namespace {workload.namespace!r} is not a namespace name")
    if not isinstance(workload.owner, OwnerReference):
        problems.append(f"owner must be an OwnerReference, got {type(workload.owner).__name__}")
    if not isinstance(workload.vhost, str) or not workload.vhost.strip() or workload.vhost.startswith("/"):
        problems.append(f"vhost {workload.vhost!r} must be a name like 15-15_v1.5 (non-empty, no leading slash)")
    if not isinstance(workload.image, str) or not re.fullmatch(r"\S+", workload.image):
        problems.append(f"image {workload.image!r} must be a non-empty image reference without spaces")
    if not _is_int(workload.replicas) or workload.replicas < 0:
        problems.append(f"replicas must be a non-negative integer, got {workload.replicas!r}")
    if workload.resources is not None and not isinstance(workload.resources, ResourceRequirements):
        problems.append(f"resources must be a ResourceRequirements, got {type(workload.resources).__name__}")
    if workload.allowed_use_cases:
        unknown = [key for key in workload.allowed_use_cases if key not in USE_CASES_BY_KEY]
        if unknown:
            problems.append(f"allowed_use_cases: unknown use-case keys {', '.join(unknown)}")
    if not _is_int(workload.message_ttl_ms) or workload.message_ttl_ms <= 0:
        problems.append(f"message_ttl_ms must be a positive integer, got {workload.message_ttl_ms!r}")
    if not isinstance(workload.models, ModelBundle):
        problems.append(f"models must be a ModelBundle, got {type(workload.models).__name__}")
    else:
        problems.extend(_bundle_problems(workload))
    if not isinstance(workload.models_root, str) or not workload.models_root.startswith("/"):
        problems.append(f"models_root {workload.models_root!r} must be an absolute path")
    if not isinstance(workload.amqps_host, str) or not re.fullmatch(r"[^\s/@?#\[\]]+", workload.amqps_host):
        problems.append(f"amqps_host {workload.amqps_host!r} must be a host name or IP address")
    if not _is_int(workload.amqps_port) or not 1 <= workload.amqps_port <= 65535:
        problems.append(f"amqps_port must be a port number (1-65535), got {workload.amqps_port!r}")
    for what, value in (("tls_secret_name", workload.tls_secret_name),
                        ("preferences_config_map", workload.preferences_config_map),
                        *((f"image_pull_secrets[{secret}]", secret) for secret in workload.image_pull_secrets)):
        if not isinstance(value, str) or len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
            problems.append(f"{what} {value!r} is not a Kubernetes object name")
    if not _is_int(workload.metrics_port) or workload.metrics_port not in _UNPRIVILEGED_PORTS:
        problems.append(
            f"metrics_port must be between 1024 and 65535 (the dispatcher runs without privileges), "
            f"got {workload.metrics_port!r}"
        )
    if not _is_int(workload.termination_grace_period_seconds) or workload.termination_grace_period_seconds < 1:
        problems.append(
            f"termination_grace_period_seconds must be a positive integer, got {workload.termination_grace_period_seconds!r}"
        )
    problems.extend(_extra_settings_problems(workload))
    problems.extend(_metadata_problems(workload))
    for what, checksum in (("tls_checksum", workload.tls_checksum), ("models_checksum", workload.models_checksum)):
        if not isinstance(checksum, str) or (checksum and not _LABEL_VALUE.match(checksum)):
            problems.append(f"{what} {checksum!r} must be a digest such as data_checksum() returns")
    if problems:
        raise InvalidWorkload(f"{where}: " + "; ".join(problems))


def _bundle_problems(workload: DispatcherWorkload) -> list[str]:
    models = workload.models
    keys = workload.models_config_map_keys
    if models.source_kind is not ModelSourceKind.CONFIG_MAPS:
        if keys:
            return [f"models_config_map_keys is only for a configMaps bundle (this one is {models.source_kind.value})"]
        return []
    problems: list[str] = []
    named = {config_map.name for config_map in models.config_maps or ()}
    strangers = sorted(set(keys) - named)
    if strangers:
        problems.append(f"models_config_map_keys names ConfigMaps the bundle does not use: {', '.join(strangers)}")
    placed: dict[str, str] = {}
    for config_map in models.config_maps or ():
        config_map_keys = keys.get(config_map.name)
        if config_map_keys is None:
            if config_map.directory is not None:
                problems.append(
                    f"bundle ConfigMap {config_map.name} goes to directory {config_map.directory}: "
                    "its keys are needed (models_config_map_keys)"
                )
            continue
        if not config_map_keys:
            problems.append(f"bundle ConfigMap {config_map.name} has no keys")
        for key in config_map_keys:
            if len(key) > 253 or not _CONFIG_MAP_KEY.match(key) or key in (".", "..") or key.startswith(".."):
                problems.append(f"bundle ConfigMap {config_map.name}: {key!r} is not a ConfigMap key")
                continue
            path = _bundle_item_path(config_map.directory, key)
            if path in placed:
                problems.append(f"bundle file {path} comes from both ConfigMaps {placed[path]} and {config_map.name}")
            placed[path] = config_map.name
    return problems


def _bundle_item_path(directory: str | None, key: str) -> str:
    return key if directory is None else f"{directory}/{key}"


def _extra_settings_problems(workload: DispatcherWorkload) -> list[str]:
    problems: list[str] = []
    unknown = sorted(set(workload.extra_settings) - set(_SETTING_NAMES))
    if unknown:
        problems.append(f"extra_settings: {', '.join(unknown)} are not dispatcher settings "
                        f"(known: {', '.join(_SETTING_NAMES)})")
    vanished = sorted(MANAGED_SETTING_NAMES - set(_SETTING_NAMES))
    if vanished:
        problems.append(f"the dispatcher has no setting {', '.join(vanished)} any more: update the workload builder")
    managed = sorted(set(workload.extra_settings) & MANAGED_SETTING_NAMES)
    if managed:
        problems.append(f"extra_settings may not set {', '.join(managed)}: the workload sets them from its fields")
    missing = sorted(
        name for name in _REQUIRED_SETTINGS if name not in MANAGED_SETTING_NAMES and name not in workload.extra_settings
    )
    if missing:
        problems.append(f"the dispatcher requires settings {', '.join(missing)}: give them in extra_settings")
    return problems


def _metadata_problems(workload: DispatcherWorkload) -> list[str]:
    problems: list[str] = []
    for key, value in workload.extra_labels.items():
        if key in _STANDARD_LABEL_KEYS:
            problems.append(f"extra_labels may not replace the standard label {key}")
        elif not _is_qualified_name(key):
            problems.append(f"extra_labels: {key!r} is not a label key")
        if not (len(value) <= NAME_MAX and _LABEL_VALUE.match(value)):
            problems.append(f"extra_labels[{key}]: {value!r} is not a label value (see label_value())")
    for key in workload.extra_annotations:
        if key in (TLS_CHECKSUM_ANNOTATION, MODELS_CHECKSUM_ANNOTATION) or key.startswith(_PROMETHEUS_PREFIX):
            problems.append(f"extra_annotations may not replace {key}, which the workload sets")
        elif not _is_qualified_name(key):
            problems.append(f"extra_annotations: {key!r} is not an annotation key")
    return problems


_STANDARD_LABEL_KEYS: Final = frozenset(
    {LABEL_NAME, LABEL_INSTANCE, LABEL_COMPONENT, LABEL_PART_OF, LABEL_MANAGED_BY, LABEL_VHOST, LABEL_VHOST_VERSION}
)


def _is_qualified_name(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= NAME_MAX and bool(_LABEL_NAME.match(name))


def dispatcher_workload_for(
    *,
    vhost_version_name: str,
    namespace: str,
    uid: str,
    spec: VHostVersionSpec,
    perimeter: PerimeterSpec,
    replicas: int,
    image: str,
    amqps_host: str,
    amqps_port: int,
    tls_secret_name: str,
    **options: Any,
) -> DispatcherWorkload:
    """The workload of a VHostVersion: names, owner and effective settings resolved from the specs.

    ``options`` are the other :class:`DispatcherWorkload` fields (``image_pull_policy``, ``models_root``,
    ``models_config_map_keys``, ``extra_settings``, checksums...).
    """
    effective = spec.effective_settings(perimeter)
    return DispatcherWorkload(
        name=dispatcher_workload_name(vhost_version_name),
        namespace=namespace,
        owner=OwnerReference(name=vhost_version_name, uid=uid),
        vhost=spec.vhost_name,
        profile=spec.profile,
        image=image,
        replicas=replicas,
        resources=effective.dispatcher.resources,
        allowed_use_cases=effective.allowed_use_cases,
        message_ttl_ms=effective.message_ttl_ms,
        models=spec.models,
        amqps_host=amqps_host,
        amqps_port=amqps_port,
        tls_secret_name=tls_secret_name,
        preferences_config_map=preferences_config_map_name(vhost_version_name),
        **options,
    )


# -- rendering ------------------------------------------------------------------------------------------------

TEMPLATES_DIR: Final = Path(__file__).with_name("templates")


def _to_json(value: Any) -> str:
    """Every value enters the YAML as JSON (a YAML subset): no quoting or injection problems, sorted keys."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["json"] = _to_json
    return environment


def _render(template: str, **context: Any) -> dict[str, Any]:
    text = _environment().get_template(template).render(**context)
    manifest = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    if not isinstance(manifest, dict) or "kind" not in manifest:
        raise AssertionError(f"template {template} did not render one Kubernetes object")
    return manifest


def _labels(workload: DispatcherWorkload) -> dict[str, str]:
    return {
        **workload.extra_labels,
        **selector_labels(workload.name),
        LABEL_COMPONENT: COMPONENT_DISPATCHER,
        LABEL_PART_OF: PART_OF,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_VHOST: label_value(workload.vhost),
        LABEL_VHOST_VERSION: label_value(workload.owner.name),
    }


def _pod_annotations(workload: DispatcherWorkload) -> dict[str, str]:
    annotations = {
        **workload.extra_annotations,
        f"{_PROMETHEUS_PREFIX}scrape": "true",
        f"{_PROMETHEUS_PREFIX}port": str(workload.metrics_port),
        f"{_PROMETHEUS_PREFIX}path": "/metrics",
    }
    if workload.tls_checksum:
        annotations[TLS_CHECKSUM_ANNOTATION] = workload.tls_checksum
    if workload.models_checksum:
        annotations[MODELS_CHECKSUM_ANNOTATION] = workload.models_checksum
    return annotations


def _models_volume(workload: DispatcherWorkload) -> dict[str, Any] | None:
    kind = workload.models.source_kind
    if kind is ModelSourceKind.IMAGE:
        return {"emptyDir": {"sizeLimit": "256Mi"}}
    if kind is ModelSourceKind.CONFIG_MAPS:
        sources = []
        for config_map in workload.models.config_maps or ():
            projection: dict[str, Any] = {"name": config_map.name}
            keys = workload.models_config_map_keys.get(config_map.name)
            if keys is not None:
                projection["items"] = [{"key": key, "path": _bundle_item_path(config_map.directory, key)} for key in keys]
            sources.append({"configMap": projection})
        return {"projected": {"defaultMode": 0o444, "sources": sources}}
    return None


def _models_copy_command(workload: DispatcherWorkload) -> list[str] | None:
    image = workload.models.image
    if workload.models.source_kind is not ModelSourceKind.IMAGE or image is None:
        return None
    # "<dir>/." copies the directory's content, hidden files included, with GNU and busybox cp alike.
    return ["cp", "-R", image.path.rstrip("/") + "/.", str(MODELS_MOUNT)]


def render_dispatcher_manifests(workload: DispatcherWorkload) -> list[dict[str, Any]]:
    """Deployment, metrics Service and (when ``replicas > 1``) PodDisruptionBudget, in that order."""
    labels = _labels(workload)
    context = {
        "workload": workload,
        "labels": labels,
        "selector": selector_labels(workload.name),
        "annotations": dict(workload.extra_annotations),
        "owner_references": [workload.owner.to_manifest()],
    }
    image = workload.models.image
    manifests = [
        _render(
            "dispatcher-deployment.yaml.j2",
            **context,
            pod_annotations=_pod_annotations(workload),
            env=workload.settings_environment(),
            dispatcher_command=list(DISPATCHER_COMMAND),
            resources=workload.effective_resources.to_wire(),
            models_volume=_models_volume(workload),
            models_copy_command=_models_copy_command(workload),
            models_image=image.reference if image is not None else None,
            models_pull_policy=image.pull_policy.value if image is not None else None,
            mounts={"tls": TLS_MOUNT, "preferences": PREFERENCES_MOUNT, "models": MODELS_MOUNT, "tmp": TMP_MOUNT},
            tls_keys=(TLS_CA_KEY, TLS_CERT_KEY, TLS_KEY_KEY),
            run_as=RUN_AS_USER,
        ),
        _render("dispatcher-service.yaml.j2", **context),
    ]
    if workload.replicas > 1:
        manifests.append(_render("dispatcher-pdb.yaml.j2", **context))
    return manifests


def render_preferences_config_map(
    name: str, namespace: str, owner: OwnerReference, preferences: Mapping[str, ClientPreference]
) -> dict[str, Any]:
    """The ConfigMap the dispatchers reload their client preferences from (``clients: {<id>: {format, editor}}``).

    Client ids are sorted and an empty editor is left out, so the same preferences give the same bytes (and
    no needless ConfigMap update).  Its content is not in any checksum: dispatchers reload it live.
    """
    problems: list[str] = []
    if not isinstance(name, str) or len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        problems.append(f"{name!r} is not a ConfigMap name")
    if not isinstance(namespace, str) or len(namespace) > NAME_MAX or not _DNS1123_LABEL.match(namespace):
        problems.append(f"namespace {namespace!r} is not a namespace name")
    if not isinstance(owner, OwnerReference):
        problems.append(f"owner must be an OwnerReference, got {type(owner).__name__}")
    if not isinstance(preferences, Mapping):
        raise InvalidWorkload(f"preferences ConfigMap {name!r}: preferences must be a mapping of client id -> ClientPreference")
    clients: dict[str, dict[str, str]] = {}
    for client_id, preference in sorted(preferences.items()):
        if not isinstance(client_id, str) or not is_valid_client_id(client_id):
            problems.append(f"{client_id!r} is not a client id")
        elif not isinstance(preference, ClientPreference):
            problems.append(f"{client_id}: expected a ClientPreference, got {type(preference).__name__}")
        else:
            entry = {"format": preference.format.value}
            if preference.editor:
                entry["editor"] = preference.editor
            clients[client_id] = entry
    if problems:
        raise InvalidWorkload(f"preferences ConfigMap {name!r}: " + "; ".join(problems))
    document = yaml.dump({"clients": clients}, Dumper=_YAML_DUMPER, sort_keys=True, allow_unicode=True,
                         default_flow_style=False)
    return _render(
        "preferences-configmap.yaml.j2",
        name=name,
        namespace=namespace,
        labels={
            LABEL_NAME: APP_NAME,
            LABEL_INSTANCE: label_value(name),
            LABEL_COMPONENT: COMPONENT_PREFERENCES,
            LABEL_PART_OF: PART_OF,
            LABEL_MANAGED_BY: MANAGED_BY,
            LABEL_VHOST_VERSION: label_value(owner.name),
        },
        owner_references=[owner.to_manifest()],
        data={PREFERENCES_KEY: document},
    )


def manifests_yaml(manifests: Sequence[Mapping[str, Any]]) -> str:
    """Manifests as one multi-document YAML stream (sorted keys: same manifests, same bytes)."""
    text: str = yaml.safe_dump_all(
        [dict(manifest) for manifest in manifests], sort_keys=True, allow_unicode=True, default_flow_style=False
    )
    return text
