"""The chart's generated parts agree with the code: CRDs identical to crds/, RBAC exactly hub_operator.rbac.RULES.

The RBAC checks read what helm renders (not only the generated file), in both shapes: a ClusterRole when every
namespace is watched, Roles in each watched namespace otherwise, plus the operator-namespace Role.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hub_operator import chartgen, rbac
from hub_operator.api import crdgen

from tests.unit.chart.chart_support import CHART, REPO, Helm, granted, objects_of

RULE_TRIPLES = {(rule.api_group, rule.resource, verb) for rule in rbac.RULES for verb in rule.verbs}
LEASES = ("coordination.k8s.io", "leases")


def test_generated_files_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert chartgen.main(["--chart", str(CHART), "--check"]) == 0, capsys.readouterr().err


def test_chart_crds_are_identical_to_the_top_level_crds() -> None:
    top_level = {path.name: path.read_bytes() for path in (REPO / "crds").glob("*.yaml")}
    in_chart = {path.name: path.read_bytes() for path in (CHART / "crds").glob("*.yaml")}
    assert in_chart == top_level
    assert set(in_chart) == {crdgen.crd_filename(info) for info in crdgen.KINDS}


def test_check_reports_a_chart_whose_rbac_differs_from_the_code(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    chart = tmp_path / "hub-operator"
    (chart / "files").mkdir(parents=True)
    (chart / "Chart.yaml").write_text((CHART / "Chart.yaml").read_text())
    assert chartgen.main(["--chart", str(chart)]) == 0
    assert chartgen.main(["--chart", str(chart), "--check"]) == 0
    # A rule file rendered from one verb fewer (what a hand edit of the chart would do) is reported stale.
    fewer = tuple(rbac.Rule(r.api_group, r.resource, tuple(v for v in r.verbs if v != "patch"), r.why)
                  if r.resource == "configmaps" else r for r in rbac.RULES)
    rules_file = chart / chartgen.RBAC_RULES_FILE
    rules_file.write_text(chartgen.render_rbac_rules(chartgen.split_rules(fewer)))
    capsys.readouterr()
    assert chartgen.main(["--chart", str(chart), "--check"]) == 1
    assert f"{rules_file} is out of date with the code: run `make crds`" in capsys.readouterr().err
    # A CRD file of a kind the API no longer has is reported too (and removed by a regeneration).
    (chart / "crds" / "hubsante.io_retired.yaml").write_text("kind: CustomResourceDefinition\n")
    chartgen.main(["--chart", str(chart)])
    assert not (chart / "crds" / "hubsante.io_retired.yaml").exists()


def test_generator_refuses_a_directory_that_is_not_a_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert chartgen.main(["--chart", str(tmp_path), "--check"]) == 2
    assert "is not a Helm chart (no Chart.yaml)" in capsys.readouterr().err


def test_operator_namespace_access_must_be_granted_by_the_rules() -> None:
    unknown = chartgen.OperatorNamespaceAccess("", "configmaps-typo", ("get",), "why", only_there=True)
    with pytest.raises(chartgen.ChartGenerationError, match="'configmaps-typo' .* is not in rbac.RULES"):
        chartgen.split_rules(rbac.RULES, [unknown])
    too_much = chartgen.OperatorNamespaceAccess("", "secrets", ("get", "delete"), "why", only_there=False)
    with pytest.raises(chartgen.ChartGenerationError, match=r"needs \['delete'\], which rbac.RULES does not grant"):
        chartgen.split_rules(rbac.RULES, [too_much])


def test_the_rules_file_is_rbac_rules_split_by_namespace() -> None:
    document = yaml.safe_load((CHART / chartgen.RBAC_RULES_FILE).read_text())
    watched = granted(document[chartgen.WATCHED_KEY])
    operator_namespace = granted(document[chartgen.OPERATOR_NAMESPACE_KEY])
    assert watched | operator_namespace == RULE_TRIPLES
    # The Lease lives in the operator namespace only; the CA Secret is read (or created) there.
    assert {(g, r) for g, r, _ in operator_namespace} == {("", "secrets"), LEASES}
    assert not {t for t in watched if t[:2] == LEASES}
    assert {v for g, r, v in operator_namespace if (g, r) == ("", "secrets")} == {"get", "create"}
    assert not any("*" in part for triple in watched | operator_namespace for part in triple)


def _bound_subjects(objects: list[dict], kind: str) -> set[tuple[str, str, str]]:
    return {(s["kind"], s["namespace"], s["name"]) for binding in objects_of(objects, kind) for s in binding["subjects"]}


def test_watching_every_namespace_renders_a_cluster_role_with_exactly_the_rules(helm: Helm) -> None:
    objects = helm.render(namespace="hub-system")
    (cluster_role,) = objects_of(objects, "ClusterRole")
    (role,) = objects_of(objects, "Role")
    assert role["metadata"]["namespace"] == "hub-system"
    assert granted(cluster_role["rules"]) | granted(role["rules"]) == RULE_TRIPLES
    assert not {t for t in granted(cluster_role["rules"]) if t[:2] == LEASES}
    (binding,) = objects_of(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": cluster_role["metadata"]["name"]}
    service_account = objects_of(objects, "ServiceAccount")[0]["metadata"]
    subject = {("ServiceAccount", "hub-system", service_account["name"])}
    assert _bound_subjects(objects, "ClusterRoleBinding") == _bound_subjects(objects, "RoleBinding") == subject


def test_watching_namespaces_renders_roles_there_and_nothing_cluster_wide(helm: Helm) -> None:
    watched = ["hub-sandbox", "hub-preprod"]
    objects = helm.render(namespace="hub-system", settings={"watchNamespaces": watched})
    assert not objects_of(objects, "ClusterRole") and not objects_of(objects, "ClusterRoleBinding")
    roles = {role["metadata"]["namespace"]: granted(role["rules"]) for role in objects_of(objects, "Role")}
    assert set(roles) == {*watched, "hub-system"}
    assert roles["hub-sandbox"] == roles["hub-preprod"] == RULE_TRIPLES - {t for t in RULE_TRIPLES if t[:2] == LEASES}
    assert roles["hub-sandbox"] | roles["hub-system"] == RULE_TRIPLES
    bindings = objects_of(objects, "RoleBinding")
    assert {b["metadata"]["namespace"] for b in bindings} == {*watched, "hub-system"}
    for binding in bindings:
        role_names = {r["metadata"]["name"] for r in objects_of(objects, "Role")
                      if r["metadata"]["namespace"] == binding["metadata"]["namespace"]}
        assert binding["roleRef"]["kind"] == "Role" and binding["roleRef"]["name"] in role_names


def test_rbac_can_be_left_to_the_cluster_administrator(helm: Helm) -> None:
    objects = helm.render(settings={"rbac.create": False, "serviceAccount.create": False,
                                    "serviceAccount.name": "hub-operator-managed-elsewhere"})
    assert not {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"} & {o["kind"] for o in objects}
    (deployment,) = objects_of(objects, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "hub-operator-managed-elsewhere"
