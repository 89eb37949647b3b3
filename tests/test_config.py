"""One configuration for the plugin and the CLI: command line, environment,
[tool.testmem], pytest ini, default (memory/config.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from testmem.agents.cli import cli
from testmem.memory.config import Settings
from testmem.memory.store import Store

MEMORY = ("--memory", "--memory-retries=0", "--no-memory-triage")

PYPROJECT = """
[tool.testmem]
dir = "from-toml"

[tool.pytest.ini_options]
memory_dir = "from-ini"
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("TESTMEM_DIR", raising=False)
    pytester.makepyfile("def test_ok(): pass")
    return pytester


def recorded_in(root: Path) -> bool:
    return Store(root).events.exists()


def test_the_command_line_beats_the_environment(project, monkeypatch):
    project.makefile(".toml", pyproject=PYPROJECT)
    monkeypatch.setenv("TESTMEM_DIR", str(project.path / "from-env"))
    project.runpytest(*MEMORY, "--memory-dir=from-cli").assert_outcomes(passed=1)
    assert recorded_in(project.path / "from-cli")
    assert not recorded_in(project.path / "from-env")


def test_the_environment_beats_tool_testmem(project, monkeypatch):
    project.makefile(".toml", pyproject=PYPROJECT)
    monkeypatch.setenv("TESTMEM_DIR", str(project.path / "from-env"))
    project.runpytest(*MEMORY).assert_outcomes(passed=1)
    assert recorded_in(project.path / "from-env")
    assert not recorded_in(project.path / "from-toml")


def test_tool_testmem_beats_the_pytest_ini(project):
    project.makefile(".toml", pyproject=PYPROJECT)
    project.runpytest(*MEMORY).assert_outcomes(passed=1)
    assert recorded_in(project.path / "from-toml")
    assert not recorded_in(project.path / "from-ini")


def test_the_pytest_ini_beats_the_default(project):
    project.makefile(".toml", pyproject=PYPROJECT.replace("[tool.testmem]", "[tool.other]"))
    project.runpytest(*MEMORY).assert_outcomes(passed=1)
    assert recorded_in(project.path / "from-ini")
    assert not recorded_in(project.path / "data")


@pytest.mark.parametrize(("toml", "triaged"), [("false", False), ("true", True)])
def test_a_boolean_in_tool_testmem_beats_the_pytest_ini(project, toml, triaged):
    project.makefile(
        ".toml",
        pyproject=f"[tool.testmem]\ntriage = {toml}\n"
        f"[tool.pytest.ini_options]\nmemory_triage = {'false' if triaged else 'true'}\n",
    )
    result = project.runpytest("--memory", "--memory-retries=0")
    assert ("testmem triage:" in result.stdout.str()) is triaged


def test_a_relative_dir_in_tool_testmem_is_relative_to_pyproject(project, monkeypatch):
    project.makefile(".toml", pyproject='[tool.testmem]\ndir = "store"\n')
    (project.path / "tests").mkdir()
    (project.path / "tests" / "test_here.py").write_text("def test_ok(): pass\n")
    monkeypatch.chdir(project.path / "tests")
    project.runpytest(*MEMORY, ".").assert_outcomes(passed=1)
    assert recorded_in(project.path / "store")


def test_the_cli_finds_the_store_tool_testmem_names(project, monkeypatch):
    project.makefile(".toml", pyproject='[tool.testmem]\ndir = "the-store"\n')
    project.runpytest(*MEMORY).assert_outcomes(passed=1)
    (project.path / "deep" / "down").mkdir(parents=True)
    monkeypatch.chdir(project.path / "deep" / "down")

    result = CliRunner().invoke(cli, ["runs", "--json"])

    assert result.exit_code == 0, result.output
    [run] = json.loads(result.output)
    assert run["passed"] == 1


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pytest.ini", "[pytest]\nmemory_dir = ini-store\n"),
        ("tox.ini", "[pytest]\nmemory_dir = ini-store\n"),
        ("setup.cfg", "[tool:pytest]\nmemory_dir = ini-store\n"),
        ("pyproject.toml", '[tool.pytest.ini_options]\nmemory_dir = "ini-store"\n'),
    ],
)
def test_the_cli_reads_memory_dir_from_every_pytest_ini_file(tmp_path, monkeypatch, name, text):
    monkeypatch.delenv("TESTMEM_DIR", raising=False)
    (tmp_path / name).write_text(text)
    (tmp_path / "sub").mkdir()

    found = Settings.discover(tmp_path / "sub").path("memory_dir", "data")

    assert found == tmp_path.resolve() / "ini-store"


def test_a_tox_ini_without_a_pytest_section_is_not_the_ini_file(tmp_path, monkeypatch):
    monkeypatch.delenv("TESTMEM_DIR", raising=False)
    (tmp_path / "setup.cfg").write_text("[tool:pytest]\nmemory_dir = right\n")
    (tmp_path / "tox.ini").write_text("[tox]\nenvlist = py311\n")

    assert Settings.discover(tmp_path).path("memory_dir", "data").name == "right"


def test_the_default_store_is_beside_the_config_file(tmp_path, monkeypatch):
    monkeypatch.delenv("TESTMEM_DIR", raising=False)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "tests").mkdir()

    assert Settings.discover(tmp_path / "tests").path("memory_dir", "data") == (
        tmp_path.resolve() / "data"
    )


def test_a_malformed_pyproject_is_one_clean_cli_error(tmp_path, monkeypatch):
    monkeypatch.delenv("TESTMEM_DIR", raising=False)
    (tmp_path / "pyproject.toml").write_text("[tool.testmem\n")
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(cli, ["runs"])

    assert result.exit_code == 2
    assert "pyproject.toml" in result.output
    assert "Traceback" not in result.output


def test_a_bad_boolean_names_where_it_came_from(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.testmem]\ntriage = "maybe"\n')

    with pytest.raises(Exception, match=r"tool\.testmem\] triage: expected true or false"):
        Settings.discover(tmp_path).flag("memory_triage", True, given=None)


def test_a_bad_boolean_in_tool_testmem_is_a_usage_error(project):
    project.makefile(".toml", pyproject='[tool.testmem]\ntriage = "maybe"\n')

    result = project.runpytest("--memory")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*[[]tool.testmem[]] triage: expected true or false*"])
