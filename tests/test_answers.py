"""Kept answers (`testmem.memory.answers`): a listing asked again while the log
is still is answered as it was computed; any commit, or a change to what else
it reads, makes the next answer fresh."""

from __future__ import annotations

import json
import shutil
import warnings
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from testmem.agents.cli import cli
from testmem.memory.answers import answer
from testmem.memory.errors import DamagedFileWarning
from testmem.memory.events import Fact
from testmem.memory.query import Rows
from testmem.memory.store import Store

SUITE = """
def test_passes():
    assert True

def test_fails():
    assert {"status": 500}["status"] == 200, "HTTP 500 from /orders/17"
"""


def recorded(pytester: pytest.Pytester, *options: str) -> Path:
    """A real run; in a process of its own, so the model never loads in this one
    (a child would start at this process's peak memory: tests/test_bad_input.py)."""
    pytester.makepyfile(test_kept=SUITE)
    root = pytester.path / "store"
    pytester.runpytest_subprocess("--memory", *options, f"--memory-dir={root}")
    return root


@pytest.fixture
def store(pytester: pytest.Pytester) -> Path:
    """One real `pytest --memory` run with a failure, triaged (an incident, a decision)."""
    return recorded(pytester, "--memory-retries=0")


@pytest.fixture
def log(pytester: pytest.Pytester) -> Path:
    """A store whose log holds one real run, not triaged."""
    return recorded(pytester, "--no-memory-triage")


def listing(store: Path, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["--dir", str(store), *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class Computations:
    """A question's computation that counts how often it ran."""

    def __init__(self, rows: Rows) -> None:
        self.rows, self.count = rows, 0

    def __call__(self) -> Rows:
        self.count += 1
        return self.rows


@pytest.mark.parametrize("command", ["runs", "failures", "incidents", "decisions", "heals"])
def test_a_listing_asked_again_is_answered_as_it_was_computed(store, command):
    computed = listing(store, command)

    assert (store / "answers" / "answers.sqlite").exists()
    assert listing(store, command) == computed
    assert computed or command == "heals"


def test_a_new_run_is_in_the_next_listing(store, pytester):
    assert len(listing(store, "runs")) == 1

    pytester.runpytest_subprocess("--memory", "--memory-retries=0", f"--memory-dir={store}")

    assert len(listing(store, "runs")) == 2


def test_a_label_is_in_the_next_incidents_listing(store):
    [incident] = listing(store, "incidents")
    assert incident["label"] is None

    CliRunner().invoke(
        cli, ["--dir", str(store), "label", incident["incident_id"], "--as", "infra"]
    )

    assert [i["label"] for i in listing(store, "incidents")] == ["infra"]


def test_a_change_beside_the_log_makes_the_next_answer_fresh(log, tmp_path):
    beside = tmp_path / "outbox"
    beside.mkdir()
    question = Computations(Rows(["n"], [(1,)]))
    ask = lambda: answer(Store.open(log), "q", {}, question, inputs=[beside])  # noqa: E731

    ask(), ask()
    assert question.count == 1
    (beside / "entry.json").write_text("{}")
    ask()
    assert question.count == 2


def test_kept_values_come_back_with_their_types(log):
    paris = timezone(timedelta(hours=1))
    row = (
        datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 13, 30, tzinfo=paris),
        date(2026, 3, 1),
        ("a", 1),
        [1.5, None, True, [2]],
        {"$datetime": "not a time", "nested": {"$tuple": [1]}},
        "🦆 \x00 é",
        float("inf"),
    )
    question = Computations(Rows(list("abcdefgh"), [row]))

    answer(Store.open(log), "types", {}, question)
    kept = answer(Store.open(log), "types", {}, question)

    assert question.count == 1
    assert kept.rows == [row]
    assert [type(v) for v in kept.rows[0]] == [type(v) for v in row]
    assert kept.rows[0][1].utcoffset() == timedelta(hours=1)


def test_a_value_json_cannot_say_exactly_is_not_kept(log):
    question = Computations(Rows(["amount"], [(Decimal("1.10"),)]))

    first = answer(Store.open(log), "decimal", {}, question)
    answer(Store.open(log), "decimal", {}, question)

    assert question.count == 2
    assert first.rows == [(Decimal("1.10"),)]


def test_an_answer_computed_while_a_file_was_skipped_is_not_kept(log):
    def skipping() -> Rows:
        warnings.warn("skipped damaged file x.parquet", DamagedFileWarning, stacklevel=1)
        return Rows(["n"], [(0,)])

    for _ in range(2):
        with pytest.warns(DamagedFileWarning, match="skipped damaged file"):
            answer(Store.open(log), "damaged", {}, skipping)


def test_an_answer_computed_while_a_commit_landed_is_not_kept(log):
    opened = Store.open(log)
    question = Computations(Rows(["n"], [(0,)]))

    def racing() -> Rows:
        opened.events.append([Fact.of("IncidentLabelled", incident_id="INC-x", label="infra")])
        return question()

    answer(opened, "race", {}, racing)
    answer(opened, "race", {}, question)

    assert question.count == 2


def test_different_arguments_are_different_answers(store, pytester):
    pytester.runpytest_subprocess("--memory", "--memory-retries=0", f"--memory-dir={store}")

    assert len(listing(store, "runs", "-n", "1")) == 1
    assert len(listing(store, "runs", "-n", "5")) == 2


def test_a_log_begun_again_is_not_answered_from_the_one_before(store, pytester):
    [before] = listing(store, "runs")
    shutil.rmtree(store / "events")

    pytester.runpytest_subprocess("--memory", "--memory-retries=0", f"--memory-dir={store}")

    [after] = listing(store, "runs")
    assert after["run_id"] != before["run_id"]
