"""Bad inputs are refused by the real API server at admission, naming the field and what is expected."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hub_devenv.controlplane import LocalControlPlane
from hub_operator.api.base import GROUP, VERSION
from tests.unit.api.api_admission_cases import CASES, AdmissionCase

from hub_devenv.hub_resources import install_crds

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def custom_objects(cluster: LocalControlPlane) -> client.CustomObjectsApi:
    install_crds(cluster)
    return client.CustomObjectsApi(cluster.api_client())


def _attempt(api: client.CustomObjectsApi, namespace: str, case: AdmissionCase) -> ApiException:
    name = case.manifest["metadata"]["name"]
    with pytest.raises(ApiException) as refused:
        if case.update is None:
            api.create_namespaced_custom_object(
                GROUP, VERSION, namespace, case.plural, case.manifest, field_validation="Strict"
            )
        else:
            api.create_namespaced_custom_object(GROUP, VERSION, namespace, case.plural, case.manifest)
            api.patch_namespaced_custom_object(GROUP, VERSION, namespace, case.plural, name, case.update)
    return refused.value


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused(custom_objects: client.CustomObjectsApi, namespace: str, case: AdmissionCase) -> None:
    error = _attempt(custom_objects, namespace, case)
    body = json.loads(error.body)
    assert error.status == case.status, body
    if case.status == 422:
        assert body["reason"] == "Invalid"
        causes = body["details"]["causes"]
        matching = [cause for cause in causes if cause.get("field") == case.field]
        assert matching, f"no cause names {case.field}: {causes}"
        assert any(case.text in cause["message"] for cause in matching), matching
    else:
        assert case.field in body["message"] and case.text in body["message"], body["message"]


def test_valid_update_of_mutable_fields_is_accepted(custom_objects: client.CustomObjectsApi, namespace: str) -> None:
    """The immutability rules freeze identity only: suspending or adding ids still works."""
    manifest = next(case.manifest for case in CASES if case.id == "client-id-changed")
    custom_objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "hubclients", manifest)
    patched = custom_objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "hubclients", manifest["metadata"]["name"],
        {"spec": {"suspended": True, "additionalClientIds": ["fr.health.samu061"]}},
    )
    assert patched["spec"]["suspended"] is True
    assert patched["spec"]["additionalClientIds"] == ["fr.health.samu061"]
