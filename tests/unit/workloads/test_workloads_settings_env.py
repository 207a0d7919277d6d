"""The rendered environment is exactly the dispatcher's settings contract (hub_dispatcher.settings)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hub_dispatcher import settings as worker_settings
from hub_dispatcher.protocol import ProtocolProfile
from hub_operator.api.modelbundle import ModelSourceKind
from hub_operator.api.perimeter import PerimeterSpec
from hub_operator.api.vhostversion import VHostVersionSpec
from hub_operator.builders import workloads
from hub_operator.builders.workloads import (
    MANAGED_SETTING_NAMES,
    InvalidWorkload,
    dispatcher_workload_for,
    render_dispatcher_manifests,
)

from tests.unit.workloads.workloads_support import (
    containers,
    environment,
    make_workload,
)

SETTING_NAMES = {settings_field.name for settings_field in dataclasses.fields(worker_settings.DispatcherSettings)}


def _dispatcher_env(**overrides: Any) -> dict[str, str]:
    kind = overrides.pop("kind", ModelSourceKind.BUILTIN)
    deployment = render_dispatcher_manifests(make_workload(kind, **overrides))[0]
    return environment(containers(deployment)["dispatcher"])


@pytest.mark.parametrize("kind", list(ModelSourceKind), ids=lambda kind: kind.value)
def test_every_rendered_variable_is_a_dispatcher_setting(kind: ModelSourceKind) -> None:
    env = _dispatcher_env(kind=kind)
    prefix = worker_settings.ENV_PREFIX
    assert all(name.startswith(prefix) for name in env)
    assert {name.removeprefix(prefix).lower() for name in env} <= SETTING_NAMES
    required = {settings_field.name for settings_field in dataclasses.fields(worker_settings.DispatcherSettings)
                if settings_field.default is dataclasses.MISSING
                and settings_field.default_factory is dataclasses.MISSING}
    assert required <= {name.removeprefix(prefix).lower() for name in env}


def test_managed_settings_are_all_known_to_the_dispatcher() -> None:
    assert MANAGED_SETTING_NAMES <= SETTING_NAMES


@pytest.mark.parametrize("kind", list(ModelSourceKind), ids=lambda kind: kind.value)
def test_the_dispatcher_loads_the_rendered_environment(kind: ModelSourceKind) -> None:
    env = _dispatcher_env(kind=kind, allowed_use_cases=("reference", "createCase"), profile="legacy",
                          extra_settings={"prefetch": "64"})
    loaded = worker_settings.DispatcherSettings.load(argv=[], environ=env)
    workload = make_workload(kind)
    assert loaded.vhost == "15-15_v2.0"
    assert loaded.bundle_dir == Path(str(workload.bundle_dir))
    assert loaded.profile is ProtocolProfile.LEGACY
    assert loaded.allowed_use_cases == frozenset({"createCase", "reference"})
    assert loaded.default_ttl_ms == 6 * 3600 * 1000
    assert loaded.prefetch == 64
    assert loaded.amqp_url == "amqps://rabbitmq.hub-integration.svc:5671/"
    assert loaded.metrics_port == workloads.DEFAULT_METRICS_PORT
    assert loaded.preferences_file == Path("/etc/hub-dispatcher/preferences/preferences.yaml")
    assert (loaded.tls_ca_file, loaded.tls_cert_file, loaded.tls_key_file) == tuple(
        Path("/etc/hub-dispatcher/tls") / key for key in ("ca.crt", "tls.crt", "tls.key"))


@pytest.mark.parametrize("allowed", [None, ()])
def test_no_allow_list_means_every_use_case(allowed: tuple[str, ...] | None) -> None:
    env = _dispatcher_env(allowed_use_cases=allowed)
    assert env["HUB_DISPATCHER_ALLOWED_USE_CASES"] == "*"
    assert worker_settings.DispatcherSettings.load(argv=[], environ=env).allowed_use_cases is None


def test_extra_settings_render_in_the_settings_field_order() -> None:
    env = _dispatcher_env(extra_settings={"prefetch": "32", "max_message_bytes": "2097152"})
    order = [settings_field.name for settings_field in dataclasses.fields(worker_settings.DispatcherSettings)]
    rendered = [name.removeprefix(worker_settings.ENV_PREFIX).lower() for name in env]
    assert rendered == sorted(rendered, key=order.index)
    assert env["HUB_DISPATCHER_MAX_MESSAGE_BYTES"] == "2097152"


@pytest.mark.parametrize(("extra", "message"), [
    ({"prefetchh": "32"}, "prefetchh are not dispatcher settings"),
    ({"vhost": "other"}, "extra_settings may not set vhost"),
    ({"amqp_url": "amqps://elsewhere/"}, "extra_settings may not set amqp_url"),
])
def test_extra_settings_errors(extra: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidWorkload, match=message):
        make_workload(extra_settings=extra)


def test_a_new_required_dispatcher_setting_fails_the_render_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workloads, "_REQUIRED_SETTINGS", (*workloads._REQUIRED_SETTINGS, "confirm_window"))
    monkeypatch.setattr(workloads, "_SETTING_NAMES", (*workloads._SETTING_NAMES, "confirm_window"))
    with pytest.raises(InvalidWorkload, match="requires settings confirm_window: give them in extra_settings"):
        make_workload()
    assert "HUB_DISPATCHER_CONFIRM_WINDOW" in _dispatcher_env(extra_settings={"confirm_window": "128"})


def test_a_renamed_dispatcher_setting_fails_the_render_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workloads, "_SETTING_NAMES",
                        tuple(name for name in workloads._SETTING_NAMES if name != "amqp_url"))
    with pytest.raises(InvalidWorkload, match="no setting amqp_url any more"):
        make_workload()


def test_workload_from_the_specs() -> None:
    perimeter = PerimeterSpec.model_validate({
        "description": "SAMU to SAMU",
        "allowedUseCases": ["createCase", "reference"],
        "messageTTL": "24h",
        "dispatcher": {"replicas": 2, "resources": {"requests": {"cpu": "200m"}}},
    })
    spec = VHostVersionSpec.model_validate({
        "perimeterRef": {"name": "15-15"}, "version": "2.0", "profile": "legacy", "messageTTL": "6h",
        "models": {"version": "2.2", "image": {"reference": "registry.example.org/models:2.2"}},
    })
    workload = dispatcher_workload_for(
        vhost_version_name="15-15-v2.0", namespace="hub", uid="uid-15", spec=spec, perimeter=perimeter, replicas=3,
        image="registry.example.org/hub-dispatcher:0.1.0", amqps_host="rabbitmq", amqps_port=5671,
        tls_secret_name="dispatcher-tls", tls_checksum="abc",
    )
    assert (workload.name, workload.namespace, workload.vhost) == ("dispatcher-15-15-v2-0", "hub", "15-15_v2.0")
    assert (workload.owner.name, workload.owner.uid, workload.owner.kind) == ("15-15-v2.0", "uid-15", "VHostVersion")
    assert workload.profile is ProtocolProfile.LEGACY
    assert workload.message_ttl_ms == 6 * 3600 * 1000
    assert workload.allowed_use_cases == ("createCase", "reference")
    assert workload.resources is not None and workload.resources.to_wire() == {"requests": {"cpu": "200m"}}
    assert workload.models is spec.models
    assert workload.preferences_config_map == "dispatcher-15-15-v2-0-preferences"
    assert (workload.replicas, workload.tls_checksum) == (3, "abc")
