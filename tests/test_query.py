"""The DuckDB views and the library questions asked of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from testmem.memory.errors import NotFoundError, QueryError
from testmem.memory.events import (
    Fact,
    FailureObserved,
    HttpExchanged,
    RunFinished,
    RunStarted,
    TestFinished,
    arrow_schema,
    to_row,
    uuid7,
)
from testmem.memory.log import PARTITION_BY, EventLog
from testmem.memory.query import History
from testmem.memory.store import Store

# Recording only: the agents' in-run retry and post-run triage are specified elsewhere.
MEMORY = ("--memory", "--memory-retries=0", "--no-memory-triage")

FLIPPING_SUITE = """
from pathlib import Path

def test_flips():
    assert Path(__file__).with_name("outcome.txt").read_text() == "pass"

def test_stable():
    pass

def test_always_broken():
    assert False
"""


def test_flip_rate_of_a_test_that_flips_across_real_runs(pytester, store_dir):
    pytester.makepyfile(test_flaky=FLIPPING_SUITE)
    for outcome in ("pass", "fail", "pass", "pass", "fail"):
        pytester.path.joinpath("outcome.txt").write_text(outcome)
        pytester.runpytest(*MEMORY, f"--memory-dir={store_dir}", "-p", "no:randomly")
    flaky = History(Store.open(store_dir)).flaky(window=30, min_runs=3).dicts()
    assert [(row["nodeid"], row["runs"], row["flip_rate"]) for row in flaky] == [
        ("test_flaky.py::test_flips", 5, 0.75)  # pass→fail, fail→pass, pass→fail: 3 of 4
    ]
    assert flaky[0]["failed_runs"] == 2


def test_records_can_skip_the_tests_that_only_ever_passed(pytester, store_dir):
    """What the retry advisor reads: the same records, minus those that show
    nothing but a run count (skips and xfails do not count as runs)."""
    pytester.makepyfile(test_flaky=FLIPPING_SUITE)
    pytester.makepyfile(test_other="import pytest\n\n@pytest.mark.skip\ndef test_skip(): pass\n")
    for outcome in ("pass", "pass", "fail"):
        pytester.path.joinpath("outcome.txt").write_text(outcome)
        pytester.runpytest(*MEMORY, f"--memory-dir={store_dir}", "-p", "no:randomly")
    history = History(Store.open(store_dir))
    every = {row["nodeid"]: row for row in history.test_records().dicts()}
    some = {row["nodeid"]: row for row in history.test_records(skip_always_passed=True).dicts()}
    assert sorted(every) == [
        f"test_flaky.py::test_{name}" for name in ("always_broken", "flips", "stable")
    ]
    assert some == {nodeid: every[nodeid] for nodeid in every if not nodeid.endswith("stable")}


def test_flaky_looks_only_at_the_window_of_recent_runs(store_dir):
    outcomes = ["failed", "passed", "passed", "passed"]  # the flip is 3 runs back
    _results(store_dir, "tests/test_a.py::test_a", [(o, 1) for o in outcomes])
    history = History(Store.open(store_dir))
    assert history.flaky(window=4, min_runs=3).rows != []
    assert history.flaky(window=3, min_runs=3).rows == []


def test_retry_pass_rate_counts_runs_that_passed_only_on_a_later_attempt(store_dir):
    runs = [("failed", 1), ("passed", 2), ("passed", 1), ("passed", 1)]
    _results(store_dir, "tests/test_a.py::test_a", runs, same_run_pairs=True)
    row = History(Store.open(store_dir)).flaky(min_runs=3).dicts()[0]
    assert row["runs"] == 3 and row["retry_pass_rate"] == round(1 / 3, 3)
    assert row["flip_rate"] == 0


def _results(
    root: Path,
    nodeid: str,
    outcomes: list[tuple[str, int]],
    same_run_pairs: bool = False,
) -> None:
    """Results one per run (or, with ``same_run_pairs``, attempts 1 and 2 in one run)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events = []
    run = 0
    for i, (outcome, attempt) in enumerate(outcomes):
        if not (same_run_pairs and attempt > 1):
            run += 1
        events.append(
            TestFinished(
                run_id=f"run-{run}",
                nodeid=nodeid,
                outcome=outcome,
                attempt=attempt,
                occurred_at=start + timedelta(minutes=i),
            )
        )
    EventLog(root / "events").append(events)


def _run(run_id: str, at: datetime, **finished: int) -> list:
    return [
        RunStarted(run_id=run_id, occurred_at=at, build=f"b-{run_id}"),
        RunFinished(run_id=run_id, occurred_at=at + timedelta(seconds=5), **finished),
    ]


