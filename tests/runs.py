"""Real recorded runs, for tests that need a store made the way a user makes one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def record(root: Path, url: str, label: str) -> None:
    """One real `pytest --memory` run of the suite in ``root/suite`` into
    ``root/store``, labelled ``label`` (triage at its end, as by default)."""
    subprocess.run(
        [sys.executable, "-m", "pytest", "suite", "-q", "-p", "no:randomly", "--memory",
         "--memory-dir", str(root / "store"), "--api-base-url", url, "--memory-build", label],
        cwd=root, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
