"""Dispatcher settings: one vhost, its protocol profile, its model bundle and its perimeter's allow-list.

Read from the environment (``HUB_DISPATCHER_<NAME>``, what the operator's Deployment sets) and/or the
command line (``--<name>``, which wins).  Every value is checked here, so a bad Deployment fails at start-up
with a message naming the variable.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

from hub_dispatcher.protocol import ProtocolProfile
from hub_dispatcher.usecases import BY_KEY

ENV_PREFIX: Final = "HUB_DISPATCHER_"
DAY_MS: Final = 24 * 3600 * 1000


class SettingsError(ValueError):
    """A setting that is missing or malformed."""


@dataclass(frozen=True)
class DispatcherSettings:
    vhost: str
    bundle_dir: Path
    profile: ProtocolProfile = ProtocolProfile.CURRENT
    allowed_use_cases: frozenset[str] | None = None
    """Use-case keys the perimeter accepts; None = every use case of the bundle."""
    default_ttl_ms: int = DAY_MS
    """The client queues' ``message-ttl``: a forwarded copy never gets a longer ``expiration``."""
    max_message_bytes: int = 1024 * 1024
    max_depth: int = 64
    validate_converted: bool = True
    """Validate every converted copy against the target format's schema (a wrong copy becomes a 600)."""
    preferences_file: Path | None = None
    preferences_reload_seconds: float = 5.0
    amqp_url: str = "amqps://localhost:5671/"
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    prefetch: int = 256
    """Unacked deliveries per input queue: also the window of unconfirmed publishes (docs/dispatcher.md)."""
    metrics_port: int = 9102
    """One HTTP port for /metrics, /healthz and /readyz; 0 = no HTTP server."""
    metrics_host: str = "0.0.0.0"
    heartbeat_seconds: int = 30
    connect_timeout_seconds: float = 10.0
    reconnect_initial_seconds: float = 0.5
    reconnect_max_seconds: float = 30.0
    drain_timeout_seconds: float = 25.0
    """On SIGTERM, how long in-flight messages may take to finish (below the pod's grace period)."""
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if not self.vhost or self.vhost.startswith("/"):
            raise SettingsError(f"vhost must be a name like 15-15_v2.0 without a leading slash, got {self.vhost!r}")
        if self.allowed_use_cases is not None:
            unknown = sorted(self.allowed_use_cases - set(BY_KEY))
            if unknown:
                raise SettingsError(f"allowed_use_cases: unknown use-case keys {', '.join(unknown)} "
                                    f"(known: {', '.join(BY_KEY)})")
        for name in ("default_ttl_ms", "max_message_bytes", "prefetch"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_depth < 8:
            raise SettingsError(f"max_depth must be at least 8, got {self.max_depth}")
        for name in _FLOATS | {"heartbeat_seconds"}:
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)}")
        if self.reconnect_max_seconds < self.reconnect_initial_seconds:
            raise SettingsError("reconnect_max_seconds must not be below reconnect_initial_seconds")
        if not 0 <= self.metrics_port <= 65535:
            raise SettingsError(f"metrics_port must be a TCP port (0 disables the HTTP server), got {self.metrics_port}")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise SettingsError("tls_cert_file and tls_key_file go together (the client certificate and its key)")
        if self.log_level.upper() not in _LOG_LEVELS:
            raise SettingsError(f"log_level must be one of {', '.join(_LOG_LEVELS)}, got {self.log_level!r}")

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> DispatcherSettings:
        """Environment first, then the command line on top."""
        values = _from_environment(os.environ if environ is None else environ)
        values.update(_from_arguments(argv or []))
        return cls.from_strings(values)

    @classmethod
    def from_strings(cls, values: Mapping[str, str]) -> DispatcherSettings:
        for required in ("vhost", "bundle_dir"):
            if not values.get(required):
                raise SettingsError(f"{required} is required ({ENV_PREFIX}{required.upper()} or --{_flag(required)})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(unknown)}")
        parsed: dict[str, Any] = {}
        for name, raw in values.items():
            parsed[name] = _convert(name, raw)
        return cls(**parsed)


_PATHS: Final = {"bundle_dir", "preferences_file", "tls_ca_file", "tls_cert_file", "tls_key_file"}
_INTS: Final = {"default_ttl_ms", "max_message_bytes", "max_depth", "prefetch", "metrics_port", "heartbeat_seconds"}
_FLOATS: Final = {"preferences_reload_seconds", "connect_timeout_seconds", "reconnect_initial_seconds",
                  "reconnect_max_seconds", "drain_timeout_seconds"}
_LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")


def _convert(name: str, raw: str) -> Any:
    try:
        if name in _PATHS:
            return Path(raw) if raw else None
        if name in _INTS:
            return int(raw)
        if name in _FLOATS:
            return float(raw)
        if name == "validate_converted":
            return _boolean(raw)
        if name == "profile":
            return ProtocolProfile(raw.strip().lower())
        if name == "allowed_use_cases":
            return _key_list(raw)
    except ValueError as error:
        raise SettingsError(f"{name}: {raw!r} is not valid: {error}") from None
    return raw


def _boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _key_list(raw: str) -> frozenset[str] | None:
    """Comma- or space-separated keys; ``*`` (or empty) means no restriction."""
    stripped = raw.strip()
    if stripped in ("", "*"):
        return None
    return frozenset(key for key in stripped.replace(",", " ").split() if key)


def _from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {name[len(ENV_PREFIX):].lower(): value for name, value in environ.items() if name.startswith(ENV_PREFIX)}


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _from_arguments(argv: Sequence[str]) -> dict[str, str]:
    parser = argparse.ArgumentParser(prog="hub-dispatcher", description="Hub Santé dispatcher for one vhost")
    for settings_field in fields(DispatcherSettings):
        parser.add_argument(f"--{_flag(settings_field.name)}", dest=settings_field.name, default=None)
    namespace = parser.parse_args(list(argv))
    return {name: value for name, value in vars(namespace).items() if value is not None}