@pytest.fixture
def two_runs(store_dir: Path) -> History:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    EventLog(store_dir / "events").append(
        [
            *_run("aaaa-1111", t0, passed=2, failed=1, exit_status=1),
            *_run("aaaa-2222", t0 + timedelta(hours=1), passed=3),
            TestFinished(run_id="aaaa-1111", nodeid="t::a", outcome="failed", occurred_at=t0),
            TestFinished(run_id="aaaa-2222", nodeid="t::a", occurred_at=t0 + timedelta(hours=1)),
        ]
    )
    return History(Store.open(store_dir))


def test_runs_are_listed_newest_first_with_their_counts(two_runs):
    runs = two_runs.runs().dicts()
    assert [(r["run_id"], r["tests"], r["exit_status"]) for r in runs] == [
        ("aaaa-2222", 3, 0),
        ("aaaa-1111", 3, 1),
    ]


def test_a_tests_history_is_newest_first_with_the_build(two_runs):
    rows = two_runs.test_history("t::a").dicts()
    assert [(r["build"], r["outcome"]) for r in rows] == [
        ("b-aaaa-2222", "passed"),
        ("b-aaaa-1111", "failed"),
    ]


def test_an_unknown_test_is_not_found(two_runs):
    with pytest.raises(NotFoundError, match="no results for test 't::zzz'"):
        two_runs.test_history("t::zzz")


def test_a_run_resolves_from_a_unique_prefix_or_latest(two_runs):
    assert two_runs.resolve_run("aaaa-1") == "aaaa-1111"
    assert two_runs.resolve_run(None) == two_runs.resolve_run("latest") == "aaaa-2222"


def test_an_ambiguous_or_unknown_run_is_refused(two_runs):
    with pytest.raises(NotFoundError, match="ambiguous"):
        two_runs.resolve_run("aaaa")
    with pytest.raises(NotFoundError, match="unknown run 'zz'"):
        two_runs.resolve_run("zz")


def test_a_run_summary_counts_its_exchanges(two_runs):
    summary = two_runs.run_summary("aaaa-1111")
    assert (summary["passed"], summary["failed"], summary["exchanges"]) == (2, 1, 0)


def test_an_empty_store_has_empty_views(tmp_path):
    store = Store(tmp_path)
    history = History(store)
    assert history.sql("SELECT count(*) FROM results").rows == [(0,)]
    with pytest.raises(NotFoundError, match="no runs recorded"):
        history.resolve_run(None)


def test_user_sql_is_read_only(two_runs):
    for sql in (
        "CREATE TABLE x AS SELECT 1",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "ATTACH '/tmp/x.db'",
        "INSTALL httpfs",
        "SELECT 1; DROP VIEW runs",
    ):
        with pytest.raises(QueryError, match="only SELECT"):
            two_runs.query(sql)
    with pytest.raises(QueryError):
        two_runs.query("SELECT * FROM read_csv('/etc/passwd')")
    assert two_runs.query("SELECT count(*) FROM runs").rows == [(2,)]


def test_a_library_query_error_is_a_query_error(two_runs):
    with pytest.raises(QueryError, match="no_such_table"):
        two_runs.sql("SELECT * FROM no_such_table")


# -- schema evolution -------------------------------------------------------------

NEWER_COLUMNS = ("worker", "attempt", "signature")


def _append_as_an_older_version(log: EventLog, events: list) -> None:
    """Write events the way a testmem without ``NEWER_COLUMNS`` did."""
    from deltalake import write_deltalake

    schema = arrow_schema()
    older = pa.schema([f for f in schema if f.name not in NEWER_COLUMNS])
    rows = [{k: v for k, v in to_row(e).items() if k not in NEWER_COLUMNS} for e in events]
    table = pa.Table.from_pylist(rows, schema=older)
    write_deltalake(str(log.path), table, mode="append", partition_by=PARTITION_BY)


def test_a_file_without_a_newer_column_reads_it_as_null(store_dir):
    log = EventLog(store_dir / "events")
    _append_as_an_older_version(log, [TestFinished(run_id="old", nodeid="t::a", worker="gw0")])
    rows = History(Store.open(store_dir)).sql("SELECT nodeid, worker, attempt FROM results").rows
    assert rows == [("t::a", None, None)]


def test_old_and_new_files_read_together_through_the_views(store_dir):
    log = EventLog(store_dir / "events")
    _append_as_an_older_version(log, [TestFinished(run_id="old", nodeid="t::a", worker="gw0")])
    log.append([TestFinished(run_id="new", nodeid="t::a", worker="gw1", attempt=2)])
    rows = (
        History(Store.open(store_dir))
        .sql("SELECT run_id, worker, attempt FROM results ORDER BY run_id")
        .rows
    )
    assert rows == [("new", "gw1", 2), ("old", None, None)]


