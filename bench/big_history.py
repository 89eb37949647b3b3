"""A year of history of any size, written by DuckDB straight into Parquet files
partitioned by day as recorded, then made a Delta table in one commit
(`deltalake.convert_to_deltalake`): 100 M results in minutes, where
`bench.history` (numpy batches, one commit a week) needs hours.

The events have the log's whole schema (columns a kind of event does not
fill are null, which Parquet stores in a few bytes per row group); what the
weekly report reads is filled as the recorder and agents would: a suite of
5,000 tests run evenly over 365 days; 5 % of tests flaky, the others failing
once in 2,000 runs, a pass on retry for most flaky failures; a regression
breaking 8 tests for 3 days every 15 days; half the tests with one recorded
exchange a run (0.2 % answered 503), whose response gains a key half way;
every failure has its `FailureLinked` and `DecisionMade` facts.

    python -m bench.big_history bench/out/big-100m --results 100000000
"""

from __future__ import annotations

import argparse
import hashlib
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.history import BASE_KEYS, ROUTES
from testmem.memory.events import COLUMNS
from testmem.memory.query import _DUCK_TYPES

TESTS = 5_000
DAYS = 365
EPOCH = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
_DAY_US = 86_400_000_000


def _select(kind: str, values: dict[str, str], source: str) -> tuple[dict[str, str], str]:
    """One kind of event: its columns' SQL, and where its rows come from."""
    columns = {"type": f"'{kind}'", "schema_version": "1", "producer": "'bench/big_history'"}
    return columns | values, source


def _union(parts: list[tuple[dict[str, str], str]]) -> str:
    """Every kind with the columns any kind fills, typed (null where it has none).
    The files hold only these; the table declares the log's whole schema
    (`_declare_all`), and readers read a column no file holds as null."""
    used = {name for columns, _ in parts for name in columns}
    declared = [(name, t) for name, t in COLUMNS if name in used]
    return "\nUNION ALL\n".join(
        "SELECT "
        + ", ".join(f"({columns.get(n, 'NULL')})::{_DUCK_TYPES[t]} AS {n}" for n, t in declared)
        + f" FROM {source}"
        for columns, source in parts
    )


def _keys(extra: list[str]) -> str:
    return "{" + ", ".join(f'"{k}": 1' for k in BASE_KEYS + extra) + "}"


# Per run r (0..runs-1) of the day and test t: u a fraction from a hash, so
# the history is the same whatever the threads.
_PAIRS = f"""
    (SELECT r.run, r.started, t.test, t.nodeid, t.base_s, t.flaky_p, t.route,
            (hash(r.run, t.test) % 1000000) / 1e6 AS u,
            (hash(t.test, r.run, 1) % 1000000) / 1e6 AS v,
            (r.day % 15 < 3 AND (t.test * 7919 + (r.day // 15) * 104729) % {TESTS} < 8)
                AS broken,
            r.day
     FROM day_runs r, tests t)"""

_RESULTS = f"""
    (SELECT *, CASE WHEN broken THEN 'regression' WHEN u < flaky_p THEN 'flaky' END AS cause,
            started + to_microseconds(test * 50000) AS moment,
            'run-' || run AS run_id
     FROM {_PAIRS})"""


def _day_sql(day: int) -> str:
    grown = day > DAYS // 2
    body = _keys(["currency"] if grown else [])
    digest = f"'{hashlib.sha256(body.encode()).hexdigest()}'"
    results = _select(
        "TestFinished",
        {
            "event_id": "'t' || run || '-' || test",
            "occurred_at": "moment",
            "run_id": "run_id",
            "nodeid": "nodeid",
            "outcome": "CASE WHEN cause IS NOT NULL THEN 'failed' "
            "WHEN test % 200 = 199 THEN 'skipped' ELSE 'passed' END",
            "phase": "'call'",
            "duration_s": "round(base_s * (0.8 + 0.4 * v), 4)",
            "attempt": "1",
        },
        "results",
    )
    retries = _select(
        "TestFinished",
        {
            "event_id": "'r' || run || '-' || test",
            "occurred_at": "moment + INTERVAL 1 SECOND",
            "run_id": "run_id",
            "nodeid": "nodeid",
            "outcome": "'passed'",
            "phase": "'call'",
            "duration_s": "round(base_s, 4)",
            "attempt": "2",
        },
        "results WHERE cause = 'flaky' AND v < 0.8",
    )
    failure = {"run_id": "run_id", "nodeid": "nodeid", "failure_id": "'f' || run || '-' || test"}
    incident = (
        "CASE cause WHEN 'flaky' THEN 'inc-flaky-' || test ELSE 'inc-reg-' || (day // 15) END"
    )
    failures = _select(
        "FailureObserved",
        {
            **failure,
            "event_id": "'f' || run || '-' || test",
            "occurred_at": "moment",
            "phase": "'call'",
            "attempt": "1",
            "exception_type": "'AssertionError'",
            "message": "CASE cause WHEN 'flaky' THEN 'assert 200 == 503' "
            "ELSE 'assert 200 == 500: internal error' END",
        },
        "results WHERE cause IS NOT NULL",
    )
    linked = _select(
        "FailureLinked",
        {
            **failure,
            "event_id": "'l' || run || '-' || test",
            "occurred_at": "moment + INTERVAL 2 SECOND",
            "incident_id": incident,
            "signature": "'sig-' || " + incident,
            "detail": """'{"method": "signature", "score": 1.0}'""",
        },
        "results WHERE cause IS NOT NULL",
    )
    decided = _select(
        "DecisionMade",
        {
            **failure,
            "event_id": "'d' || run || '-' || test",
            "occurred_at": "moment + INTERVAL 3 SECOND",
            "incident_id": incident,
            "detail": """'{"category": "' || cause || '", "action": "retry"}'""",
        },
        "results WHERE cause IS NOT NULL",
    )
    exchanges = _select(
        "HttpExchanged",
        {
            "event_id": "'x' || run || '-' || test",
            "occurred_at": "moment",
            "run_id": "run_id",
            "nodeid": "nodeid",
            "phase": "'call'",
            "attempt": "1",
            "exchange_id": "'x' || run || '-' || test",
            "method": "'GET'",
            "url": "route",
            "route": "route",
            "status": "CASE WHEN u > 0.998 THEN 503 ELSE 200 END",
            "duration_s": "round(0.018 * (1 + route_n / 10) * (0.5 + v), 5)",
            "response_body": f"'{body}'",
            "response_body_size": str(len(body)),
            "response_body_sha256": digest,
            "response_body_encoding": "'utf-8'",
            "response_body_truncated": "false",
        },
        "(SELECT * FROM results JOIN routes USING (route)) x WHERE test % 2 = 0",
    )
    edges = [
        _select(
            kind,
            {
                "event_id": f"'{kind[3]}' || run",
                "occurred_at": "started + "
                + ("INTERVAL 0 SECOND" if kind == "RunStarted" else "INTERVAL 10 MINUTE"),
                "run_id": "'run-' || run",
                **extra,
            },
            "day_runs",
        )
        for kind, extra in (
            ("RunStarted", {"build": "'b' || run"}),
            ("RunFinished", {"exit_status": "1", "duration_s": "600.0"}),
        )
    ]
    return _union([results, retries, failures, linked, decided, exchanges, *edges])


