"""The argocd-cm snippet and the per-kind scripts are generated from deploy/argocd/health and in sync; the
example Application and the CRDs keep GitOps clean (the operator never writes spec)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from tests.unit.argocd.argocd_lua import ARGOCD_DIR, REPO, failure_reasons, health_script, kinds, run_health

from hub_operator.api.base import GROUP
from hub_operator.api.crdgen import KINDS


def _render_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("argocd_render", ARGOCD_DIR / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


RENDER = _render_module()


def test_generated_files_are_up_to_date() -> None:
    assert RENDER.stale_files() == [], "run: .venv/bin/python deploy/argocd/render.py"


def test_configmap_carries_one_health_script_per_kind_identical_to_the_generated_ones() -> None:
    configmap = yaml.safe_load((ARGOCD_DIR / "argocd-cm.yaml").read_text())
    assert (configmap["kind"], configmap["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert set(configmap["data"]) == {f"resource.customizations.health.{GROUP}_{info.kind}" for info in KINDS}
    for info in KINDS:
        assert configmap["data"][f"resource.customizations.health.{GROUP}_{info.kind}"] == health_script(info.kind)


def test_a_kind_without_a_health_source_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RENDER, "SOURCES", tmp_path)
    (tmp_path / "common.lua").write_text("-- shared\n")
    with pytest.raises(FileNotFoundError, match=r"Perimeter\.lua is missing"):
        RENDER.render()


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(RENDER, "CONFIGMAP", tmp_path / "argocd-cm.yaml")
    (tmp_path / "argocd-cm.yaml").write_text("stale\n")
    assert RENDER.main(["--check"]) == 1
    assert "argocd-cm.yaml" in capsys.readouterr().err


def test_failure_reasons_are_documented() -> None:
    readme = (ARGOCD_DIR / "README.md").read_text()
    missing = sorted({reason for kind in kinds() for reason in failure_reasons(kind)} - set(readme.split("`")))
    assert not missing, f"deploy/argocd/README.md does not list {missing}"


def test_scripts_from_the_configmap_run() -> None:
    configmap = yaml.safe_load((ARGOCD_DIR / "argocd-cm.yaml").read_text())
    for script in configmap["data"].values():
        assert run_health(script, {"metadata": {"name": "x"}}) == {
            "status": "Progressing", "message": "Waiting for the operator to report a status"}


def test_every_crd_has_a_status_subresource() -> None:
    """Status writes then never touch spec or metadata.generation, so Argo CD sees no drift from the operator."""
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            assert version.get("subresources", {}).get("status") == {}, f"{path.name} {version['name']}"


def test_example_application_syncs_the_hub_resources_without_hiding_spec_differences() -> None:
    application = yaml.safe_load((ARGOCD_DIR / "application.yaml").read_text())
    assert (application["apiVersion"], application["kind"]) == ("argoproj.io/v1alpha1", "Application")
    spec = application["spec"]
    assert spec["destination"]["namespace"] and spec["source"]["path"]
    # Ignoring differences in our kinds would hide a controller writing spec: there must be none.
    ignored = [entry for entry in spec.get("ignoreDifferences", []) if entry.get("group") == GROUP]
    assert ignored == []
    assert "ServerSideApply=true" in spec["syncPolicy"]["syncOptions"]
