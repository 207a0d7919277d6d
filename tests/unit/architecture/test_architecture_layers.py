"""The layering of the code base (see .importlinter): the data plane stands alone, builders stay pure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hub_devenv.paths import REPO_ROOT


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout
