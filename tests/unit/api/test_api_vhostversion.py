"""VHostVersion spec: vhost naming, model bundle sources, settings merge."""

from __future__ import annotations

import datetime as dt
from pathlib import PurePosixPath

import pytest
from pydantic import ValidationError

from hub_dispatcher import protocol
from hub_operator.api.dispatching import Autoscaling, DispatcherSettings, ResourceList, ResourceRequirements
from hub_operator.api.perimeter import PerimeterSpec
from hub_operator.api.resources import parse_resource
from hub_operator.api.broker import DEFAULT_BROKER_SECRET_NAME
from hub_operator.api.modelbundle import ModelBundle, ModelSourceKind
from hub_operator.api.vhostversion import LifecycleState, QueueType, VHostVersionSpec, expected_object_name

MINIMAL = {"perimeterRef": {"name": "15-15"}, "version": "1.5", "models": {"version": "1.1"}}


def test_defaults() -> None:
    spec = VHostVersionSpec.model_validate(MINIMAL)
    assert spec.profile is protocol.ProtocolProfile.CURRENT
    assert spec.protocol is protocol.CURRENT
    assert spec.queue_type is QueueType.CLASSIC
    assert spec.state is LifecycleState.ACTIVE
    assert spec.deletion_policy.value == "retain"
    assert spec.message_ttl is None and spec.dispatcher is None and spec.broker_ref is None
    assert spec.broker_secret_name == DEFAULT_BROKER_SECRET_NAME


def test_vhost_name_comes_from_the_protocol_module() -> None:
    spec = VHostVersionSpec.model_validate(MINIMAL)
    assert spec.vhost_name == protocol.vhost_name("15-15", "1.5") == "15-15_v1.5"
    assert expected_object_name("15-15", "1.5") == "15-15-v1.5"


def test_legacy_profile_selects_the_legacy_protocol() -> None:
    spec = VHostVersionSpec.model_validate({**MINIMAL, "profile": "legacy"})
    assert spec.protocol is protocol.LEGACY


@pytest.mark.parametrize(
    ("models", "kind", "directory"),
    [
        ({"version": "2.2"}, ModelSourceKind.BUILTIN, PurePosixPath("/srv/models/2.2")),
        ({"version": "2.2", "path": "/work/shared/hubsante-models/2.2"}, ModelSourceKind.PATH,
         PurePosixPath("/work/shared/hubsante-models/2.2")),
        ({"version": "2.2", "image": {"reference": "models:2.2"}}, ModelSourceKind.IMAGE, None),
        ({"version": "2.2", "configMaps": [{"name": "m-json", "directory": "json-schema"}, {"name": "m-xsd", "directory": "xsd"}]},
         ModelSourceKind.CONFIG_MAPS, None),
    ],
)
def test_model_bundle_sources(models: dict[str, object], kind: ModelSourceKind, directory: PurePosixPath | None) -> None:
    bundle = ModelBundle.model_validate(models)
    assert bundle.source_kind is kind
    assert bundle.directory("/srv/models") == directory


