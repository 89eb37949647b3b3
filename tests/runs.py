"""Real recorded runs, for tests that need a store made the way a user makes one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def record(root: Path, url: str | None, label: str, env: dict[str, str] | None = None) -> None:
    """One real `pytest --memory` run of the suite in ``root/suite`` into
    ``root/store``, labelled ``label`` (triage at its end, as by default);
    ``url`` None for a suite that serves its app in-process."""
    command = [sys.executable, "-m", "pytest", "suite", "-q", "-p", "no:randomly", "--memory",
               "--memory-dir", str(root / "store"), "--memory-build", label]  # fmt: skip
    command += ["--api-base-url", url] if url else []
    subprocess.run(
        command, cwd=root, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