def test_a_users_query_reads_old_and_new_files_together(store_dir):
    log = EventLog(store_dir / "events")
    _append_as_an_older_version(log, [TestFinished(run_id="old", nodeid="t::a", worker="gw0")])
    log.append([TestFinished(run_id="new", nodeid="t::a", worker="gw1", attempt=2)])
    history = History(Store.open(store_dir))
    rows = history.query("SELECT run_id, worker FROM results ORDER BY run_id").rows
    assert rows == [("new", "gw1"), ("old", None)]


def test_an_older_file_listed_first_hides_no_column_of_the_newer_ones(store_dir):
    """The log lists the newest file first; here an older testmem wrote last."""
    log = EventLog(store_dir / "events")
    log.append([TestFinished(run_id="new", nodeid="t::a", worker="gw1", attempt=2)])
    _commit_as_an_older_version(log, [TestFinished(run_id="old", nodeid="t::a", worker="gw0")])
    rows = (
        History(Store.open(store_dir))
        .sql("SELECT run_id, worker, attempt FROM results ORDER BY run_id")
        .rows
    )
    assert rows == [("new", "gw1", 2), ("old", None, None)]


def _commit_as_an_older_version(log: EventLog, events: list) -> None:
    """Commit a file without ``NEWER_COLUMNS`` to a log that has them."""
    import pyarrow.parquet as pq
    from deltalake import DeltaTable
    from deltalake.transaction import AddAction

    rows = [{k: v for k, v in to_row(e).items() if k not in NEWER_COLUMNS} for e in events]
    older = pa.schema([f for f in arrow_schema() if f.name not in (*NEWER_COLUMNS, "day")])
    day = rows[0]["day"]
    name = f"day={day}/older.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=older), log.path / name)
    add = AddAction(name, (log.path / name).stat().st_size, {"day": day}, 0, True, None)
    DeltaTable(str(log.path)).create_write_transaction(
        [add], mode="append", schema=arrow_schema(), partition_by=PARTITION_BY
    )


def test_failures_an_api_change_or_a_regression_explained_are_not_flaky(store_dir):
    outcomes = ["passed", "failed", "passed", "failed", "passed"]
    _results(store_dir, "tests/test_a.py::test_a", [(o, 1) for o in outcomes])
    history = History(Store.open(store_dir))
    assert [r["nodeid"] for r in history.flaky(min_runs=3).dicts()] == ["tests/test_a.py::test_a"]

    decided = [
        Fact.of("DecisionMade", f"run-{n}", nodeid="tests/test_a.py::test_a", category=category)
        for n, category in ((2, "regression"), (4, "outdated"))
    ]
    EventLog(store_dir / "events").append(decided)
    assert History(Store.open(store_dir)).flaky(min_runs=3).rows == []


def test_a_failure_is_explained_by_its_own_call_not_the_fixtures_login(store_dir):
    run = "run-1"
    login = _exchange(run, "setup", "POST", "/api/users/login", 200)
    missing = _exchange(run, "call", "GET", "/api/articles/a-slug", 404)
    other = _exchange(run, "call", "GET", "/api/tags", 200)
    ids = [x.exchange_id for x in (login, missing, other)]
    named = _failure(run, "call", "assert 404 == 200", ids)
    unnamed = _failure(run, "call", "KeyError: 'title'", ids)
    in_setup = _failure(run, "setup", "HTTPStatusError", ids)
    EventLog(store_dir / "events").append([login, missing, other, named, unnamed, in_setup])

    chosen = dict(
        (row[0], (row[1], row[2]))
        for row in History(Store.open(store_dir)).sql("SELECT * FROM explaining").rows
    )
    assert chosen[named.failure_id] == (missing.exchange_id, "named")
    assert chosen[unnamed.failure_id] == (missing.exchange_id, "error")
    assert chosen[in_setup.failure_id] == (login.exchange_id, "setup")


def _exchange(run_id: str, phase: str, method: str, path: str, status: int) -> HttpExchanged:
    return HttpExchanged(
        run_id=run_id, exchange_id=uuid7(), nodeid="t.py::t", phase=phase, method=method,
        url=f"http://testserver{path}", route=path, status=status,
    )  # fmt: skip


def _failure(run_id: str, phase: str, message: str, ids: list[str]) -> FailureObserved:
    return FailureObserved(
        run_id=run_id, failure_id=uuid7(), nodeid="t.py::t", phase=phase,
        exception_type=message.split(":")[0], message=message, exchange_ids=ids,
    )  # fmt: skip
