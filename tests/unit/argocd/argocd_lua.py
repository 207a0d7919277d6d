"""Run Argo CD health scripts the way Argo CD runs ConfigMap scripts: Lua 5.1 (gopher-lua is 5.1), with only
the base and table libraries (Argo CD skips the other standard libraries for scripts from argocd-cm), the
object as the global ``obj`` with JSON nulls dropped, and the returned table checked for a valid status."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lupa import lua51

REPO = Path(__file__).resolve().parents[3]
ARGOCD_DIR = REPO / "deploy" / "argocd"
SOURCES_DIR = ARGOCD_DIR / "health"
CUSTOMIZATIONS_DIR = ARGOCD_DIR / "resource_customizations" / "hubsante.io"

#: What gitops-engine accepts; anything else becomes Unknown "Lua returned an invalid health status".
HEALTH_STATUSES = frozenset({"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"})
#: Standard libraries Argo CD does not open for argocd-cm scripts (``os`` is replaced by a safe subset we
#: do not offer either: the scripts must not depend on the clock).
_ABSENT_LIBRARIES = ("string", "math", "io", "os", "debug", "coroutine")


class LuaHealthError(AssertionError):
    """The script failed, returned no table, or returned an invalid status."""


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, Mapping):
        table = runtime.table()
        for key, item in value.items():
            if item is not None:  # JSON null -> nil: the key is absent, as in gopher-lua
                table[key] = _to_lua(runtime, item)
        return table
    if isinstance(value, list):
        return runtime.table(*(_to_lua(runtime, item) for item in value))
    return value


def run_health(script: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """``{"status": ..., "message": ...}`` as Argo CD would read it from ``script`` applied to ``obj``."""
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    lua_globals = runtime.globals()
    for library in _ABSENT_LIBRARIES:
        lua_globals[library] = None
    # Without the string library, gopher-lua strings have no methods either (no ("x"):find()).
    runtime.execute("getmetatable('').__index = nil")
    lua_globals.obj = _to_lua(runtime, obj)
    try:
        result = runtime.execute(script)
    except Exception as error:  # lupa.LuaError and friends: report the Lua message
        raise LuaHealthError(f"health script failed: {error}") from None
    if result is None or lua51.lua_type(result) != "table":
        raise LuaHealthError(f"health script returned {result!r}, not a table")
    health = {str(key): value for key, value in result.items()}
    if health.get("status") not in HEALTH_STATUSES:
        raise LuaHealthError(f"invalid health status {health.get('status')!r}")
    if not isinstance(health.get("message", ""), str):
        raise LuaHealthError(f"message must be a string, got {health.get('message')!r}")
    return {"status": health["status"], "message": health.get("message", "")}


@dataclass(frozen=True)
class HealthCase:
    """One entry of a kind's ``health_test.yaml`` (Argo CD's own test format)."""

    kind: str
    input_path: Path
    status: str
    message: str

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.input_path.stem}"

    def object(self) -> dict[str, Any]:
        return yaml.safe_load(self.input_path.read_text())


def kinds() -> list[str]:
    return sorted(path.name for path in CUSTOMIZATIONS_DIR.iterdir() if path.is_dir())


def health_script(kind: str) -> str:
    return (CUSTOMIZATIONS_DIR / kind / "health.lua").read_text()


def health_cases(kind: str | None = None) -> Iterator[HealthCase]:
    for name in [kind] if kind else kinds():
        folder = CUSTOMIZATIONS_DIR / name
        for test in yaml.safe_load((folder / "health_test.yaml").read_text())["tests"]:
            yield HealthCase(name, folder / test["inputPath"], test["healthStatus"]["status"],
                             test["healthStatus"].get("message", ""))


_LIST = re.compile(r"(?:COMMON_FAILURE_REASONS\s*=|failureReasons\s*=)\s*\{(?P<items>[^}]*)\}")


def failure_reasons(kind: str) -> tuple[str, ...]:
    """The Ready=False reasons that make ``kind`` Degraded: the shared list plus the kind's own."""
    sources = (SOURCES_DIR / "common.lua").read_text() + (SOURCES_DIR / f"{kind}.lua").read_text()
    return tuple(name for match in _LIST.finditer(sources) for name in re.findall(r'"([A-Za-z0-9]+)"', match["items"]))
