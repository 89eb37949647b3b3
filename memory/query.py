"""DuckDB over the current snapshot of the event log.

`History` opens an in-memory DuckDB whose views read exactly the Parquet files
of the current Delta snapshot, so compaction running meanwhile never shows a
reader duplicates. Views: ``events``, ``runs``, ``results``, ``exchanges``,
``failures``, ``explaining`` (each failure's explaining exchange), ``explained``
(failing runs an API change or a regression explains), ``facts``. User SQL goes
through `History.query`, which is read-only.

A remote log (``s3://``) is read through deltalake's snapshot: DuckDB scans
its pyarrow dataset, which reads the objects with deltalake's own client.
A data file that does not read is left out, and named in `History.skipped`,
so one damaged file never takes every answer with it (`testmem doctor
--repair` moves it aside).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from testmem.memory.errors import NotFoundError, QueryError
from testmem.memory.events import COLUMNS
from testmem.memory.store import Store

if TYPE_CHECKING:
    import duckdb  # imported when a History opens: commands that read no log skip ~0.5 s

_DUCK_TYPES = {
    "string": "VARCHAR",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
    "list<string>": "VARCHAR[]",
}

# A failure's explaining exchange, among the exchanges of its own attempt:
# for a failure in setup (or teardown), the last of that phase ("setup"); else,
# of the call phase, the last one whose status or path the failure text names
# ("named"), else the last error answer ("error"), else the last ("last").
# A fixture's setup request never explains a failure of the test's body.
_CHOSEN = """
    WITH candidates AS (
        SELECT f.failure_id, f.phase AS failure_phase, x.exchange_id, x.occurred_at,
               coalesce(x.phase, 'call') = coalesce(f.phase, 'call') AS own_phase,
               (x.status IS NOT NULL
                AND regexp_matches(coalesce(f.message, ''), '(^|\\D)' || x.status || '(\\D|$)'))
               OR (length(x.path) > 1 AND contains(coalesce(f.message, ''), x.path)) AS named,
               coalesce(x.status >= 400, false) OR x.error IS NOT NULL AS error
        FROM (SELECT failure_id, phase, message, unnest(exchange_ids) AS exchange_id
              FROM failures) f
        JOIN (SELECT exchange_id, occurred_at, phase, status, error,
                     regexp_extract(url, '^[a-zA-Z]+://[^/]+(/[^?#]*)', 1) AS path
              FROM exchanges) x USING (exchange_id)
    )
    SELECT failure_id, exchange_id,
           CASE WHEN coalesce(failure_phase, 'call') <> 'call' THEN 'setup'
                WHEN named THEN 'named' WHEN error THEN 'error' ELSE 'last' END AS exchange_rule
    FROM candidates WHERE own_phase
    QUALIFY row_number() OVER (
        PARTITION BY failure_id
        ORDER BY coalesce(failure_phase, 'call') = 'call' AND named DESC,
                 coalesce(failure_phase, 'call') = 'call' AND error DESC, occurred_at DESC) = 1"""
# Where the recorder chose it (``FailureObserved.exchange_id``), its choice stands.
_EXPLAINING = (
    f"""SELECT failure_id, exchange_id, exchange_rule FROM events
        WHERE type = 'FailureObserved' AND exchange_rule IS NOT NULL
        UNION ALL
        SELECT c.* FROM ({_CHOSEN}) c JOIN events f ON f.failure_id = c.failure_id
        WHERE f.type = 'FailureObserved' AND f.exchange_rule IS NULL"""
    if "exchange_rule" in dict(COLUMNS)
    else _CHOSEN
)

# The ``explained`` view over any table of events (``{events}``): the report
# reads it from the decisions it already gathered, since a slice of the log's
# files may hold a result without the decision that explained it.
EXPLAINED = """
    SELECT run_id, nodeid FROM (
        SELECT run_id, nodeid, detail->>'$.category' AS category FROM {events}
        WHERE type = 'DecisionMade'
        QUALIFY row_number() OVER (PARTITION BY run_id, nodeid ORDER BY occurred_at DESC) = 1)
    WHERE category IN ('outdated', 'regression')"""

_VIEWS = {
    # Both ends of every run in one pass over the files (a self-join of
    # `events` would read each file twice).
    "runs": """
        WITH ends AS MATERIALIZED (
            SELECT type, run_id, occurred_at, build, branch, host, python_version,
                   pytest_version, args, exit_status, duration_s, passed, failed, errors,
                   skipped, xfailed, xpassed
            FROM events WHERE type IN ('RunStarted', 'RunFinished'))
        SELECT s.run_id, s.occurred_at AS started_at, f.occurred_at AS finished_at,
               s.build, s.branch, s.host, s.python_version, s.pytest_version, s.args,
               f.exit_status, f.duration_s, f.passed, f.failed, f.errors, f.skipped,
               f.xfailed, f.xpassed,
               coalesce(f.passed + f.failed + f.errors + f.skipped + f.xfailed + f.xpassed, 0)
                   AS tests
        FROM ends s LEFT JOIN ends f ON f.run_id = s.run_id AND f.type = 'RunFinished'
        WHERE s.type = 'RunStarted'""",
    "results": """
        SELECT run_id, occurred_at, nodeid, file, function, params, markers, outcome, phase,
               duration_s, attempt, worker
        FROM events WHERE type = 'TestFinished'""",
    "exchanges": """
        SELECT run_id, occurred_at, exchange_id, nodeid, phase, attempt, method, url, route,
               status, request_headers, request_body, request_body_size, request_body_sha256,
               request_body_encoding, request_body_truncated, response_headers, response_body,
               response_body_size, response_body_sha256, response_body_encoding,
               response_body_truncated, duration_s, error, fixture, route_source
        FROM events WHERE type = 'HttpExchanged'""",
    "failures": """
        SELECT run_id, occurred_at, failure_id, nodeid, phase, attempt, exception_type,
               message, assertion, crash_path, crash_line, traceback, traceback_size,
               traceback_sha256, traceback_truncated, exchange_ids, exchange_id, exchange_rule
        FROM events WHERE type = 'FailureObserved'""",
    # The one exchange that explains each failure, and the rule that chose it.
    "explaining": _EXPLAINING,
    # The failing runs of a test that triage explained by an API change or a
    # regression: they are not flakiness (`History.flaky`, the report's flaky figures).
    "explained": EXPLAINED.format(events="events"),
    # Everything the memory concluded or was told (links, decisions, labels...).
    "facts": """
        SELECT run_id, occurred_at, event_id, type, nodeid, failure_id, incident_id,
               signature, detail
        FROM events WHERE type NOT IN
            ('RunStarted', 'RunFinished', 'TestFinished', 'HttpExchanged', 'FailureObserved')""",
}


_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|B)", re.IGNORECASE)


@dataclass(frozen=True)
class QueryLimits:
    """What a user's query may take: wall time, DuckDB's memory (beyond it,
    it spills to DIR/tmp/query, up to ``spill``), and rows returned."""

    timeout_s: float = 30.0
    memory: str = "512MB"
    spill: str = "4GB"
    max_rows: int = 100_000


@dataclass(frozen=True)
class Rows:
    """A query result: column names and rows, ready for any output format."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class History:
    """Read access to a store through DuckDB; with ``part=(i, n, version)``,
    to the i-th of n slices of that version's files only (a distributed
    report's share)."""

    def __init__(self, store: Store, part: tuple[int, int, int | None] | None = None) -> None:
        import duckdb

        self.store = store
        self.part = part
        self.db = duckdb.connect(":memory:")
        self.db.execute("SET threads TO 2")
        # Every view re-binds `events`, which reads each file's footer: read them once.
        self.db.execute("SET parquet_metadata_cache = true")
        self._locked = False
        self.skipped: list[str] = []  # damaged files left out of every answer
        self._left_out: set[str] = set()  # those of a remote log, as its dataset names them
        self._files = [] if store.remote else self._sliced(store.events.files(self._version))
        self._by_name = False  # whether `events` matches the files' columns by name
        self._create_views()

    def close(self) -> None:
        """Close DuckDB now: one that spilled must not be left to the interpreter's
        exit, where removing its spill files aborts the process."""
        self.db.close()

    def _create_views(self) -> None:
        if self.store.remote:
            select = _snapshot_select(self.db, self._remote_dataset())
        else:
            select = self._local_select()
        self.db.execute(f"CREATE OR REPLACE VIEW events AS {select}")
        for name, sql in _VIEWS.items():
            self.db.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")

    def sql(
        self,
        sql: str,
        params: list[Any] | dict[str, Any] | None = None,
        max_rows: int | None = None,
    ) -> Rows:
        """Run trusted library SQL with bound parameters (``max_rows``: refuse more)."""
        import duckdb

        try:
            cursor = self.db.execute(sql, params or [])
            columns = [d[0] for d in cursor.description or []]
            if max_rows is None:
                return Rows(columns, cursor.fetchall())
            rows = cursor.fetchmany(max_rows + 1)
            if len(rows) > max_rows:
                raise QueryError(f"more than {max_rows:,} rows: add a LIMIT")
            return Rows(columns, rows)
        except duckdb.Error as exc:
            if not self._mend(exc):
                raise QueryError(_first_line(exc)) from exc
        self._create_views()
        return self.sql(sql, params)

    @property
    def _version(self) -> int | None:
        return self.part[2] if self.part else None

    def _sliced(self, items: list[Any]) -> list[Any]:
        return items[self.part[0] :: self.part[1]] if self.part else items

    def _remote_dataset(self) -> Any:
        dataset = self.store.events.dataset(self._version)
        if not self.part and not self._left_out:
            return dataset
        import pyarrow.dataset as ds

        fragments = [
            f for f in self._sliced(list(dataset.get_fragments())) if f.path not in self._left_out
        ]
        return ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)

    def _local_select(self) -> str:
        import duckdb

        while True:
            try:
                select, self._by_name = _events_select(self.db, self._files, self._by_name)
                return select
            except duckdb.Error as exc:
                if not self._skip_damaged(exc):
                    raise QueryError(_first_line(exc)) from exc

    def _mend(self, exc: duckdb.Error) -> bool:
        """Whether the error is one the views can be rebuilt around: a file
        that predates a column (match columns by name from now on) or a
        damaged file (leave it out)."""
        if not self._by_name and "schema mismatch" in str(exc):
            self._by_name = True
            return True
        return self._skip_damaged(exc)

    def _skip_damaged(self, exc: duckdb.Error) -> bool:
        """Leave out the snapshot file the error names, if it does not read."""
        if self.store.remote:
            return self._skip_damaged_objects(exc)
        named = [f for f in self._files if _local_path(f) in str(exc) or f in str(exc)]
        damaged = [f for f in named if not _footer_reads(f)]
        self._files = [f for f in self._files if f not in damaged]
        return self._skipping([_local_path(uri) for uri in damaged])

    def _skip_damaged_objects(self, exc: duckdb.Error) -> bool:
        """The same for a remote log: its dataset names files relative to the table."""
        fragments = self.store.events.dataset(self._version).get_fragments()
        named = [f for f in fragments if f.path in str(exc) and f.path not in self._left_out]
        damaged = [f.path for f in named if not _fragment_reads(f)]
        self._left_out.update(damaged)
        return self._skipping([f"{self.store.events.uri}/{path}" for path in damaged])

    def _skipping(self, damaged: list[str]) -> bool:
        import warnings

        from testmem.memory.errors import DamagedFileWarning

        for where in damaged:
            self.skipped.append(where)
            warnings.warn(
                f"skipped damaged file {where}: it does not read as Parquet "
                "(answers leave its events out); run `testmem doctor --repair`",
                DamagedFileWarning,
                stacklevel=3,
            )
        return bool(damaged)

    def query(self, sql: str, limits: QueryLimits | None = None) -> Rows:
        """Run a user's SQL: only SELECT statements, no file system access,
        within `QueryLimits` (time, memory, rows)."""
        limits = limits or QueryLimits()
        import duckdb

        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise QueryError(_first_line(exc)) from exc
        if not statements:
            raise QueryError("empty query")
        if any(s.type != duckdb.StatementType.SELECT for s in statements):
            raise QueryError("only SELECT queries are allowed (the store is read-only here)")
        self._lock_down(limits)
        expired = threading.Event()

        def stop() -> None:
            expired.set()
            self.db.interrupt()

        timer = threading.Timer(limits.timeout_s, stop)
        timer.daemon = True
        timer.start()
        try:
            return self.sql(sql, max_rows=limits.max_rows)
        except QueryError as exc:
            if expired.is_set():
                raise QueryError(f"stopped after {limits.timeout_s:g} s (the time limit)") from exc
            raise
        finally:
            timer.cancel()

    def _lock_down(self, limits: QueryLimits) -> None:
        """From here on DuckDB may read only the store's files, spill only into
        DIR/tmp/query, use at most ``limits.memory`` and change no setting."""
        if self._locked:  # the configuration cannot be set twice
            return
        self._locked = True
        root = str(self.store.root.resolve()).replace("'", "''")
        for size in (limits.memory, limits.spill):
            if not _SIZE.fullmatch(size):
                raise QueryError(f"{size!r} is not a size like 512MB or 2GiB")
        self.db.execute("SET memory_limit = ?", [limits.memory])
        self.db.execute("SET temp_directory = ?", [_spill_directory(self.store)])
        self.db.execute("SET max_temp_directory_size = ?", [limits.spill])
        self.db.execute(f"SET allowed_directories = ['{root}']")
        self.db.execute("SET enable_external_access = false")
        self.db.execute("SET lock_configuration = true")

    # -- library questions ---------------------------------------------------

    def runs(self, limit: int = 20) -> Rows:
        return self.sql(
            """SELECT run_id, started_at, build, branch, tests, passed, failed, errors,
                      skipped, round(duration_s, 2) AS duration_s, exit_status
               FROM runs ORDER BY started_at DESC LIMIT ?""",
            [limit],
        )

    def test_history(self, nodeid: str, limit: int = 50) -> Rows:
        rows = self.sql(
            # The test's results and the runs' starts (for the build) in one
            # pass over the files, rather than one pass for each.
            """WITH found AS MATERIALIZED (
                   SELECT type, run_id, occurred_at, build, outcome, phase, attempt, duration_s
                   FROM events
                   WHERE (type = 'TestFinished' AND nodeid = $nodeid) OR type = 'RunStarted')
               SELECT r.run_id, r.occurred_at, s.build, r.outcome, r.phase, r.attempt,
                      round(r.duration_s, 4) AS duration_s
               FROM found r
               LEFT JOIN found s ON s.run_id = r.run_id AND s.type = 'RunStarted'
               WHERE r.type = 'TestFinished' ORDER BY r.occurred_at DESC LIMIT $limit""",
            {"nodeid": nodeid, "limit": limit},
        )
        if not rows.rows:
            raise NotFoundError(f"no results for test {nodeid!r}")
        return rows

    def resolve_run(self, run: str | None) -> str:
        """A run id from a full id, a unique prefix, or None / "latest"."""
        if run in (None, "latest"):
            found = self.sql("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").rows
        else:
            found = self.sql("SELECT run_id FROM runs WHERE starts_with(run_id, ?)", [run]).rows
        if len(found) != 1:
            what = "no runs recorded" if run in (None, "latest") else f"unknown run {run!r}"
            raise NotFoundError(what if not found else f"run prefix {run!r} is ambiguous")
        return str(found[0][0])

    def run_summary(self, run: str | None = None) -> dict[str, Any]:
        run_id = self.resolve_run(run)
        summary = self.sql("SELECT * FROM runs WHERE run_id = ?", [run_id]).dicts()[0]
        summary["exchanges"] = self.sql(
            "SELECT count(*) FROM exchanges WHERE run_id = ?", [run_id]
        ).rows[0][0]
        return summary

    def failures(self, run: str | None = None) -> Rows:
        run_id = self.resolve_run(run)
        return self.sql(
            """SELECT failure_id, nodeid, phase, attempt, exception_type,
                      coalesce(assertion, split_part(message, chr(10), 1)) AS message,
                      crash_path || ':' || crash_line AS location, len(exchange_ids) AS exchanges
               FROM failures WHERE run_id = ? ORDER BY occurred_at""",
            [run_id],
        )

    def test_records(
        self,
        window: int = 30,
        nodeids: list[str] | None = None,
        exclude_run: str | None = None,
        *,
        skip_always_passed: bool = False,
    ) -> Rows:
        """Each test's record over its last ``window`` runs (``exclude_run`` left out),
        leaving out the runs whose failure was explained by an API change or a
        regression (view ``explained``): a test broken by a deliberate change and
        healed, or by a regression and fixed, did not flip by chance.

        ``flip_rate`` is the share of consecutive runs whose final outcome
        differs; ``retry_pass_rate`` the share of runs that failed first and
        passed on a later attempt. ``skip_always_passed`` leaves out tests that
        only ever passed (skips and xfails aside): a run count is all they show.
        """
        params = {"window": window, "exclude": exclude_run or "", "every": nodeids is None}
        return self.sql(
            _TEST_RECORDS,
            {**params, "nodeids": nodeids or [], "skip_always_passed": skip_always_passed},
        )

    def flaky(self, window: int = 30, min_runs: int = 3, limit: int = 50) -> Rows:
        """Tests whose outcome flips between runs or that passed only on retry
        (see `test_records` for the rates), not counting the failures an API
        change or a regression explained: the one definition of flaky, which
        the report's flaky figures share."""
        params = {"window": window, "exclude": "", "every": True, "nodeids": []}
        params |= {"skip_always_passed": False, "min_runs": min_runs, "limit": limit}
        return self.sql(_FLAKY, params)

    def stats(self) -> dict[str, Any]:
        by_type = dict(
            self.sql("SELECT type, count(*) FROM events GROUP BY type ORDER BY type").rows
        )
        span = self.sql("SELECT min(occurred_at), max(occurred_at) FROM events").rows[0]
        files = self.store.events.files()
        size = self.store.events.size_bytes() if self.store.remote else sum(map(_size, files))
        return {
            "store": self.store.location,
            "events": sum(by_type.values()),
            "events_by_type": by_type,
            "first_event": span[0],
            "last_event": span[1],
            "files": len(files),
            "bytes": size,
            "log_version": self.store.events.version(),
        }


