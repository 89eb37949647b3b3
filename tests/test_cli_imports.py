"""The import budget of the quick commands, on a store made by real recorded runs.

Each command runs in a fresh interpreter, as a user runs it, through the same
click entry point as the ``testmem`` script; what it imported is read from
``sys.modules`` as it ends. A listing loads neither the vector index nor the
embedding model nor the agents' machinery; ``--help`` loads no library code
at all. Timings belong in bench/cold_commands.py, not here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import click
import pytest

from testmem.agents.cli import cli
from testmem.examples.builds import BUILDS
from testmem.examples.scenario import Scenario

# One worker plays the builds (`make test` runs `-n 2 --dist loadgroup`).
pytestmark = pytest.mark.xdist_group("shop-scenario")

# Runs the click main as the console script does, then writes what was imported.
RUN_AND_LIST_MODULES = """
import json, sys
from testmem.agents.cli import cli
try:
    cli.main(sys.argv[2:], prog_name="testmem")
    code = 0
except SystemExit as exit:
    code = exit.code or 0
with open(sys.argv[1], "w") as out:
    json.dump(sorted(sys.modules), out)
sys.exit(code)
"""
MODEL_AND_INDEX = ("chromadb", "sentence_transformers", "torch", "onnxruntime", "transformers")
LIBRARIES = (*MODEL_AND_INDEX, "duckdb", "_duckdb", "deltalake", "pyarrow", "numpy", "httpx")
# All --help needs besides the command modules: settings names, errors, escaping, kept
# answers, the query limits' defaults (with the schema they are read against).
HELP_MODULES = {"config", "errors", "markup", "answers", "query", "events", "log", "store", "spool"}
LISTINGS = ["runs", "failures", "incidents", "decisions", "defects", "heals"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four releases of the shop API, each a real `pytest --memory` run, triaged,
    healed: a field renamed (held two runs: healed), a status changed, then a
    regression that recurs (escalated, a defect filed)."""
    picked = [replace(BUILDS[n], number=i) for i, n in enumerate((3, 4, 6, 7))]
    scenario = Scenario(tmp_path_factory.mktemp("imports"), picked)
    scenario.play()
    return scenario.store_dir


def imported(tmp_path: Path, *args: str) -> tuple[list[str], str]:
    """The modules a fresh ``testmem ARGS`` imported, and what it printed."""
    modules = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, str(modules), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(modules.read_text()), done.stdout


def top_level(modules: list[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def forget_answers(store: Path) -> None:
    """Drop the kept answers (`testmem.memory.answers`): the next one is computed."""
    shutil.rmtree(store / "answers", ignore_errors=True)


@pytest.mark.parametrize("listing", LISTINGS)
def test_a_listing_loads_neither_the_index_nor_the_model(store, tmp_path, listing):
    forget_answers(store)
    modules, output = imported(tmp_path, "--dir", str(store), listing, "--json")

    assert json.loads(output), f"`testmem {listing}` listed nothing: the budget saw no rows"
    assert top_level(modules).isdisjoint(MODEL_AND_INDEX)


@pytest.mark.parametrize("listing", [*LISTINGS, "similar OrderTotalMismatch"])
def test_a_listing_asked_again_while_the_log_is_still_loads_no_query_engine(
    store, tmp_path, listing
):
    forget_answers(store)
    _, first = imported(tmp_path, "--dir", str(store), *listing.split(), "--json")
    modules, again = imported(tmp_path, "--dir", str(store), *listing.split(), "--json")

    assert json.loads(again) == json.loads(first)
    assert top_level(modules).isdisjoint(LIBRARIES)


@pytest.mark.parametrize("listing", ["runs", "failures", "incidents"])
def test_a_memory_listing_loads_no_agents_code(store, tmp_path, listing):
    forget_answers(store)
    modules, _ = imported(tmp_path, "--dir", str(store), listing)

    agents = [m for m in modules if m.startswith("testmem.agents.")]
    assert agents == ["testmem.agents.cli"]


def test_help_loads_no_library_and_no_store_code_beyond_the_commands(tmp_path):
    modules, output = imported(tmp_path, "--help")

    assert "runs" in output
    assert top_level(modules).isdisjoint(LIBRARIES)
    beyond = {
        m.removeprefix("testmem.memory.")
        for m in modules
        if m.startswith("testmem.memory.") and not m.startswith("testmem.memory.cli")
    }
    assert beyond <= HELP_MODULES
    assert [m for m in modules if m.startswith("testmem.agents.")] == [
        m for m in modules if m.startswith("testmem.agents.cli")
    ]


def test_help_lists_every_command_with_its_one_line_help(tmp_path):
    _, output = imported(tmp_path, "--help")

    context = click.Context(cli)
    for name in cli.list_commands(context):
        command = cli.get_command(context, name)
        assert command is not None, f"{name} is listed but its module does not define it"
        assert f"  {name} " in output
        assert command.get_short_help_str(limit=30).removesuffix("...")[:20] in output


def test_every_command_module_defines_exactly_the_commands_it_is_listed_for():
    context = click.Context(cli)
    for name in cli.list_commands(context):
        cli.get_command(context, name)

    assert set(cli.commands) == set(cli.modules)
    for name, module in cli.modules.items():
        assert cli.commands[name].callback.__module__ == module  # type: ignore[union-attr]


def test_the_cli_copies_of_library_constants_agree():
    from testmem.memory.cli import incidents, report
    from testmem.memory.incidents import LABELS
    from testmem.memory.report.model import ENV_TZ

    assert report.ENV_TZ == ENV_TZ
    assert set(incidents._LABELS) == set(LABELS)