def generate(root: Path, results: int) -> int:
    """Write about ``results`` results into a store at ``root``; returns how many."""
    import duckdb
    from deltalake import convert_to_deltalake

    events = root / "events"
    events.mkdir(parents=True)
    runs = max(1, round(results / TESTS))
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    db.execute("SET threads = 2")  # run it niced: the machine is shared
    _suite(db)
    step = DAYS * _DAY_US // runs
    start = int(EPOCH.timestamp() * 1_000_000)
    for day in range(DAYS):
        first, last = -(-day * _DAY_US // step), -(-(day + 1) * _DAY_US // step)
        if first >= min(last, runs):
            continue
        db.execute(
            f"""CREATE OR REPLACE TEMP TABLE day_runs AS
                SELECT i AS run, {day} AS day, make_timestamp({start} + i * {step})::TIMESTAMPTZ
                    AS started
                FROM range({first}, {min(last, runs)}) t(i)"""
        )
        db.execute(f"CREATE OR REPLACE TEMP TABLE results AS SELECT * FROM {_RESULTS}")
        folder = events / f"day={_day_name(day)}"
        folder.mkdir()
        db.execute(
            f"COPY ({_day_sql(day)}) TO '{folder / 'part-00000.zstd.parquet'}' "
            "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)"
        )
    # No statistics in the commit, as the recorder writes none but row counts
    # (and deltalake's dataset would read the null statistics of DuckDB's
    # string columns as "no such rows" and skip the files).
    convert_to_deltalake(
        str(events), partition_by=_day_schema(), partition_strategy="hive", collect_stats=False
    )
    _declare_all(events)
    return int(
        db.execute(
            f"SELECT count(*) FROM read_parquet('{events}/*/*.parquet') WHERE type = 'TestFinished'"
        ).fetchone()[0]  # type: ignore[index]
    )


def _declare_all(events: Path) -> None:
    """Give the table the log's whole schema: columns no file holds are added
    (as a later schema version adds them: old files read them as null)."""
    from deltalake import DeltaTable, Schema

    from testmem.memory.events import arrow_schema

    table = DeltaTable(str(events))
    present = {f.name for f in table.schema().fields}
    missing = [f for f in Schema.from_arrow(arrow_schema()).fields if f.name not in present]
    if missing:
        table.alter.add_columns(missing)


def _day_name(day: int) -> str:
    from datetime import timedelta

    return (EPOCH + timedelta(days=day)).date().isoformat()


def _day_schema() -> object:
    from deltalake import Field, Schema

    return Schema([Field("day", "string")])


def _suite(db: object) -> None:
    """The tests (ids, route, typical duration, chance to fail) and the routes."""
    routes = ", ".join(f"('{r}', {i})" for i, r in enumerate(ROUTES))
    db.execute(f"CREATE TEMP TABLE routes AS SELECT * FROM (VALUES {routes}) v(route, route_n)")  # type: ignore[attr-defined]
    db.execute(  # type: ignore[attr-defined]
        f"""CREATE TEMP TABLE tests AS
            SELECT test, route,
                   'tests/api/test_' || lpad((test // 100)::VARCHAR, 2, '0') || '_'
                       || split_part(route, '/', 2) || '.py::test_case_'
                       || lpad(test::VARCHAR, 5, '0') AS nodeid,
                   exp(-3.5 + 2 * ((hash(test, 'd') % 1000) / 1000 - 0.5))
                       * CASE WHEN test % 250 = 7 THEN 80 ELSE 1 END AS base_s,
                   CASE WHEN (hash(test, 'f') % 100) < 5
                        THEN 0.02 + 0.2 * (hash(test, 'p') % 1000) / 1000 ELSE 0.0005 END
                       AS flaky_p
            FROM (SELECT test, list_extract({ROUTES!r}, (test % {len(ROUTES)}) + 1) AS route
                  FROM range({TESTS}) t(test))"""
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--results", type=int, default=100_000_000)
    args = parser.parse_args()
    started = time.perf_counter()
    count = generate(args.root, args.results)
    print(f"{count:,} results in {time.perf_counter() - started:.0f} s into {args.root}")


if __name__ == "__main__":
    main()
