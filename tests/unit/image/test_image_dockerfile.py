"""Invariants of the Dockerfile (no Docker engine here, so the build itself runs in CI elsewhere): multi-stage,
slim runtime, non-root numeric user, read-only-root friendly, entrypoints that are real console scripts, the
model bundles where the operator expects them, and a build context that leaks nothing."""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from hub_operator.api.modelbundle import DEFAULT_MODELS_ROOT

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"
PROGRAMS = ("hub-operator", "hub-dispatcher")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arguments for instruction, arguments in self.instructions if instruction == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and heredoc bodies attached."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    lines = iter(text.splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.endswith("\\"):
            line = line[:-1] + " " + next(lines).strip()
        heredoc = re.search(r"<<-?([A-Z]+)\s*$", line)
        if heredoc:
            body = []
            for inner in lines:
                if inner.strip() == heredoc.group(1):
                    break
                body.append(inner)
            line += "\n" + "\n".join(body)
        keyword, _, arguments = line.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = arguments.split()
            assert len(words) == 3 and words[1].upper() == "AS", f"every stage is named: FROM {arguments}"
            stages.append(Stage(words[0], words[2]))
        elif not stages:
            assert keyword == "ARG", f"only ARG may precede the first FROM, got {keyword}"
            name, _, default = arguments.partition("=")
            global_args[name] = default.strip('"')
        else:
            stages[-1].instructions.append((keyword, arguments))
    return global_args, stages


GLOBAL_ARGS, STAGES = parse_dockerfile(DOCKERFILE.read_text())
BY_NAME = {stage.name: stage for stage in STAGES}
RUNTIME = STAGES[-1]


def _resolve(reference: str, arguments: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda match: arguments[match.group(1)], reference)


def _env(stage: Stage) -> dict[str, str]:
    values: dict[str, str] = {}
    for arguments in stage.all("ENV"):
        for word in shlex.split(arguments):
            name, _, value = word.partition("=")
            values[name] = value
    return values


def _exec_form(arguments: str) -> list[str]:
    value = yaml.safe_load(arguments)
    assert isinstance(value, list), f"use the exec form (a JSON array) so that signals reach Python: {arguments}"
    return value


def test_multi_stage_build_with_a_slim_python_311_runtime() -> None:
    assert [stage.name for stage in STAGES] == ["builder", "models", "runtime"]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", _resolve(RUNTIME.base, GLOBAL_ARGS))
    assert any("pip wheel" in run for run in BY_NAME["builder"].all("RUN"))
    install = " ".join(RUNTIME.all("RUN"))
    # The runtime installs the builder's wheels only: no compiler, no index, no pip cache in the layer.
    assert "--no-index" in install and "--find-links=/wheels" in install and "--no-cache-dir" in install
    assert "from=builder" in install


def test_runtime_runs_as_a_numeric_non_root_user_created_in_the_image() -> None:
    users = RUNTIME.all("USER")
    assert users == ["10001:10001"], "exactly one USER, numeric (runAsNonRoot needs a uid)"
    last_user_index = max(i for i, (keyword, _) in enumerate(RUNTIME.instructions) if keyword == "USER")
    assert all(keyword in {"CMD", "ENTRYPOINT", "LABEL", "EXPOSE"}
               for keyword, _ in RUNTIME.instructions[last_user_index + 1:]), "nothing runs as root after USER"
    assert "--uid 10001" in " ".join(RUNTIME.all("RUN"))


def test_nothing_needs_writing_outside_tmp() -> None:
    env = _env(RUNTIME)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"].startswith("/tmp") and env["XDG_CACHE_HOME"].startswith("/tmp")
    assert RUNTIME.all("VOLUME") == []
    assert RUNTIME.all("WORKDIR") == ["/tmp"]


def test_the_command_selects_a_console_script_of_the_project() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert RUNTIME.all("ENTRYPOINT") == [], "no ENTRYPOINT: the container command picks the program"
    (cmd,) = RUNTIME.all("CMD")
    assert _exec_form(cmd)[0] in PROGRAMS
    for program in PROGRAMS:
        module_name, _, function = scripts[program].partition(":")
        spec = importlib.util.find_spec(module_name)
        assert spec is not None and spec.origin, f"{program}: module {module_name} does not exist"
        tree = ast.parse(Path(spec.origin).read_text())
        defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
        assert function in defined, f"{program}: {module_name} defines no {function}()"


def test_model_bundles_land_where_dispatchers_look_for_them() -> None:
    copies = [arguments for arguments in RUNTIME.all("COPY") if "--from=models" in arguments]
    assert copies == [f"--from=models {DEFAULT_MODELS_ROOT} {DEFAULT_MODELS_ROOT}"]
    assert _env(RUNTIME)["HUBSANTE_MODELS_DIR"] == DEFAULT_MODELS_ROOT
    (script,) = BY_NAME["models"].all("RUN")
    assert f'Path("{DEFAULT_MODELS_ROOT}") / tag' in script
    compile(script.split("\n", 2)[2], "models-stage", "exec")  # the embedded downloader is valid Python


def test_default_model_tags_cover_every_bundle_the_examples_use() -> None:
    arguments = BY_NAME["models"].all("ARG")
    tags = next(a.partition("=")[2].strip('"') for a in arguments if a.startswith("HUBSANTE_MODEL_TAGS="))
    used = {document["spec"]["models"]["version"]
            for document in yaml.safe_load_all((REPO / "examples" / "20-vhostversions.yaml").read_text())}
    assert used <= set(tags.split())


@pytest.mark.parametrize("path", [".venv/bin/python", ".git/config", ".cache/devenv/state.json",
                                  "tests/conftest.py", "deploy/argocd/argocd-cm.yaml", "client-bundle/tls.key"])
def test_build_context_excludes(path: str) -> None:
    assert not _included(path)


def test_build_context_holds_everything_the_builder_copies() -> None:
    for arguments in BY_NAME["builder"].all("COPY"):
        for source in arguments.split()[:-1]:
            assert _included(source.rstrip("/") + ("/x.py" if source.endswith("/") else "")), source


def _included(path: str) -> bool:
    """.dockerignore semantics for the patterns used there: the last matching pattern wins; a pattern matches
    a path or any of its parent directories."""
    included = True
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        parts = path.split("/")
        if any(re.fullmatch(regex, "/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            included = negate
    return included
