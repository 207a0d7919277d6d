"""Operator settings: environment variables ``HUB_OPERATOR_<NAME>`` and command-line flags ``--<name>``.

The command line wins over the environment, the environment over the defaults.  Every value is checked here so
that a bad Deployment fails at start-up with a message naming the variable, never later in a handler.
Durations accept ``10s``, ``5m``, ``1h30m`` or a plain number of seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from hub_operator.api.broker import DEFAULT_BROKER_SECRET_NAME
from hub_operator.api.fieldtypes import parse_duration
from hub_operator.api.modelbundle import DEFAULT_MODELS_ROOT, ImagePullPolicy

ENV_PREFIX: Final = "HUB_OPERATOR_"
#: The one project image (Dockerfile): `hub-operator` by default, `hub-dispatcher` for dispatcher pods.
DEFAULT_IMAGE: Final = "ghcr.io/hubsante/hub-operator:0.1.0"
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class SettingsError(ValueError):
    """A setting that is missing or malformed; the message names the variable and the flag."""


class LogFormat(str, enum.Enum):
    TEXT = "text"
    JSON = "json"


def _default_identity() -> str:
    # In a pod, POD_NAME (downward API) survives container restarts, so a restarted operator takes its own lease
    # back at once; elsewhere the host name and pid keep two processes apart.
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def _default_operator_namespace() -> str:
    return os.environ.get("POD_NAMESPACE") or "hub-system"


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the operator can be told; see docs/operator.md for the table."""

    namespaces: tuple[str, ...] = ()
    """Namespaces (hub environments) watched; empty = every namespace (cluster-wide)."""
    operator_namespace: str = field(default_factory=_default_operator_namespace)
    """Where the operator's CA Secret and its leader-election Lease live."""
    ca_secret_name: str = "hub-operator-ca"
    """Secret (tls.crt, tls.key) of the CA that issues client and dispatcher certificates."""
    ca_autogenerate: bool = True
    """Create a CA when the Secret is missing (sandboxes); off in production, where the broker must trust it."""
    broker_secret_name: str = DEFAULT_BROKER_SECRET_NAME
    """Broker Secret of VHostVersions without spec.brokerRef, in their own namespace."""
    dispatcher_image: str = DEFAULT_IMAGE
    """The project image (operator and dispatcher are one image); dispatcher pods run `hub-dispatcher` in it."""
    dispatcher_image_pull_policy: ImagePullPolicy = ImagePullPolicy.IF_NOT_PRESENT
    models_root: str = DEFAULT_MODELS_ROOT
    """Where bundles live by version in the dispatcher image (builtin bundles: <root>/<models.version>)."""
    models_local_check: bool = False
    """Check that builtin/path bundles exist on the operator's own filesystem (dispatchers run as local processes)."""
    dispatcher_certificate_validity: float = 90 * 86400.0
    dispatcher_certificate_renew_before: float = 30 * 86400.0
    drift_interval: float = 10.0
    """Seconds between full reconciles of each vhost: drift repair, autoscaling decision, dispatcher certificate."""
    drift_report_window: float = 300.0
    """How long conditions keep the DriftRepaired reason after a repair."""
    certificate_check_interval: float = 300.0
    """Seconds between renewal checks of each certificate."""
    worker_limit: int = 0
    """Most objects handled at once (kopf worker limit); 0 = no limit."""
    metrics_port: int = 9090
    """Prometheus /metrics; 0 disables it."""
    health_port: int = 8080
    """Liveness endpoint /healthz; 0 disables it."""
    broker_connect_timeout: float = 3.0
    broker_request_timeout: float = 15.0
    deletion_retry_max_delay: float = 60.0
    """Cap of the back-off between deletion attempts while a broker is unreachable."""
    deletion_give_up_after: float = 3600.0
    """Complete a deletion without broker clean-up after this long unreachable; 0 = retry forever."""
    leader_election: bool = True
    lease_name: str = "hub-operator"
    lease_duration: float = 15.0
    """Seconds a leader keeps the Lease without renewing it; a successor waits this long after a crash."""
    identity: str = field(default_factory=_default_identity)
    log_format: LogFormat = LogFormat.TEXT
    log_level: str = "INFO"
    kubeconfig: Path | None = None
    """Kubeconfig file; unset = in-cluster service account, else $KUBECONFIG / ~/.kube/config."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        for namespace in self.namespaces:
            if not _NAME_RE.match(namespace) or len(namespace) > 63:
                problems.append(f"namespaces: {namespace!r} is not a namespace name")
        if not _NAME_RE.match(self.operator_namespace):
            problems.append(f"operator_namespace: {self.operator_namespace!r} is not a namespace name")
        for name in ("ca_secret_name", "broker_secret_name", "lease_name"):
            value = getattr(self, name)
            if not _SUBDOMAIN_RE.match(value) or len(value) > 253:
                problems.append(f"{name}: {value!r} is not a Kubernetes object name")
        if not self.dispatcher_image or re.search(r"\s", self.dispatcher_image):
            problems.append(f"dispatcher_image: {self.dispatcher_image!r} is not an image reference")
        if not self.models_root.startswith("/"):
            problems.append(f"models_root: {self.models_root!r} must be an absolute path")
        positive = ("drift_interval", "certificate_check_interval", "broker_connect_timeout",
                    "broker_request_timeout", "deletion_retry_max_delay", "lease_duration",
                    "dispatcher_certificate_validity", "dispatcher_certificate_renew_before")
        for name in positive:
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("drift_report_window", "deletion_give_up_after"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative, got {getattr(self, name)}")
        if self.dispatcher_certificate_renew_before >= self.dispatcher_certificate_validity:
            problems.append("dispatcher_certificate_renew_before must be shorter than dispatcher_certificate_validity")
        if self.worker_limit < 0:
            problems.append(f"worker_limit must not be negative, got {self.worker_limit}")
        for name in ("metrics_port", "health_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                problems.append(f"{name} must be a port number (0 disables), got {port}")
        if self.metrics_port and self.metrics_port == self.health_port:
            problems.append(f"metrics_port and health_port must differ (both {self.metrics_port})")
        if not self.identity.strip():
            problems.append("identity must not be empty")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            problems.append(f"log_level must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}")
        if problems:
            raise SettingsError("; ".join(_with_sources(problem) for problem in problems))

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def liveness_endpoint(self) -> str | None:
        return f"http://0.0.0.0:{self.health_port}/healthz" if self.health_port else None

    # -- construction ---------------------------------------------------------------------------------------
    @classmethod
    def load(cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """Environment first, then the command line on top."""
        values = _from_environment(os.environ if environ is None else environ)
        values.update(_from_arguments(list(argv or [])))
        return cls.from_strings(values)

    @classmethod
    def from_strings(cls, values: Mapping[str, str]) -> OperatorSettings:
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise SettingsError(
                "unknown settings: " + ", ".join(f"{ENV_PREFIX}{name.upper()}" for name in unknown)
            )
        parsed: dict[str, Any] = {}
        for name, raw in values.items():
            try:
                parsed[name] = _CONVERTERS.get(name, _text)(raw)
            except ValueError as error:
                raise SettingsError(_with_sources(f"{name}: {raw!r} is not valid: {error}")) from None
        return cls(**parsed)

    def describe(self) -> dict[str, Any]:
        """The settings for the start-up log line (nothing secret lives here)."""
        return {
            f.name: (v.value if isinstance(v, enum.Enum) else str(v) if isinstance(v, Path) else v)
            for f in dataclasses.fields(self)
            for v in [getattr(self, f.name)]
        }


def _with_sources(problem: str) -> str:
    name = problem.split(":", 1)[0].split(" ", 1)[0]
    if name in {f.name for f in dataclasses.fields(OperatorSettings)}:
        return f"{problem} ({ENV_PREFIX}{name.upper()} / --{_flag(name)})"
    return problem


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _text(raw: str) -> str:
    return raw.strip()


def _boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def seconds(raw: str) -> float:
    """``10``, ``2.5``, ``10s``, ``5m``, ``1h30m``, ``500ms`` -> seconds."""
    text = raw.strip()
    try:
        return float(text)
    except ValueError:
        return parse_duration(text).total_seconds()


def _integer(raw: str) -> int:
    return int(raw.strip())


def _names(raw: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(part for part in re.split(r"[,\s]+", raw.strip()) if part))


_CONVERTERS: Final[Mapping[str, Any]] = {
    "namespaces": _names,
    "ca_autogenerate": _boolean,
    "models_local_check": _boolean,
    "leader_election": _boolean,
    "dispatcher_image_pull_policy": lambda raw: ImagePullPolicy(raw.strip()),
    "log_format": lambda raw: LogFormat(raw.strip().lower()),
    "log_level": lambda raw: raw.strip().upper(),
    "kubeconfig": lambda raw: Path(raw.strip()) if raw.strip() else None,
    "worker_limit": _integer,
    "metrics_port": _integer,
    "health_port": _integer,
    **{
        name: seconds
        for name in (
            "dispatcher_certificate_validity",
            "dispatcher_certificate_renew_before",
            "drift_interval",
            "drift_report_window",
            "certificate_check_interval",
            "broker_connect_timeout",
            "broker_request_timeout",
            "deletion_retry_max_delay",
            "deletion_give_up_after",
            "lease_duration",
        )
    },
}


def _from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    values = {name[len(ENV_PREFIX):].lower(): value for name, value in environ.items() if name.startswith(ENV_PREFIX)}
    # HUB_OPERATOR_NAMESPACE is the operator's own namespace; HUB_OPERATOR_NAMESPACES the watched ones.
    if "namespace" in values:
        values["operator_namespace"] = values.pop("namespace")
    return values


def _from_arguments(argv: list[str]) -> dict[str, str]:
    parser = argparse.ArgumentParser(
        prog="hub-operator",
        description="Hub Santé operator: Perimeters, VHostVersions and HubClients to RabbitMQ and dispatchers.",
        epilog=f"Every flag can also be set as an environment variable {ENV_PREFIX}<NAME> (e.g. "
        f"{ENV_PREFIX}DRIFT_INTERVAL=10s); flags win.",
    )
    for settings_field in dataclasses.fields(OperatorSettings):
        if settings_field.name == "namespaces":
            parser.add_argument(
                "--namespace", "--namespaces", dest="namespaces", action="append", default=None,
                help="namespace to watch (repeat, or comma-separated); none = cluster-wide",
            )
            continue
        parser.add_argument(f"--{_flag(settings_field.name)}", dest=settings_field.name, default=None)
    namespace = parser.parse_args(argv)
    values = {name: value for name, value in vars(namespace).items() if value is not None}
    if "namespaces" in values:
        values["namespaces"] = ",".join(values["namespaces"])
    return values