_TEST_RECORDS = """
    WITH counted AS MATERIALIZED (
        SELECT nodeid, run_id, occurred_at, outcome, attempt FROM results
        ANTI JOIN explained USING (run_id, nodeid)
        WHERE outcome NOT IN ('skipped', 'xfailed') AND run_id <> $exclude
          AND ($every OR nodeid IN (SELECT unnest($nodeids)))
    ), per_run AS (
        SELECT nodeid, run_id, min(occurred_at) AS first_at,
               arg_max(outcome, attempt) AS final,
               bool_or(outcome IN ('failed', 'error')) AS failed_once
        FROM counted
        WHERE NOT $skip_always_passed
           OR nodeid IN (SELECT nodeid FROM counted WHERE outcome <> 'passed')
        GROUP BY nodeid, run_id
    ), recent AS (
        SELECT *, row_number() OVER (PARTITION BY nodeid ORDER BY first_at DESC) AS n
        FROM per_run
    ), ordered AS (
        SELECT *, lag(final) OVER (PARTITION BY nodeid ORDER BY first_at) AS previous
        FROM recent WHERE n <= $window
    )
    SELECT nodeid, count(*) AS runs,
           count(*) FILTER (WHERE previous IS NOT NULL AND final <> previous)
               / greatest(count(*) - 1, 1) AS flip_rate,
           count(*) FILTER (WHERE failed_once AND final = 'passed') / count(*) AS retry_pass_rate,
           count(*) FILTER (WHERE final IN ('failed', 'error')) AS failed_runs,
           max(first_at) AS last_seen
    FROM ordered GROUP BY nodeid"""

