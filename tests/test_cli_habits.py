"""CLI habits: --format/--json/--wide before or after the command name, node ids
never cut off a terminal, CSV as Python's csv module writes it."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from testmem.agents.cli import cli

LONG_ID = "a-parameter-id-long-enough-to-be-cut-in-any-table-" + "x" * 40
SUITE = f"""
import pytest

@pytest.mark.parametrize("value", [1], ids=["{LONG_ID}"])
def test_long(value):
    assert value == 2, 'a "quoted", comma-separated\\nmessage on two lines'
"""
NODEID = f"test_habits.py::test_long[{LONG_ID}]"


@pytest.fixture
def store(pytester: pytest.Pytester) -> Path:
    pytester.makepyfile(test_habits=SUITE)
    root = pytester.path / "store"
    pytester.runpytest(
        "--memory", "--memory-retries=0", "--no-memory-triage", f"--memory-dir={root}"
    )
    return root


def cli_out(store: Path, *args: str) -> str:
    """What ``testmem ARGS`` writes to stdout, byte for byte (line ends kept)."""
    result = CliRunner().invoke(cli, ["--dir", str(store), *args])
    assert result.exit_code == 0, result.output
    return result.stdout_bytes.decode()


@pytest.mark.parametrize("option", [["--json"], ["--format", "json"], ["--format", "csv"]])
def test_output_options_work_before_and_after_the_command(store, option):
    assert cli_out(store, *option, "failures") == cli_out(store, "failures", *option)


def test_json_before_a_text_or_json_command(store):
    assert json.loads(cli_out(store, "--json", "stats"))["events"] > 0


def test_a_table_off_a_terminal_keeps_node_ids_whole(store):
    output = cli_out(store, "failures")

    assert NODEID in output
    assert "…" not in output


def on_a_terminal(store: Path, *args: str) -> str:
    """`testmem ARGS` with its output on a pseudo-terminal, as a user sees it."""
    leader, follower = pty.openpty()
    command = [
        sys.executable,
        "-c",
        "from testmem.agents.cli import main; main()",
        "--dir",
        str(store),
    ]
    env = {**os.environ, "COLUMNS": "300"}
    with subprocess.Popen([*command, *args], stdout=follower, stderr=follower, env=env) as child:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    os.close(leader)
    assert child.returncode == 0
    return b"".join(chunks).decode()


def test_a_table_on_a_terminal_cuts_long_cells_unless_wide(store):
    assert NODEID not in on_a_terminal(store, "failures")
    assert NODEID in on_a_terminal(store, "failures", "--wide")
    assert NODEID in on_a_terminal(store, "--wide", "failures")


def test_csv_is_what_pythons_csv_module_writes(store):
    sql = "SELECT nodeid, message, duration_s, markers FROM results JOIN failures USING (nodeid)"
    records = json.loads(cli_out(store, "query", sql, "--json"))
    text = cli_out(store, "--format", "csv", "query", sql)

    [header, *rows] = list(csv.reader(io.StringIO(text, newline="")))

    assert header == list(records[0])
    [row] = rows
    assert row[0] == NODEID
    assert row[1] == records[0]["message"]  # whole: quotes, commas and line breaks kept
    assert '"quoted", comma-separated\n  message' in row[1]
    assert float(row[2]) == records[0]["duration_s"]  # every digit
    assert json.loads(row[3]) == records[0]["markers"]
    expected = io.StringIO()
    csv.writer(expected).writerows([header, *rows])
    assert text == expected.getvalue()


def test_json_keeps_control_characters_as_escapes_a_terminal_cannot_act_on(pytester):
    message = "red \\x9b31m \\x9d8;;http://evil\\x9c \\u202e end"
    pytester.makepyfile(test_c1=f"def test_c1():\n    assert 0, '{message}'\n")
    root = pytester.path / "store"
    flags = ["--memory", "--memory-retries=0", "--no-memory-triage"]
    pytester.runpytest(*flags, f"--memory-dir={root}")

    raw = cli_out(root, "failures", "--json")

    assert not any("\x7f" <= ch <= "\x9f" or ch == "\u202e" for ch in raw)
    [record] = json.loads(raw)
    assert "red \x9b31m \x9d8;;http://evil\x9c \u202e end" in record["message"]
