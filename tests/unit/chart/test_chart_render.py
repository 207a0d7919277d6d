"""charts/hub-operator renders valid, hardened manifests whose operator settings are the operator's own.

helm lint and helm template with the defaults and with tests/unit/chart/full-values.yaml (every option on);
every built-in object passes kubernetes-validate --strict, the Prometheus Operator objects a minimal schema of
their own (schemas/); the rendered HUB_OPERATOR_* environment is parsed by OperatorSettings itself.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from hub_operator import pki
from hub_operator.api.broker import BrokerSecretKey
from hub_operator.builders import workloads
from hub_operator.settings import DEFAULT_IMAGE, OperatorSettings

from tests.unit.chart.chart_support import (
    CHART,
    FULL_VALUES,
    KUBERNETES_VERSION,
    REPO,
    Helm,
    literal_env,
    objects_of,
    one,
    operator_container,
)

SCHEMAS = Path(__file__).resolve().parent / "schemas"
MONITORING_SCHEMAS = {
    "ServiceMonitor": SCHEMAS / "servicemonitor.schema.json",
    "PrometheusRule": SCHEMAS / "prometheusrule.schema.json",
}
VALUE_SETS = {"default": (), "full": (FULL_VALUES,)}
FULL = yaml.safe_load(FULL_VALUES.read_text())
#: OperatorSettings fields the chart deliberately leaves to the operator's own default, and why.
NOT_SET_BY_THE_CHART = {
    "identity": "POD_NAME from the downward API (survives container restarts)",
    "kubeconfig": "in-cluster ServiceAccount token",
    "models_local_check": "dispatchers run as pods, not beside the operator",
}
#: Chart defaults that differ from the operator's on purpose (the operator's suit a developer's machine).
CHART_DEFAULT_DEVIATIONS = {
    "operator_namespace": "the release namespace",
    "log_format": "json: one object per line for log collectors",
    "ca_autogenerate": "the chart generates the CA itself (ca.source=helm)",
}


def env_settings(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The rendered HUB_OPERATOR_* variables as OperatorSettings field names."""
    prefix = "HUB_OPERATOR_"
    env = {name[len(prefix):].lower(): value for name, value in literal_env(operator_container(objects)).items()
           if name.startswith(prefix)}
    env["operator_namespace"] = env.pop("namespace")  # HUB_OPERATOR_NAMESPACE is the operator's own namespace
    return env


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_helm_lint_strict_passes(helm: Helm, values: tuple[Path, ...]) -> None:
    args = ["lint", "--strict", str(CHART)] + [arg for path in values for arg in ("--values", str(path))]
    output = helm.run(*args).stdout
    assert "0 chart(s) failed" in output


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_rendered_object_is_valid(helm: Helm, values: tuple[Path, ...]) -> None:
    objects = helm.render(values_files=values, include_crds=True)
    kinds = {obj["kind"] for obj in objects}
    assert {"CustomResourceDefinition", "Deployment", "ServiceAccount", "Role", "RoleBinding", "Service"} <= kinds
    for obj in objects:
        schema_path = MONITORING_SCHEMAS.get(obj["kind"])
        if schema_path is not None:  # custom resources of the Prometheus Operator: kubernetes-validate has no schema
            jsonschema.validate(obj, json.loads(schema_path.read_text()))
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_strict_validation_would_catch_a_misplaced_field(helm: Helm) -> None:
    """Guards the test above: the validator in use refuses an unknown field in our Deployment."""
    deployment = copy.deepcopy(dict(one(helm.render(), "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFilesystem"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_monitoring_schemas_refuse_a_misspelt_field(helm: Helm) -> None:
    objects = helm.render(values_files=[FULL_VALUES])
    monitor = copy.deepcopy(dict(objects_of(objects, "ServiceMonitor")[0]))
    monitor["spec"]["endpoints"][0]["honourLabels"] = True
    with pytest.raises(jsonschema.ValidationError, match="honourLabels"):
        jsonschema.validate(monitor, json.loads(MONITORING_SCHEMAS["ServiceMonitor"].read_text()))


def test_the_default_image_is_the_operators_and_the_dispatchers(helm: Helm) -> None:
    container = operator_container(helm.render())
    assert container["image"] == DEFAULT_IMAGE
    assert literal_env(container)["HUB_OPERATOR_DISPATCHER_IMAGE"] == DEFAULT_IMAGE
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project_version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert chart["appVersion"] == project_version == DEFAULT_IMAGE.rsplit(":", 1)[1]


def test_a_digest_pins_both_the_operator_and_the_dispatchers(helm: Helm) -> None:
    container = operator_container(helm.render(values_files=[FULL_VALUES]))
    expected = f"{FULL['image']['repository']}@{FULL['image']['digest']}"
    assert container["image"] == expected
    env = literal_env(container)
    assert env["HUB_OPERATOR_DISPATCHER_IMAGE"] == expected
    assert container["imagePullPolicy"] == env["HUB_OPERATOR_DISPATCHER_IMAGE_PULL_POLICY"] == "Always"


def test_a_tag_overrides_the_app_version(helm: Helm) -> None:
    container = operator_container(helm.render(settings={"image.tag": "0.2.0-rc.1"}))
    assert container["image"] == "ghcr.io/hubsante/hub-operator:0.2.0-rc.1"
    assert literal_env(container)["HUB_OPERATOR_DISPATCHER_IMAGE"] == container["image"]


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_operator_deployment_is_hardened_and_probed(helm: Helm, values: tuple[Path, ...]) -> None:
    objects = helm.render(values_files=values)
    deployment = one(objects, "Deployment")
    spec, pod = deployment["spec"], deployment["spec"]["template"]["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["terminationGracePeriodSeconds"] >= 20
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]
    container = operator_container(objects)
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    # The read-only root filesystem leaves /tmp as the only writable path (docs/image.md).
    tmp_volumes = {m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/tmp"}
    assert {v["name"] for v in pod["volumes"] if "emptyDir" in v} == tmp_volumes != set()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = literal_env(container)
    assert ports == {"metrics": int(env["HUB_OPERATOR_METRICS_PORT"]), "health": int(env["HUB_OPERATOR_HEALTH_PORT"])}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    downward = {item["name"]: item["valueFrom"]["fieldRef"]["fieldPath"] for item in container["env"]
                if "valueFrom" in item}
    assert downward == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}


def test_every_operator_setting_is_set_by_the_chart_or_deliberately_left_out(helm: Helm) -> None:
    fields = {f.name for f in dataclasses.fields(OperatorSettings)}
    rendered = set(env_settings(helm.render()))
    assert rendered | set(NOT_SET_BY_THE_CHART) == fields, (
        "a new operator setting must get a chart value (templates/deployment.yaml) or a reason in NOT_SET_BY_THE_CHART"
    )
    assert not rendered & set(NOT_SET_BY_THE_CHART)


def test_chart_defaults_are_the_operator_defaults_except_deliberate_ones(helm: Helm) -> None:
    from_chart = OperatorSettings.from_strings(env_settings(helm.render(namespace="hub-system")))
    operator_defaults = OperatorSettings()
    differing = {f.name for f in dataclasses.fields(OperatorSettings)
                 if f.name not in NOT_SET_BY_THE_CHART
                 and getattr(from_chart, f.name) != getattr(operator_defaults, f.name)}
    # operator_namespace only differs when the process runs outside a pod named namespace "hub-system".
    assert differing - {"operator_namespace"} == set(CHART_DEFAULT_DEVIATIONS) - {"operator_namespace"}
    assert from_chart.operator_namespace == "hub-system" and from_chart.clusterwide


def test_full_values_reach_the_operator_settings(helm: Helm) -> None:
    settings = OperatorSettings.from_strings(env_settings(helm.render(values_files=[FULL_VALUES],
                                                                      namespace="hub-control")))
    operator = FULL["operator"]
    assert settings.namespaces == tuple(FULL["watchNamespaces"])
    assert settings.operator_namespace == "hub-control"
    assert (settings.ca_secret_name, settings.ca_autogenerate) == ("hub-ca", False)
    assert settings.broker_secret_name == FULL["broker"]["secretName"]
    assert (settings.log_format.value, settings.log_level) == ("text", "DEBUG")
    assert settings.worker_limit == operator["workerLimit"]
    assert settings.drift_interval == 30 and settings.drift_report_window == 600
    assert settings.certificate_check_interval == 600
    assert settings.dispatcher_certificate_validity == 4320 * 3600
    assert settings.dispatcher_certificate_renew_before == 1440 * 3600
    assert (settings.broker_connect_timeout, settings.broker_request_timeout) == (5, 30)
    assert (settings.deletion_retry_max_delay, settings.deletion_give_up_after) == (120, 0)
    assert (settings.lease_name, settings.lease_duration) == ("hub-operator-leader", 20)
    assert (settings.metrics_port, settings.health_port) == (9190, 8180)
    env = operator_container(helm.render(values_files=[FULL_VALUES]))["env"]
    assert {"name": "TZ", "value": "Europe/Paris"} in env


@pytest.mark.parametrize(("source", "autogenerate"), [("helm", "false"), ("existing", "false"), ("operator", "true")])
def test_ca_sources(helm: Helm, source: str, autogenerate: str) -> None:
    objects = helm.render(settings={"ca.source": source})
    assert literal_env(operator_container(objects))["HUB_OPERATOR_CA_AUTOGENERATE"] == autogenerate
    ca_secrets = [s for s in objects_of(objects, "Secret") if s["metadata"]["name"] == "hub-operator-ca"]
    assert len(ca_secrets) == (1 if source == "helm" else 0)


def test_the_helm_generated_ca_can_issue_client_certificates(helm: Helm) -> None:
    import base64

    secret = one(helm.render(), "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    data = {key: base64.b64decode(value) for key, value in secret["data"].items()}
    authority = pki.CertificateAuthority.from_pem(data["tls.crt"], data["tls.key"])
    issued = authority.issue("fr.health.samu050")
    assert pki.common_name(pki.load_cert(issued.cert_pem)) == "fr.health.samu050"


def test_the_broker_secret_is_created_in_each_watched_namespace_with_the_operators_keys(helm: Helm) -> None:
    objects = helm.render(values_files=[FULL_VALUES])
    brokers = [s for s in objects_of(objects, "Secret") if s["metadata"]["name"] == FULL["broker"]["secretName"]]
    assert sorted(s["metadata"]["namespace"] for s in brokers) == sorted(FULL["watchNamespaces"])
    for secret in brokers:
        assert set(secret["stringData"]) == {key.value for key in BrokerSecretKey}
        assert secret["stringData"]["amqpsPort"] == "5671"
        assert secret["stringData"]["ca.crt"] == FULL["broker"]["caCrt"]


def test_no_broker_secret_by_default(helm: Helm) -> None:
    assert [s["metadata"]["name"] for s in objects_of(helm.render(), "Secret")] == ["hub-operator-ca"]


def _policy_ports(rules: list[Mapping[str, Any]]) -> set[tuple[str | int, str]]:
    return {(port["port"], port["protocol"]) for rule in rules for port in rule["ports"]}


def test_network_policies_let_the_operator_reach_api_server_and_management_and_dispatchers_amqps_only(
    helm: Helm,
) -> None:
    objects = helm.render(values_files=[FULL_VALUES])
    policies = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in objects_of(objects, "NetworkPolicy")}
    operator_policy = policies.pop(("hub-system", "hub-operator"))["spec"]
    assert operator_policy["podSelector"]["matchLabels"] == one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    assert _policy_ports(operator_policy["egress"]) == {(6443, "TCP"), (15671, "TCP"), (53, "UDP"), (53, "TCP")}
    assert {block["ipBlock"]["cidr"] for block in operator_policy["egress"][0]["to"]} == {"10.0.0.1/32", "192.168.10.0/24"}
    assert _policy_ports(operator_policy["ingress"]) == {("metrics", "TCP")}
    # One dispatcher policy per watched namespace, selecting the pods hub_operator.builders.workloads labels.
    assert set(policies) == {(namespace, "hub-operator-dispatchers") for namespace in FULL["watchNamespaces"]}
    dispatcher_labels = {**workloads.selector_labels("any"), workloads.LABEL_MANAGED_BY: workloads.MANAGED_BY}
    for policy in policies.values():
        spec = policy["spec"]
        assert spec["podSelector"]["matchLabels"].items() <= dispatcher_labels.items()
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        assert _policy_ports(spec["egress"]) == {(5671, "TCP"), (53, "UDP"), (53, "TCP")}
        assert _policy_ports(spec["ingress"]) == {(workloads.DEFAULT_METRICS_PORT, "TCP")}
        assert spec["egress"][0]["to"] == FULL["networkPolicy"]["broker"]["to"]


def test_service_monitors_select_the_operator_and_the_dispatcher_services(helm: Helm) -> None:
    objects = helm.render(values_files=[FULL_VALUES])
    monitors = {m["metadata"]["name"]: m["spec"] for m in objects_of(objects, "ServiceMonitor")}
    service = one(objects, "Service")
    assert monitors["hub-operator"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitors["hub-operator"]["endpoints"][0]["honorLabels"] is True
    dispatchers = monitors["hub-operator-dispatchers"]
    assert dispatchers["selector"]["matchLabels"] == {workloads.LABEL_NAME: workloads.APP_NAME,
                                                      workloads.LABEL_MANAGED_BY: workloads.MANAGED_BY}
    assert dispatchers["namespaceSelector"] == {"matchNames": FULL["watchNamespaces"]}
    assert dispatchers["endpoints"][0]["port"] == "metrics"  # the port name of the dispatcher Service template
    # Watching every namespace: the dispatchers' Services may be in any of them.
    clusterwide = helm.render(settings={"serviceMonitor.enabled": True})
    (dispatchers,) = [m for m in objects_of(clusterwide, "ServiceMonitor") if m["metadata"]["name"].endswith("-dispatchers")]
    assert dispatchers["spec"]["namespaceSelector"] == {"any": True}


def test_the_dashboard_configmap_carries_the_dashboard_for_grafanas_sidecar(helm: Helm) -> None:
    configmap = one(helm.render(values_files=[FULL_VALUES]), "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "monitoring"
    dashboard = json.loads(configmap["data"]["hub-operator.json"])
    assert dashboard == json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    assert not objects_of(helm.render(settings={"grafanaDashboard.enabled": False}), "ConfigMap")


def test_optional_objects_are_off_by_default(helm: Helm) -> None:
    kinds = {obj["kind"] for obj in helm.render()}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "NetworkPolicy"}
