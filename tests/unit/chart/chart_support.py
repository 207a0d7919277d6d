"""Running helm on charts/hub-operator and reading what it renders (shared by the chart's unit and integration tests)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hub_devenv.binaries import kube_tools

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "hub-operator"
FULL_VALUES = Path(__file__).resolve().parent / "full-values.yaml"
#: The Kubernetes version of the local control plane and kubectl (hub_devenv pins).
KUBERNETES_VERSION = "1.35.0"


class HelmFailed(AssertionError):
    """helm exited non-zero; the message carries its error output."""

    def __init__(self, command: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"helm {' '.join(command)} exited {result.returncode}:\n{result.stderr.strip()}")
        self.stderr = result.stderr


@dataclass(frozen=True)
class Helm:
    """The pinned helm binary with its cache/config/data folders kept out of $HOME."""

    binary: Path
    home: Path

    @classmethod
    def create(cls, home: Path) -> Helm:
        return cls(kube_tools().helm, home)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        environment = dict(os.environ, **{
            f"HELM_{kind}_HOME": str(self.home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")
        })
        result = subprocess.run([str(self.binary), *args], check=False, capture_output=True, text=True, timeout=120,
                                env=environment)
        if check and result.returncode != 0:
            raise HelmFailed(args, result)
        return result

    def template(self, *, values_files: Iterable[Path] = (), settings: Mapping[str, Any] | None = None,
                 namespace: str = "hub-system", release: str = "hub", include_crds: bool = False,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        args = ["template", release, str(CHART), "--namespace", namespace]
        for path in values_files:
            args += ["--values", str(path)]
        for key, value in (settings or {}).items():
            args += ["--set-json", f"{key}={json.dumps(value)}"]
        if include_crds:
            args.append("--include-crds")
        return self.run(*args, check=check)

    def render(self, **kwargs: Any) -> list[dict[str, Any]]:
        """The rendered objects (empty documents left out)."""
        return [doc for doc in yaml.safe_load_all(self.template(**kwargs).stdout) if doc]


def objects_of(objects: Iterable[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [obj for obj in objects if obj.get("kind") == kind]


def one(objects: Iterable[Mapping[str, Any]], kind: str) -> Mapping[str, Any]:
    found = objects_of(objects, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def operator_container(objects: Iterable[Mapping[str, Any]]) -> Mapping[str, Any]:
    deployment = one(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def literal_env(container: Mapping[str, Any]) -> dict[str, str]:
    """The container's plain ``name: value`` variables (downward-API ones left out)."""
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def granted(rules: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples a list of PolicyRules grants."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_strings(value)
