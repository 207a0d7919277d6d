"""Where the local development environment keeps things.

Built binaries and downloaded tools live in a per-user cache *outside* the clone (CI runs in a fresh clone
of the same machine kind, and a Kubernetes build is too slow to repeat), keyed by the pinned versions.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_root() -> Path:
    explicit = os.environ.get("HUB_OPERATOR_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hub-operator"


def state_root() -> Path:
    """Runtime state of long-lived local components (the demo's broker and control plane).

    ``HUB_DEVENV_STATE_DIR`` moves it, so that a test can run the demo without touching a demo of the user's.
    """
    explicit = os.environ.get("HUB_DEVENV_STATE_DIR")
    return Path(explicit) if explicit else REPO_ROOT / ".cache" / "devenv"


def models_root() -> Path:
    """The message-model bundles (``<root>/<model-version>/``), shared beside the clone, never copied in."""
    candidates = []
    explicit = os.environ.get("HUBSANTE_MODELS_DIR")
    if explicit:
        candidates.append(Path(explicit))
    candidates += [REPO_ROOT.parent / "shared" / "hubsante-models", Path("/work/shared/hubsante-models")]
    for candidate in candidates:
        if (candidate / "README.md").exists() or any(candidate.glob("*/json-schema")):
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"Hub Santé model bundles not found (searched {searched}); set HUBSANTE_MODELS_DIR to the folder "
        "that holds <version>/json-schema, <version>/xsd and <version>/sample"
    )


def model_bundle(version: str) -> Path:
    path = models_root() / version
    if not path.is_dir():
        raise FileNotFoundError(f"model bundle {version!r} not found under {models_root()}")
    return path
