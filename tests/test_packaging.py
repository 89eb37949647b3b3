"""testmem installs beside other tools: its import packages live under
`testmem.`, so neither its `agents` (the OpenAI Agents SDK also imports as
`agents`) nor its `examples` take a top-level name in site-packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_only_the_testmem_package(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("testmem-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"testmem"}
    names = zipfile.ZipFile(wheel).namelist()
    assert "testmem/agents/triage.py" in names and "testmem/memory/plugin.py" in names


def test_the_openai_agents_sdk_and_testmem_import_side_by_side(tmp_path: Path) -> None:
    # -I and a neutral directory: nothing of this checkout is on sys.path but
    # what the venv installed (the SDK, and testmem itself).
    probe = (
        "import agents, testmem.agents.triage, testmem.memory.plugin;"
        "print(agents.Agent.__module__, testmem.agents.triage.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["agents.agent", "testmem.agents.triage"]
