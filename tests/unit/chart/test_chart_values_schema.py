"""Bad values stop `helm template` / `helm install` with a message naming the value (values.schema.json, and the
chart's own checks for rules across several values)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hub_operator.api.fieldtypes import DURATION_PATTERN

from tests.unit.chart.chart_support import CHART, Helm, HelmFailed

SCHEMA = json.loads((CHART / "values.schema.json").read_text())

# (values set with --set-json, what helm's error must say)
BAD_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    "unknown top-level value": ({"replicas": 2}, "additional properties 'replicas' not allowed"),
    "unknown operator setting": ({"operator": {"driftIntervall": "10s"}},
                                 "additional properties 'driftIntervall' not allowed"),
    "pull policy": ({"image": {"pullPolicy": "Sometimes"}},
                    "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"),
    "image digest": ({"image": {"digest": "sha256:1234"}}, "at '/image/digest': 'sha256:1234' does not match pattern"),
    "image repository with a tag": ({"image": {"repository": "Registry.example.org/Hub Operator"}},
                                    "at '/image/repository'"),
    "namespace name": ({"watchNamespaces": ["Hub_Sandbox"]}, "at '/watchNamespaces/0': 'Hub_Sandbox' does not match pattern"),
    "duplicate namespace": ({"watchNamespaces": ["hub-a", "hub-a"]}, "at '/watchNamespaces': items at 0 and 1 are equal"),
    "duration format": ({"operator": {"driftInterval": "10 seconds"}},
                        "at '/operator/driftInterval': '10 seconds' does not match pattern"),
    "zero duration where one is needed": ({"operator": {"leaseDuration": "0s"}}, "at '/operator/leaseDuration'"),
    "log level": ({"operator": {"logLevel": "verbose"}},
                  "at '/operator/logLevel': value must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR'"),
    "privileged port": ({"metrics": {"port": 80}}, "at '/metrics/port': minimum: got 80, want 1,024"),
    "root user": ({"runAsUser": 0}, "at '/runAsUser': minimum: got 0, want 1"),
    "short grace period": ({"terminationGracePeriodSeconds": 5},
                           "at '/terminationGracePeriodSeconds': minimum: got 5, want 20"),
    "CA source": ({"ca": {"source": "vault"}}, "at '/ca/source': value must be one of 'helm', 'existing', 'operator'"),
    "CA secret name": ({"ca": {"secretName": "Hub CA"}}, "at '/ca/secretName': 'Hub CA' does not match pattern"),
    "broker Secret without its connection": (
        {"watchNamespaces": ["hub-a"], "broker": {"create": True, "managementUrl": "https://rabbit:15671"}},
        "at '/broker/username': minLength: got 0, want 1"),
    "broker management URL": ({"broker": {"managementUrl": "rabbit:15672"}}, "at '/broker/managementUrl'"),
    "operator variables in extraEnv": ({"operator": {"extraEnv": [{"name": "HUB_OPERATOR_DRIFT_INTERVAL", "value": "1s"}]}},
                                       "at '/operator/extraEnv/0/name'"),
    "network policy without API server": ({"networkPolicy": {"enabled": True, "broker": {"to": [{"podSelector": {}}]}}},
                                          "at '/networkPolicy/apiServer/cidrs': minItems: got 0, want 1"),
    "network policy without broker": ({"networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["10.0.0.1/32"]}}},
                                      "at '/networkPolicy/broker/to': minItems: got 0, want 1"),
    "alert threshold": ({"prometheusRule": {"dispatchLatencySeconds": 0}},
                        "at '/prometheusRule/dispatchLatencySeconds': exclusiveMinimum: got 0, want 0"),
}

# Rules across several values: the chart's own `fail` messages.
BAD_COMBINATIONS: dict[str, tuple[dict[str, Any], str]] = {
    "same port twice": ({"metrics": {"port": 8080}, "health": {"port": 8080}},
                        "metrics.port and health.port must differ (both 8080)"),
    "broker Secret for every namespace": (
        {"broker": {"create": True, "managementUrl": "https://rabbit:15671", "username": "u", "password": "p",
                    "amqpsHost": "rabbit", "caCrt": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"}},
        "broker.create needs watchNamespaces"),
    "no ServiceAccount to run as": ({"serviceAccount": {"create": False}},
                                    "serviceAccount.name is required when serviceAccount.create is false"),
}


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and scalars are set whole."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


@pytest.mark.parametrize(("values", "message"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_are_rejected_by_the_schema(helm: Helm, values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmFailed) as failure:
        helm.template(settings=_flatten(values))
    assert "values don't meet the specifications of the schema" in failure.value.stderr
    assert message in failure.value.stderr


@pytest.mark.parametrize(("values", "message"), BAD_COMBINATIONS.values(), ids=BAD_COMBINATIONS.keys())
def test_bad_combinations_are_rejected_by_the_chart(helm: Helm, values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmFailed) as failure:
        helm.template(settings=_flatten(values))
    assert message in failure.value.stderr


def test_each_rejected_value_is_accepted_when_corrected(helm: Helm) -> None:
    """The cases above fail for their stated reason, not for a neighbouring mistake: the fixed values render."""
    corrected = {
        "image.pullPolicy": "Always", "image.digest": "sha256:" + "ab" * 32, "watchNamespaces": ["hub-sandbox"],
        "operator.driftInterval": "10s", "operator.leaseDuration": "15s", "operator.logLevel": "WARNING",
        "metrics.port": 9191, "runAsUser": 65532, "terminationGracePeriodSeconds": 20, "ca.source": "existing",
        "prometheusRule.dispatchLatencySeconds": 0.25, "broker.managementUrl": "http://rabbit:15672",
    }
    assert helm.render(settings=corrected)


def test_schema_durations_are_the_operators_duration_format() -> None:
    assert SCHEMA["definitions"]["duration"]["pattern"] == DURATION_PATTERN
