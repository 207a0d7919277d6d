"""The two consoles: results on stdout (pipeable, e.g. ``hubctl onboard ... > client.yaml``), progress and
errors on stderr.  Both resolve ``sys.stdout``/``sys.stderr`` when writing, so test runners can capture them."""

from __future__ import annotations

from rich.console import Console

stdout = Console(highlight=False, soft_wrap=False)
stderr = Console(stderr=True, highlight=False)