_FLAKY = (
    """SELECT nodeid, runs, round(flip_rate, 3) AS flip_rate,
              round(retry_pass_rate, 3) AS retry_pass_rate, failed_runs, last_seen
       FROM ("""
    + _TEST_RECORDS
    + """)
       WHERE runs >= $min_runs AND (flip_rate > 0 OR retry_pass_rate > 0)
       ORDER BY round(flip_rate, 3) + round(retry_pass_rate, 3) DESC, nodeid
       LIMIT $limit"""
)


def _events_select(
    db: duckdb.DuckDBPyConnection, files: list[str], by_name: bool
) -> tuple[str, bool]:
    """A SELECT with every declared column, typed, whatever the files hold:
    columns added by later schema versions read as NULL in older files.

    Matching the files' columns by name (``union_by_name``) reads every
    file's footer up front and costs more per file, so it is used only when
    needed. If the first file holds every declared column, files are read as
    it is; one that lacks a column then fails the query with a schema
    mismatch, on which `History.sql` falls back to matching by name. If the
    first file lacks one, a file holding it would be read without it: then
    the files' footers say whether they all hold the same columns. Returns
    the SELECT and whether it matches by name.
    """
    declared = [(name, _DUCK_TYPES[kind]) for name, kind in COLUMNS if name != "day"]
    if not files:
        nulls = ", ".join(f"NULL::{t} AS {n}" for n, t in declared)
        return f"SELECT {nulls} WHERE false", by_name
    listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    present = _columns(db, listing, by_name)
    if not by_name and any(n not in present for n, _ in declared) and not _one_schema(db, listing):
        by_name = True
        present = _columns(db, listing, by_name)
    columns = ", ".join(n if n in present else f"NULL::{t} AS {n}" for n, t in declared)
    return f"SELECT {columns} FROM {_source(listing, by_name)}", by_name


