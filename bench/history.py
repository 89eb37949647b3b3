"""A synthetic year of history for a 2,000-test API suite, written straight
into a store, for benchmarks of reports over realistic volumes.

Shape: several runs a day (default 14, so 5,000+ runs and ~10 M results a
year); durations log-normal with a few slow tests that drift slower; 5 % of
tests flaky (they fail at random and mostly pass on retry); regressions that
break a group of tests for a few days until fixed; random 503s answered by a
retry; routes whose response gains or loses a key now and then. Every failure
has its FailureLinked / DecisionMade facts, as the agents would append.

Columns are built with numpy/pyarrow, not event objects: a year is ~20 M rows.

    python -m bench.history bench/out/year      # ~10 M results (cached: reruns do nothing)
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from testmem.memory.events import arrow_schema

ROUTES = [f"/{r}" for r in ("users", "orders", "inventory", "carts", "payments", "auth/token")]
ROUTES += [f"{r}/{{id}}" for r in ROUTES[:5]] + ["/orders/{id}/items", "/users/{id}/orders"]
BASE_KEYS = ["id", "name", "status", "created_at", "owner", "total"]


@dataclass(frozen=True)
class Suite:
    nodeids: np.ndarray  # str
    route: np.ndarray  # index into ROUTES
    duration: np.ndarray  # typical seconds
    flaky_p: np.ndarray  # chance to fail at random


def make_suite(tests: int, rng: np.random.Generator) -> Suite:
    ids = [
        f"tests/api/test_{i // 100:02d}_{ROUTES[i % len(ROUTES)].split('/')[1]}.py::"
        f"test_case_{i:04d}"
        for i in range(tests)
    ]
    duration = rng.lognormal(-3.5, 1.0, tests)
    duration[rng.choice(tests, 20, replace=False)] *= 80  # the slow ones
    flaky = np.where(rng.random(tests) < 0.05, rng.uniform(0.02, 0.25, tests), 0.0005)
    return Suite(np.array(ids), np.arange(tests) % len(ROUTES), duration, flaky)


def regressions(
    days: int, tests: int, rng: np.random.Generator
) -> list[tuple[int, int, np.ndarray]]:
    """(first day, last day, tests broken): about two a month, fixed within a week."""
    found = []
    for _ in range(days // 15):
        start = int(rng.integers(0, days))
        found.append((start, start + int(rng.integers(1, 7)), rng.choice(tests, 8, replace=False)))
    return found


def _table(columns: dict[str, Any], rows: int) -> pa.Table:
    """A table with the log's full schema; columns not given are null."""
    schema = arrow_schema()
    arrays = [
        pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _ids(prefix: str, start: int, count: int) -> pa.Array:
    numbers = pc.cast(pa.array(np.arange(start, start + count)), pa.string())
    return pc.binary_join_element_wise(prefix, numbers, "")


class History:
    """Generates the events of one run after another into Arrow batches."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.rng = np.random.default_rng(args.seed)
        self.suite = make_suite(args.tests, self.rng)
        self.end = datetime.now(UTC).replace(microsecond=0)
        self.start = self.end - timedelta(days=args.days)
        self.days = args.days
        self.runs_per_day = args.runs_per_day
        self.exchange_share = args.exchange_share
        self.broken = regressions(args.days, args.tests, self.rng)
        self.serial = 0

    def run(self, index: int) -> list[pa.Table]:
        day, slot = divmod(index, self.runs_per_day)
        started = self.start + timedelta(days=day, seconds=int(86400 * slot / self.runs_per_day))
        run_id = f"run-{index:06d}"
        outcome, cause = self._outcomes(day)
        results, failures, facts = self._results(run_id, started, outcome, cause, day)
        exchanges = self._exchanges(run_id, started, day)
        edges = self._run_edges(run_id, started, outcome)
        return [results, failures, facts, exchanges, edges]

    def _outcomes(self, day: int) -> tuple[np.ndarray, np.ndarray]:
        """Per test: 0 passed, 1 failed; cause 0 none, 1 flaky, 2 transient, 3 regression."""
        n = len(self.suite.nodeids)
        roll = self.rng.random(n)
        cause = np.where(roll < self.suite.flaky_p, 1, 0)
        cause[(cause == 0) & (roll > 0.9995)] = 2  # a 503 from the API under test
        for first, last, tests in self.broken:
            if first <= day <= last:
                cause[tests] = 3
        return (cause > 0).astype(np.int8), cause

    def _results(
        self, run_id: str, started: datetime, failed: np.ndarray, cause: np.ndarray, day: int
    ) -> tuple[pa.Table, pa.Table, pa.Table]:
        suite, n = self.suite, len(failed)
        drift = 1 + 0.4 * day / self.days * (suite.duration > 1)  # slow tests get slower
        duration = suite.duration * drift * self.rng.lognormal(0, 0.15, n)
        at = np.datetime64(started.replace(tzinfo=None), "us") + (np.cumsum(duration) * 1e6).astype(
            "timedelta64[us]"
        )
        retried = np.flatnonzero((cause == 1) | (cause == 2))
        rescued = retried[self.rng.random(len(retried)) < 0.8]
        rows = np.concatenate([np.arange(n), rescued])
        attempt = np.concatenate([np.ones(n, np.int16), np.full(len(rescued), 2, np.int16)])
        outcome = np.where(
            np.concatenate([failed, np.zeros(len(rescued), np.int8)]) > 0, "failed", "passed"
        )
        when = np.concatenate([at, at[rescued] + np.timedelta64(1, "s")])
        results = self._events(
            "TestFinished",
            run_id,
            when,
            len(rows),
            {
                "nodeid": suite.nodeids[rows],
                "outcome": outcome,
                "attempt": attempt,
                "duration_s": np.concatenate([duration, duration[rescued]]),
                "phase": "call",
            },
        )
        return results, *self._failures(run_id, at, np.flatnonzero(failed), cause, rescued)

    def _failures(
        self,
        run_id: str,
        at: np.ndarray,
        failing: np.ndarray,
        cause: np.ndarray,
        rescued: np.ndarray,
    ) -> tuple[pa.Table, pa.Table]:
        suite, k = self.suite, len(failing)
        failure_ids = _ids(f"{run_id}-f", 0, k)
        kind = cause[failing]
        message = np.array(
            [
                "assert 500 == 200",
                "flaky: timeout after 5s",
                "503 Service Unavailable",
                "KeyError: 'total'",
            ]
        )[kind]
        failures = self._events(
            "FailureObserved",
            run_id,
            at[failing],
            k,
            {
                "failure_id": failure_ids,
                "nodeid": suite.nodeids[failing],
                "message": message,
                "exception_type": np.where(kind == 3, "KeyError", "AssertionError"),
                "attempt": np.ones(k, np.int16),
            },
        )
        category = np.array(["unknown", "flaky", "transient", "regression"])[kind]
        incident = np.char.add(
            "inc-", np.char.add(kind.astype(str), np.char.add("-", failing.astype(str)))
        )
        linked = self._facts(
            "FailureLinked",
            run_id,
            at[failing],
            failure_ids,
            failing,
            incident,
            np.full(k, '{"method": "signature", "score": 1.0}'),
        )
        detail = np.char.add(np.char.add('{"action": "retry", "category": "', category), '"}')
        decided = self._facts(
            "DecisionMade", run_id, at[failing], failure_ids, failing, incident, detail
        )
        waits = np.isin(failing, rescued)
        retry = self._facts(
            "RetryAttempted",
            run_id,
            at[failing][waits],
            failure_ids.filter(pa.array(waits)),
            failing[waits],
            incident[waits],
            np.full(int(waits.sum()), '{"attempt": 2, "wait_s": 1.5}'),
        )
        return failures, pa.concat_tables([linked, decided, retry])

    def _facts(
        self,
        type_: str,
        run_id: str,
        at: np.ndarray,
        failure_ids: Any,
        tests: np.ndarray,
        incident: np.ndarray,
        detail: np.ndarray,
    ) -> pa.Table:
        return self._events(
            type_,
            run_id,
            at,
            len(tests),
            {
                "failure_id": failure_ids,
                "nodeid": self.suite.nodeids[tests],
                "incident_id": incident,
                "signature": incident,
                "detail": detail,
            },
        )

    def _exchanges(self, run_id: str, started: datetime, day: int) -> pa.Table:
        suite = self.suite
        chosen = np.flatnonzero(self.rng.random(len(suite.nodeids)) < self.exchange_share)
        route = suite.route[chosen]
        status = np.where(self.rng.random(len(chosen)) < 0.002, 503, 200).astype(np.int16)
        keys = BASE_KEYS + (["currency"] if day > self.days // 2 else [])  # the API grew a field
        body = "{" + ", ".join(f'"{k}": 1' for k in keys) + "}"
        at = np.datetime64(started.replace(tzinfo=None), "us") + (chosen * 50_000).astype(
            "timedelta64[us]"
        )
        return self._events(
            "HttpExchanged",
            run_id,
            at,
            len(chosen),
            {
                "exchange_id": _ids(f"{run_id}-x", 0, len(chosen)),
                "nodeid": suite.nodeids[chosen],
                "method": "GET",
                "route": np.array(ROUTES)[route],
                "url": np.array(ROUTES)[route],
                "status": status,
                "duration_s": self.rng.lognormal(-4, 0.5, len(chosen)) * (1 + route / 10),
                "response_body": np.full(len(chosen), body),
                "response_body_encoding": "utf-8",
                "response_body_truncated": False,
                "attempt": np.ones(len(chosen), np.int16),
            },
        )

    def _run_edges(self, run_id: str, started: datetime, failed: np.ndarray) -> pa.Table:
        start = np.datetime64(started.replace(tzinfo=None), "us")
        begun = self._events(
            "RunStarted", run_id, np.array([start]), 1, {"build": f"b{run_id[-4:]}"}
        )
        finished = self._events(
            "RunFinished",
            run_id,
            np.array([start + np.timedelta64(600, "s")]),
            1,
            {
                "passed": [int((failed == 0).sum())],
                "failed": [int(failed.sum())],
                "errors": [0],
                "skipped": [0],
                "xfailed": [0],
                "xpassed": [0],
                "exit_status": [int(failed.any())],
                "duration_s": [600.0],
            },
        )
        return pa.concat_tables([begun, finished])

    def _events(
        self, type_: str, run_id: str, at: np.ndarray, rows: int, columns: dict[str, Any]
    ) -> pa.Table:
        ids = _ids(f"{run_id}-{type_}-", self.serial, rows)
        self.serial += rows
        stamps = pa.array(at.astype("datetime64[us]"), pa.timestamp("us")).cast(
            pa.timestamp("us", tz="UTC")
        )
        full = {name: _fill(value, rows) for name, value in columns.items()}
        full.update(
            event_id=ids,
            type=_fill(type_, rows),
            run_id=_fill(run_id, rows),
            occurred_at=stamps,
            schema_version=_fill(1, rows),
            producer=_fill("bench/history", rows),
            day=pc.strftime(stamps, "%Y-%m-%d"),
        )
        return _table(full, rows)


def _fill(value: Any, rows: int) -> Any:
    """A scalar repeated for every row; arrays pass through."""
    if isinstance(value, np.ndarray | pa.Array | pa.ChunkedArray | list):
        return value
    return np.full(rows, value) if not isinstance(value, str) else [value] * rows


def generate(root: Path | str, args: argparse.Namespace) -> int:
    """Write the history into the store at ``root`` (a directory or a URL);
    returns the number of result events."""
    from testmem.memory.store import Store

    history, log = History(args), Store(root).events
    runs, per_batch, results = args.days * args.runs_per_day, args.runs_per_day * 7, 0
    for first in range(0, runs, per_batch):
        tables = [t for i in range(first, min(first + per_batch, runs)) for t in history.run(i)]
        batch = pa.concat_tables(tables).sort_by([("type", "ascending"), ("nodeid", "ascending")])
        results += pc.sum(pc.equal(batch.column("type"), "TestFinished")).as_py()
        log.append_table(batch)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs-per-day", type=int, default=14)
    parser.add_argument(
        "--exchange-share",
        type=float,
        default=0.5,
        help="Share of tests whose request is recorded in a run.",
    )
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    if (args.root / "events" / "_delta_log").is_dir():
        print(f"{args.root}: already generated (delete it to regenerate)")
        return
    started = time.perf_counter()
    results = generate(args.root, args)
    print(f"{args.root}: {results:,} results in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
