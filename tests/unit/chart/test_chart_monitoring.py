"""Alerts and the Grafana dashboard query metrics the code really exports, with label values the code really uses.

The exported names come from the metrics classes themselves (hub_operator.metrics.Metrics and
hub_dispatcher.metrics.DispatcherMetrics registries), with the suffixes Prometheus exposes per metric type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator

import pytest
from hub_dispatcher import protocol
from hub_dispatcher.metrics import DispatcherMetrics
from hub_dispatcher.reports import ErrorCode
from hub_operator.metrics import Metrics
from prometheus_client import CollectorRegistry

from tests.unit.chart.chart_support import CHART, FULL_VALUES, Helm, objects_of, one

METRIC_NAME = re.compile(r"\b(hub_(?:operator|dispatcher)_[a-z0-9_]+)\b")
#: Exposition suffixes by metric type (prometheus_client's text format).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
DASHBOARD = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())


def exposed_names(registry: CollectorRegistry) -> set[str]:
    return {family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]}


EXPORTED = exposed_names(Metrics().registry) | exposed_names(DispatcherMetrics("any-vhost").registry)


def _alert_rules(helm: Helm) -> list[dict]:
    rule = one(helm.render(values_files=[FULL_VALUES]), "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def _dashboard_queries(node: object = DASHBOARD) -> Iterator[str]:
    """Every PromQL text of the dashboard: panel targets and templating variables."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, dict) and isinstance(value.get("query"), str):
                yield value["query"]
            else:
                yield from _dashboard_queries(value)
    elif isinstance(node, list):
        for value in node:
            yield from _dashboard_queries(value)


def _unknown(expressions: Iterable[str]) -> dict[str, set[str]]:
    unknown: dict[str, set[str]] = {}
    for expression in expressions:
        missing = set(METRIC_NAME.findall(expression)) - EXPORTED
        if missing:
            unknown[expression] = missing
    return unknown


def _label_values(expressions: Iterable[str], label: str) -> set[str]:
    return {value for expression in expressions for value in re.findall(rf'\b{label}=~?"([^"]*)"', expression)}


def test_the_metric_names_come_from_the_metrics_modules() -> None:
    """Guards the name extraction: a counter is exposed with _total, a histogram with _bucket."""
    assert {"hub_operator_errors_total", "hub_operator_leader", "hub_dispatcher_dispatch_seconds_bucket"} <= EXPORTED
    assert "hub_operator_errors" not in EXPORTED


def test_every_alert_queries_exported_metrics(helm: Helm) -> None:
    rules = _alert_rules(helm)
    expressions = [rule["expr"] for rule in rules]
    assert all(METRIC_NAME.search(expression) for expression in expressions)
    assert _unknown(expressions) == {}


def test_an_alert_on_a_metric_the_code_does_not_export_is_caught() -> None:
    assert _unknown(["rate(hub_operator_reconcile_errors_total[5m]) > 0"]) == {
        "rate(hub_operator_reconcile_errors_total[5m]) > 0": {"hub_operator_reconcile_errors_total"}
    }


def test_every_dashboard_query_uses_exported_metrics() -> None:
    queries = list(_dashboard_queries())
    targets = [t["expr"] for panel in DASHBOARD["panels"] for t in panel.get("targets", [])]
    assert targets and all(METRIC_NAME.search(expr) for expr in targets)
    assert _unknown(queries) == {}


def test_label_values_in_alerts_and_dashboard_are_the_codes(helm: Helm) -> None:
    expressions = [rule["expr"] for rule in _alert_rules(helm)] + list(_dashboard_queries())
    assert _label_values(expressions, "input") <= {protocol.DISPATCH_QUEUE, protocol.DEAD_LETTER_QUEUE}
    assert _label_values(expressions, "reason") <= {code.status_string for code in ErrorCode}
    assert ErrorCode.DEAD_LETTER_QUEUED.status_string in _label_values(expressions, "reason")


@pytest.mark.parametrize(("concern", "metric"), [
    ("dispatch queue backing up", "hub_dispatcher_dispatch_seconds_bucket"),
    ("dispatch queue not consumed", "hub_dispatcher_connected"),
    ("dead letters rising", "hub_dispatcher_reports_total"),
    ("certificates expiring", "hub_operator_certificate_expiry_timestamp_seconds"),
    ("certificates not renewed", "hub_operator_certificates_expiring"),
    ("operator errors", "hub_operator_errors_total"),
    ("no active operator", "hub_operator_leader"),
])
def test_the_alerts_cover_each_concern(helm: Helm, concern: str, metric: str) -> None:
    alerts = [rule for rule in _alert_rules(helm) if "alert" in rule]
    covering = [rule["alert"] for rule in alerts if metric in METRIC_NAME.findall(rule["expr"])]
    assert covering, f"no alert on {metric} ({concern})"


def test_every_alert_has_a_severity_and_a_summary(helm: Helm) -> None:
    for rule in _alert_rules(helm):
        if rule["alert"] == "HubOperatorRestarting":  # the user's own rule from extraRules
            continue
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_alert_thresholds_follow_the_values(helm: Helm) -> None:
    by_name = {rule.get("alert"): rule for rule in _alert_rules(helm)}
    assert by_name["HubDispatchQueueBackingUp"]["expr"].rstrip().endswith("> 0.5")
    assert f"< {21 * 86400}" in by_name["HubCertificateExpiresSoon"]["expr"]
    assert "HubOperatorRestarting" in by_name  # extraRules are appended
    assert 'namespace="hub-system"' in by_name["HubOperatorNotLeading"]["expr"]


def test_alert_annotations_keep_prometheus_templates_for_prometheus(helm: Helm) -> None:
    """Helm must not eat the {{ $labels... }} placeholders Prometheus fills in."""
    rules = {rule["alert"]: rule for rule in _alert_rules(helm) if "alert" in rule}
    assert "{{ $labels.vhost }}" in rules["HubDispatchQueueBackingUp"]["annotations"]["summary"]


def test_the_dashboard_is_well_formed() -> None:
    panels = DASHBOARD["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
    variables = {variable["name"] for variable in DASHBOARD["templating"]["list"]}
    used = {name for query in _dashboard_queries() for name in re.findall(r"\$(\w+)", query)}
    assert used <= variables | {"__all"}
    assert DASHBOARD["uid"] == "hub-operator"


def test_the_default_chart_renders_no_rule_but_the_dashboard(helm: Helm) -> None:
    objects = helm.render()
    assert not objects_of(objects, "PrometheusRule")
    assert json.loads(one(objects, "ConfigMap")["data"]["hub-operator.json"])["uid"] == "hub-operator"