def test_image_source_defaults() -> None:
    image = ModelBundle.model_validate({"version": "3.4.1", "image": {"reference": "models:3.4.1"}}).image
    assert image is not None
    assert (image.path, image.pull_policy.value) == ("/models", "IfNotPresent")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({**MINIMAL, "version": "1.5beta"}, "should match pattern"),
        ({**MINIMAL, "version": "v1.5"}, "should match pattern"),
        ({**MINIMAL, "perimeterRef": {"name": "15_15"}}, "should match pattern"),
        ({**MINIMAL, "perimeterRef": {}}, "name\n  Field required"),
        ({**MINIMAL, "models": {"version": "latest"}}, "should match pattern"),
        ({**MINIMAL, "models": {"version": "1.1", "path": "/a", "image": {"reference": "m:1"}}},
         "at most one bundle source: path, image or configMaps (got path, image)"),
        ({**MINIMAL, "models": {"version": "1.1", "path": "relative/dir"}}, "should match pattern"),
        ({**MINIMAL, "models": {"version": "1.1", "configMaps": []}}, "at least 1 item"),
        ({**MINIMAL, "models": {"version": "1.1", "configMaps": [{"name": "a"}, {"name": "a"}]}}, "each ConfigMap once"),
        ({**MINIMAL, "models": {"version": "1.1", "configMaps": [{"name": "a", "directory": "../etc"}]}}, "should match pattern"),
        ({**MINIMAL, "models": {"version": "1.1", "image": {"reference": "has space"}}}, "should match pattern"),
        ({**MINIMAL, "profile": "v2"}, "'current' or 'legacy'"),
        ({**MINIMAL, "queueType": "stream"}, "'classic' or 'quorum'"),
        ({**MINIMAL, "state": "retired"}, "'active' or 'deprecated'"),
        ({**MINIMAL, "deletionPolicy": "destroy"}, "'retain' or 'delete'"),
        ({**MINIMAL, "messageTTL": "0ms"}, "at least 1s"),
        ({**MINIMAL, "brokerRef": {"secretName": "Hub_Broker"}}, "should match pattern"),
        ({**MINIMAL, "dispatcher": {"replicas": 1, "autoscaling": {"maxReplicas": 2}}}, "not both"),
    ],
)
def test_invalid_specs(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        VHostVersionSpec.model_validate(spec)
    assert message in str(error.value)


def test_object_name_must_match_the_vhost() -> None:
    body = {"apiVersion": "hubsante.io/v1alpha1", "kind": "VHostVersion", "metadata": {"name": "vhost-a"}, "spec": MINIMAL}
    with pytest.raises(ValidationError, match="metadata.name must be 15-15-v1.5"):
        parse_resource(body)
    assert parse_resource({**body, "metadata": {"name": "15-15-v1.5"}}).metadata.name == "15-15-v1.5"


PERIMETER = PerimeterSpec(
    description="x",
    allowed_use_cases=["createCase"],
    message_ttl="24h",
    dispatcher=DispatcherSettings(
        autoscaling=Autoscaling(min_replicas=1, max_replicas=4),
        resources=ResourceRequirements(requests=ResourceList(cpu="100m")),
    ),
)


def test_effective_settings_without_overrides_are_the_perimeter_s() -> None:
    effective = VHostVersionSpec.model_validate(MINIMAL).effective_settings(PERIMETER)
    assert effective.message_ttl == dt.timedelta(hours=24)
    assert effective.message_ttl_ms == 86_400_000
    assert effective.dispatcher == PERIMETER.dispatcher
    assert effective.allowed_use_cases == ("createCase",)


def test_fixed_replicas_override_replaces_perimeter_autoscaling_and_keeps_its_resources() -> None:
    spec = VHostVersionSpec.model_validate({**MINIMAL, "messageTTL": "90m", "dispatcher": {"replicas": 3}})
    effective = spec.effective_settings(PERIMETER)
    assert effective.message_ttl_ms == 90 * 60_000
    assert effective.dispatcher.replicas == 3
    assert effective.dispatcher.autoscaling is None
    assert effective.dispatcher.resources == PERIMETER.dispatcher.resources


def test_resources_override_keeps_perimeter_scaling() -> None:
    spec = VHostVersionSpec.model_validate({**MINIMAL, "dispatcher": {"resources": {"limits": {"memory": "1Gi"}}}})
    effective = spec.effective_settings(PERIMETER).dispatcher
    assert effective.autoscaling == PERIMETER.dispatcher.autoscaling
    assert effective.resources == ResourceRequirements(limits=ResourceList(memory="1Gi"))


def test_autoscaling_override_replaces_perimeter_fixed_replicas() -> None:
    fixed = PerimeterSpec(description="x", dispatcher=DispatcherSettings(replicas=2))
    spec = VHostVersionSpec.model_validate({**MINIMAL, "dispatcher": {"autoscaling": {"maxReplicas": 5}}})
    effective = spec.effective_settings(fixed).dispatcher
    assert effective.replicas is None and effective.autoscaling is not None
    assert effective.effective_replicas is None
