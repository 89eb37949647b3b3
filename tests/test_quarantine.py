"""Quarantine (memory/quarantine.py): a quarantined test runs and is recorded,
but its failure does not fail the session; quarantines lapse by themselves."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from click.testing import CliRunner

from testmem.agents.cli import cli
from testmem.memory.events import Fact
from testmem.memory.quarantine import QUARANTINED, quarantine, rebuild
from testmem.memory.query import History
from testmem.memory.store import Store

MEMORY = ("--memory", "--memory-retries=0", "--no-memory-triage", "-p", "no:randomly")
SUITE = """
def test_known_bug():
    assert 1 == 2, "PAY-12 strikes again"

def test_fine():
    pass
"""
NODEID = "test_suite.py::test_known_bug"


def today() -> date:
    """Today, read when a test needs it (a run may cross midnight)."""
    return datetime.now(UTC).date()


@pytest.fixture
def store(pytester: pytest.Pytester) -> Store:
    pytester.makepyfile(test_suite=SUITE)
    return Store.open(pytester.path / "store", must_exist=False)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*MEMORY, f"--memory-dir={pytester.path / 'store'}", *args)


def quarantined_long_ago(store: Store, nodeid: str, until: date) -> None:
    """A quarantine set weeks ago, as the log would hold it."""
    reason = "set long ago"
    store.events.append([Fact.of(QUARANTINED, nodeid=nodeid, reason=reason, until=str(until))])
    rebuild(store)


def test_a_quarantined_failure_does_not_fail_the_session(pytester, store):
    quarantine(store, NODEID, "PAY-12: the sandbox declines cards", today() + timedelta(days=3))

    result = run(pytester)

    assert result.ret == 0
    result.assert_outcomes(passed=1, failed=1)
    until = today() + timedelta(days=3)
    reason = "PAY-12: the sandbox declines cards"
    result.stdout.fnmatch_lines([f"QUARANTINED {NODEID} - {reason} (until {until})"])


def test_a_quarantined_test_is_still_recorded_as_failed(pytester, store):
    quarantine(store, NODEID, "PAY-12")

    run(pytester)

    history = History(store)
    outcome = history.sql("SELECT outcome FROM results WHERE nodeid = ?", [NODEID]).rows
    assert outcome == [("failed",)]
    assert history.sql("SELECT exit_status FROM runs").rows == [(0,)]


def test_an_expired_quarantine_fails_the_session(pytester, store):
    quarantined_long_ago(store, NODEID, until=today() - timedelta(days=1))

    result = run(pytester)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "QUARANTINED" not in result.stdout.str()


def test_a_quarantine_holds_through_its_last_day(pytester, store):
    quarantined_long_ago(store, NODEID, until=today())

    assert run(pytester).ret == 0


def test_another_failure_still_fails_the_session(pytester, store):
    quarantine(store, NODEID, "PAY-12")
    pytester.makepyfile(test_other="def test_new_bug(): assert False")

    assert run(pytester).ret == pytest.ExitCode.TESTS_FAILED


def test_reading_quarantines_at_session_start_loads_no_store_library(pytester, store):
    quarantine(store, NODEID, "PAY-12")
    pytester.makepyfile(
        test_imports="""
import sys

def test_nothing_heavy_loaded():
    assert not {"duckdb", "deltalake", "pyarrow"} & set(sys.modules)
"""
    )

    result = pytester.runpytest_subprocess(*MEMORY, f"--memory-dir={store.root}")

    assert result.ret == 0
    result.assert_outcomes(passed=2, failed=1)


def cli_in(store: Store, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--dir", str(store.root), *args])
    return result.exit_code, result.output


def test_the_cli_quarantines_lists_and_lifts(tmp_path):
    store = Store(tmp_path / "store")
    until = (today() + timedelta(days=7)).isoformat()

    code, said = cli_in(store, "quarantine", NODEID, "--reason", "PAY-12 | <b>", "--until", until)
    assert (code, said) == (0, f"quarantined {NODEID} (until {until})\n")
    [listed] = json.loads(cli_in(store, "quarantine", "--list", "--json")[1])
    assert (listed["nodeid"], listed["reason"], listed["until"]) == (NODEID, "PAY-12 | <b>", until)

    assert cli_in(store, "unquarantine", NODEID)[0] == 0
    assert json.loads(cli_in(store, "quarantine", "--list", "--json")[1]) == []
    assert History(store).sql("SELECT count(*) FROM facts WHERE nodeid = ?", [NODEID]).rows == [
        (2,)
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["quarantine", NODEID], "needs a reason"),
        (["quarantine", NODEID, "--reason", "x", "--until", "2001-01-01"], "in the past"),
        (["quarantine"], "give a NODEID to quarantine, or --list"),
        (["quarantine", NODEID, "--list"], "give a NODEID to quarantine, or --list"),
        (["unquarantine", NODEID], "is not quarantined"),
        (["quarantine", NODEID, "--reason", "x", "--until", "soon"], "Invalid value"),
    ],
)
def test_cli_mistakes_are_one_line_and_exit_2(tmp_path, args, message):
    store = Store(tmp_path / "store")
    store.events.append([Fact.of("Nothing")])

    code, said = cli_in(store, *args)

    assert code == 2
    assert message in said
    assert "Traceback" not in said


def test_the_flaky_policy_quarantines_a_test_that_flips(pytester, store):
    pytester.makepyfile(
        test_suite="""
import pathlib

def test_known_bug():
    assert not pathlib.Path("broken").exists()
"""
    )
    pytester.makeini("[pytest]\nmemory_quarantine_flaky = true\nmemory_quarantine_days = 5\n")
    run(pytester)
    (pytester.path / "broken").touch()
    run(pytester)
    (pytester.path / "broken").unlink()
    run(pytester)

    [listed] = json.loads(cli_in(store, "quarantine", "--list", "--json")[1])

    assert listed["nodeid"] == NODEID
    assert listed["by"] == "flaky policy"
    assert listed["until"] == str(today() + timedelta(days=5))
    assert "flip rate" in listed["reason"]