def _snapshot_select(db: duckdb.DuckDBPyConnection, dataset: Any) -> str:
    """The same SELECT over a registered pyarrow dataset of the snapshot: the
    table's schema is the union of its versions', so no file lacks a column."""
    db.register("snapshot_dataset", dataset)
    present = set(dataset.schema.names)
    declared = [(name, _DUCK_TYPES[kind]) for name, kind in COLUMNS if name != "day"]
    columns = ", ".join(n if n in present else f"NULL::{t} AS {n}" for n, t in declared)
    return f"SELECT {columns} FROM snapshot_dataset"


def _local_path(uri: str) -> str:
    from urllib.parse import unquote

    return unquote(uri.removeprefix("file://"))


def _footer_reads(uri: str) -> bool:
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(_local_path(uri))
        return True
    except Exception:  # pyarrow raises ArrowInvalid, OSError...
        return False


def _fragment_reads(fragment: Any) -> bool:
    """Whether a remote file's footer reads (through the dataset's filesystem)."""
    try:
        fragment.ensure_complete_metadata()
        return True
    except Exception:  # pyarrow raises ArrowInvalid, OSError...
        return False


def _source(listing: str, by_name: bool) -> str:
    return f"read_parquet([{listing}], union_by_name = {by_name}, hive_partitioning = false)"


def _columns(db: duckdb.DuckDBPyConnection, listing: str, by_name: bool) -> set[str]:
    """The columns DuckDB reads: the first file's, or with ``by_name`` every file's."""
    source = _source(listing, by_name)
    return {row[0] for row in db.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}


def _one_schema(db: duckdb.DuckDBPyConnection, listing: str) -> bool:
    """Whether every file holds the same columns (schema changes only add them)."""
    per_file = f"SELECT count(*) AS n FROM parquet_schema([{listing}]) GROUP BY file_name"
    found = db.execute(f"SELECT count(DISTINCT n) FROM ({per_file})").fetchone()
    return found is not None and found[0] == 1


def _size(uri: str) -> int:
    from pathlib import Path

    path = Path(uri.removeprefix("file://"))
    return path.stat().st_size if path.exists() else 0


def _spill_directory(store: Store) -> str:
    """DIR/tmp/query, made if missing; "" (no spilling) where it cannot be made."""
    path = store.root.resolve() / "tmp" / "query"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return ""
    return str(path)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
