"""The ``testmem`` commands over the event log, on a store recorded by real runs."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from testmem.examples.shop_api import ShopServer
from testmem.memory.cli import cli
from testmem.memory.query import History
from testmem.memory.store import Store

# Recording only: the agents' in-run retry and post-run triage are specified elsewhere.
MEMORY = ("--memory", "--memory-retries=0", "--no-memory-triage")

SUITE = """
import os

def test_user(api_client):
    assert api_client.get("/users/1").json()["id"] == 1

def test_flips(api_client):
    assert api_client.get("/health").status_code == 200
    assert os.environ["FLIP"] == "pass"
"""
FLIPS = "test_cli_suite.py::test_flips"


@pytest.fixture(scope="module")
def store(tmp_path_factory, shop: ShopServer) -> Path:
    """Two recorded runs of a small suite; ``test_flips`` passes, then fails."""
    suite_dir = tmp_path_factory.mktemp("cli")
    (suite_dir / "test_cli_suite.py").write_text(SUITE)
    root = suite_dir / "store"
    for flip in ("pass", "fail"):
        subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider",
             *MEMORY, f"--memory-dir={root}", f"--api-base-url={shop.url}"],
            cwd=suite_dir, env={**os.environ, "FLIP": flip}, capture_output=True, timeout=120,
        )  # fmt: skip
        Store.open(root).events.settle()  # read after each run: one commit per run, for compact
    return root


def run_cli(store: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--dir", str(store), *args])


def as_json(result: Result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def as_csv(result: Result) -> list[dict[str, str]]:
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def latest_run(store: Path) -> str:
    return History(Store.open(store)).resolve_run(None)


def test_runs_lists_both_runs_newest_first(store):
    runs = as_json(run_cli(store, "runs", "--json"))
    assert [(r["passed"], r["failed"], r["exit_status"]) for r in runs] == [(1, 1, 1), (2, 0, 0)]
    assert runs[0]["run_id"] == latest_run(store)


def test_runs_as_csv_has_the_same_rows(store):
    rows = as_csv(run_cli(store, "runs", "--format", "csv"))
    assert [r["run_id"] for r in rows] == [
        r["run_id"] for r in as_json(run_cli(store, "runs", "--json"))
    ]
    assert rows[0]["failed"] == "1"


def test_runs_as_a_table_is_readable(store):
    lines = run_cli(store, "runs").stdout.splitlines()
    assert lines[0].split()[:2] == ["run_id", "started_at"]
    assert len(lines) == 4  # header, rule, two runs


def test_history_shows_a_tests_outcomes_newest_first(store):
    outcomes = [r["outcome"] for r in as_json(run_cli(store, "history", FLIPS, "--json"))]
    assert outcomes == ["failed", "passed"]
    assert [
        r["outcome"] for r in as_csv(run_cli(store, "history", FLIPS, "--format", "csv"))
    ] == outcomes


def test_failures_of_the_latest_run(store):
    failures = as_json(run_cli(store, "failures", "--json"))
    assert [(f["nodeid"], f["exception_type"], f["exchanges"]) for f in failures] == [
        (FLIPS, "AssertionError", 1)
    ]
    assert as_csv(run_cli(store, "failures", "--format", "csv"))[0]["nodeid"] == FLIPS


def test_failures_of_a_run_given_by_prefix(store):
    first = as_json(run_cli(store, "runs", "--json"))[-1]["run_id"]
    assert as_json(run_cli(store, "failures", "--run", first[:20], "--json")) == []


def test_flaky_finds_the_test_that_flipped(store):
    flaky = as_json(run_cli(store, "flaky", "--min-runs", "2", "--json"))
    assert [(r["nodeid"], r["flip_rate"]) for r in flaky] == [(FLIPS, 1.0)]
    assert (
        as_csv(run_cli(store, "flaky", "--min-runs", "2", "--format", "csv"))[0]["nodeid"] == FLIPS
    )


def test_query_answers_a_select(store):
    sql = "SELECT route, count(*) AS n FROM exchanges GROUP BY route ORDER BY route"
    assert as_json(run_cli(store, "query", sql, "--json")) == [
        {"route": "/health", "n": 2},
        {"route": "/users/{id}", "n": 2},
    ]
    assert as_csv(run_cli(store, "query", sql, "--format", "csv"))[1] == {
        "route": "/users/{id}",
        "n": "2",
    }


def test_stats_counts_the_events_by_type(store):
    stats = json.loads(run_cli(store, "stats", "--json").stdout)
    assert stats["events_by_type"] == {
        "FailureObserved": 1,
        "HttpExchanged": 4,
        "RunFinished": 2,
        "RunStarted": 2,
        "TestFinished": 4,
    }
    assert stats["events"] == 13
    assert as_csv(run_cli(store, "stats", "--format", "csv"))[0]["events"] == "13"


def test_compact_reports_what_it_merged(tmp_path, store):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(store), str(copy)], check=True)
    files = len(Store.open(copy).events.files())
    report = json.loads(run_cli(copy, "compact", "--json").stdout)
    assert files > 1
    assert (report["files_before"], report["files_after"], report["events"]) == (files, 1, 13)
    again = as_csv(run_cli(copy, "compact", "--format", "csv"))
    assert again == [
        {"files_before": "1", "files_after": "1", "files_removed": "0", "events": "13"}
    ]


# -- errors: one line on stderr, exit 2, no traceback -------------------------------


def assert_clean_error(result: Result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert result.stderr.startswith("testmem: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    for text in expected:
        assert text in result.stderr


def test_a_missing_store_is_a_clean_error(tmp_path):
    assert_clean_error(run_cli(tmp_path / "nothing", "runs"), "no testmem store at")


def test_an_unknown_run_is_a_clean_error(store):
    assert_clean_error(run_cli(store, "failures", "--run", "nope"), "unknown run 'nope'")


def test_an_unknown_test_is_a_clean_error(store):
    assert_clean_error(run_cli(store, "history", "tests/x.py::nope"), "no results for test")


def test_bad_sql_is_a_clean_error(store):
    assert_clean_error(run_cli(store, "query", "SELEC 1"), "syntax error")
    assert_clean_error(run_cli(store, "query", "SELECT * FROM nowhere"), "nowhere")


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT * FROM events) TO 'leak.csv'",
        "ATTACH 'other.db'",
        "INSTALL httpfs",
        "CREATE TABLE t AS SELECT 1",
        "SELECT * FROM read_csv('/etc/passwd')",
    ],
)
def test_sql_that_is_not_a_plain_select_is_refused(store, sql, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_clean_error(run_cli(store, "query", sql))
    assert list(tmp_path.iterdir()) == []


def test_the_installed_command_prints_one_line_without_a_traceback(tmp_path):
    command = Path(sys.executable).with_name("testmem")
    done = subprocess.run(
        [str(command), "--dir", str(tmp_path / "nothing"), "runs"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
