"""The report's figures, computed by DuckDB over the `History` views.

Every section is one grouped SQL query per ISO week (weeks start at Monday
midnight in the report's time zone); Python only reshapes the few rows that
come back. Definitions, so the numbers can be trusted and argued with:

- tests executed / pass rate: first attempts that were not skipped; a pass is
  passed, xfailed or xpassed. Failures count `FailureObserved` events.
- category: the latest `DecisionMade` for the failure, else "unknown".
- flakiness of a test in a week: min(runs it passed in, at once or on retry;
  runs it failed first) / its runs, so 0 is steady and 0.5 a coin toss.
- incident: the `FailureLinked` facts of one incident (merged ones count as
  the incident they were merged into). Resolved as `testmem incidents` says
  (`testmem.memory.incidents.RESOLVED_AFTER_RUNS`): once that many runs, started
  after the run of its last sighting, ran its tests and they all passed (at
  once or on retry); time to resolve runs from first sighting to that run's start.
- HTTP error: a transport error or a 5xx status. Schema change: the set of
  top-level keys of a route's JSON object responses differs from the week before.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from testmem.memory.incidents import RESOLVED_AFTER_RUNS
from testmem.memory.query import EXPLAINED, History
from testmem.memory.report.model import (
    CATEGORIES,
    METRICS,
    Period,
    Report,
    WeekFigures,
    change,
    week_label,
)

TOP = 10
_BUCKETS = 40  # latency buckets per unit of ln(seconds): each 2.5 % wide
# An engine runs the named `SCANS` over the log's files, with the driver's
# tables given (name -> Arrow table) present, and hands back each scan's
# partial rows (name -> Arrow table), merged-to-be.
Engine = Callable[[list[str], dict[str, Any]], dict[str, Any]]
_FACT_TYPES = ["DefectFiled", "HealProposed", "HealVerified", "TestsGenerated", "RetryAttempted"]


def build_report(history: History, period: Period, engine: Engine | None = None) -> Report:
    """All figures of ``period`` from the store behind ``history``, its scans
    run by ``engine`` (default: this process's DuckDB)."""
    _prepare(history, period, engine)
    values = {start: dict.fromkeys((m.key for m in METRICS), 0.0) for start in _all(period)}
    for section in (_runs, _tests, _failures, _facts, _incidents, _http):
        for start, figures in section(history):
            if start in values:
                values[start].update(figures)
    weeks = _with_changes(period, values)
    return Report(
        store=history.store.location,
        tz=period.tz,
        generated_at=datetime.now(UTC),
        weeks=weeks,
        flaky=_flaky(history, period),
        slowest=_slowest(history, period),
        routes=_routes(history, period),
        notes=_notes(),
    )


def _all(period: Period) -> list[date]:
    return [period.previous, *period.starts]


def _prepare(history: History, period: Period, engine: Engine | None = None) -> None:
    """Week macros, and the tables every section reads instead of the whole log
    (`SCANS`): each is a scan of the log's files into partial rows, then a
    merge of those rows. The default engine runs both here; another engine
    (`testmem.memory.report.ray_engine`) runs the scans over slices of the files
    elsewhere and hands back the partial rows to merge. The scans of results
    come second: they need what the first scans found (the runs a decision
    explained, the incidents' last sightings), which may lie in other files."""
    set_period(history, period)
    _scan(history, FIRST_SCANS, engine, {})
    for sql in (_EXPLAINED_SQL, _SIGHTINGS_SQL, _SPANS_SQL, _WATCHED_SQL):
        history.sql(sql)
    given = {name: history.db.sql(f"FROM {name}").to_arrow_table() for name in _GIVEN}
    _scan(history, SECOND_SCANS, engine, given)


def _scan(history: History, names: list[str], engine: Engine | None, given: dict[str, Any]) -> None:
    if engine is None:
        for name in names:
            scan, merge = SCANS[name]
            history.sql(f"CREATE OR REPLACE TEMP TABLE {name} AS WITH parts AS ({scan}) {merge}")
        return
    for name, parts in engine(names, given).items():
        merge = SCANS[name][1]
        history.db.register("parts", parts)
        history.sql(f"CREATE OR REPLACE TEMP TABLE {name} AS {merge}")
        history.db.unregister("parts")


def set_period(history: History, period: Period) -> None:
    """The macros and tables that bound a report's scans to ``period``."""
    sql = history.sql
    _week_macros(history, period)
    sql(
        "CREATE OR REPLACE TEMP TABLE bounds AS SELECT ?::TIMESTAMPTZ AS lo, ?::TIMESTAMPTZ AS hi",
        list(period.bounds()),
    )
    sql("CREATE OR REPLACE TEMP TABLE weeks AS SELECT unnest(?::DATE[]) AS week", [_all(period)])


# Each scan: the SQL over the log's views that yields partial rows, and the
# SQL that merges partial rows (``parts``) from any number of scans into the
# table. Runs, failures and facts are few: kept whole, since incidents look
# back before the window. Test durations travel as sums and counts; latencies
# as a histogram per route and week (buckets 2.5 % wide): quantiles read from
# it cost far less than per-row sketches over millions, and merge exactly.
SCANS = {
    "notable": (
        """SELECT type, run_id, occurred_at, nodeid, failure_id, incident_id, detail FROM events
           WHERE type NOT IN ('TestFinished', 'HttpExchanged', 'RunFinished')""",
        "SELECT * FROM parts",
    ),
    "test_weeks": (
        """SELECT week_in(occurred_at) AS week, nodeid,
               count(*) FILTER (attempt = 1 AND outcome <> 'skipped') AS runs,
               count(*) FILTER (attempt = 1 AND outcome IN ('passed', 'xfailed', 'xpassed'))
                   AS passed,
               count(*) FILTER (attempt = 1 AND outcome IN ('failed', 'error')) AS failed,
               count(*) FILTER (attempt = 1 AND outcome IN ('failed', 'error') AND e.nodeid IS NULL)
                   AS unexplained,
               count(*) FILTER (attempt > 1 AND outcome = 'passed') AS rescued,
               sum(duration_s) FILTER (attempt = 1 AND outcome <> 'skipped') AS total_s,
               count(duration_s) FILTER (attempt = 1 AND outcome <> 'skipped') AS timed
           FROM results r LEFT JOIN explained_runs e USING (run_id, nodeid), bounds
           WHERE occurred_at >= lo AND occurred_at < hi
           GROUP BY ALL""",
        """SELECT week, nodeid, sum(runs) AS runs, sum(passed) AS passed,
                  sum(failed) AS failed, sum(unexplained) AS unexplained,
                  sum(rescued) AS rescued, sum(total_s) / nullif(sum(timed), 0) AS mean_s
           FROM parts GROUP BY ALL""",
    ),
    "latency": (
        f"""SELECT week_in(occurred_at) AS week, route,
               round(ln(greatest(duration_s, 1e-6)) * {_BUCKETS})::INT AS bucket,
               count(*) AS n, count(*) FILTER (error IS NOT NULL OR status >= 500) AS errors
           FROM exchanges, bounds WHERE occurred_at >= lo AND occurred_at < hi GROUP BY ALL""",
        "SELECT week, route, bucket, sum(n) AS n, sum(errors) AS errors FROM parts GROUP BY ALL",
    ),
    # The final outcome of each watched test in each run after its watch
    # began (``watched``: the incidents' tests, from the run of their last sighting).
    "after_sighting": (
        """SELECT r.run_id, r.nodeid, max(r.attempt) AS attempt,
                  arg_max(r.outcome, r.attempt) AS outcome
           FROM results r JOIN watched w ON r.nodeid = w.nodeid AND r.occurred_at > w.after,
                bounds
           WHERE r.occurred_at < hi GROUP BY ALL""",
        """SELECT run_id, nodeid, arg_max(outcome, attempt) AS outcome
           FROM parts GROUP BY ALL""",
    ),
    # Each distinct body once: identical responses are parsed once. A body
    # without its digest (imported, or written by another tool) is told apart
    # by its own hash: were all of them one group, any one of them would
    # stand for all, and which one would depend on the order of the scan.
    "bodies": (
        """SELECT week_in(occurred_at) AS week, route,
                  coalesce(response_body_sha256, sha256(response_body)) AS body_sha256,
                  any_value(response_body) AS body
           FROM exchanges, bounds
           WHERE occurred_at >= lo AND occurred_at < hi AND response_body_encoding = 'utf-8'
             AND NOT coalesce(response_body_truncated, false)
             AND starts_with(response_body, '{')
           GROUP BY ALL""",
        """SELECT week, route, body_sha256, any_value(body) AS body
           FROM parts GROUP BY ALL""",
    ),
}


FIRST_SCANS = ["notable", "latency", "bodies"]
# Scans that need the driver's tables (`_GIVEN`) made from the first ones.
SECOND_SCANS = ["test_weeks", "after_sighting"]
_GIVEN = ("explained_runs", "watched")


def _week_macros(history: History, period: Period) -> None:
    """``week_of(ts)``: the Monday starting the week of ``ts`` in the report's time zone.
    ``week_in(ts)`` gives the same for instants inside the report's bounds, by integer
    arithmetic on precomputed week starts: a time zone lookup per row costs seconds
    over millions of results."""
    tz = period.tz.replace("'", "''")  # validated by resolve_tz; quoted anyway
    sql = history.sql
    sql(f"""CREATE OR REPLACE TEMP MACRO week_of(ts) AS
            date_trunc('week', timezone('{tz}', ts))::DATE""")
    sql(f"CREATE OR REPLACE TEMP MACRO week_end(w) AS timezone('{tz}', (w + 7)::TIMESTAMP)")
    zone = ZoneInfo(period.tz)
    days = _all(period)
    starts = [
        int(datetime.combine(d, time.min, zone).timestamp() * 1_000_000)
        for d in [*days, days[-1] + timedelta(weeks=1)]
    ]
    weeks = ", ".join(f"DATE '{d.isoformat()}'" for d in days)
    sql(f"""CREATE OR REPLACE TEMP MACRO week_guess(us) AS
            least(greatest((us - {starts[0]}) // {7 * 86_400_000_000}, 0), {len(days) - 1})""")
    # The guess is off by one at most, near a daylight-saving shift: correct it.
    sql(f"""CREATE OR REPLACE TEMP MACRO week_index(us) AS week_guess(us)
            + (us >= {starts}[week_guess(us) + 2])::INT
            - (us < {starts}[week_guess(us) + 1])::INT""")
    sql(f"CREATE OR REPLACE TEMP MACRO week_in(ts) AS [{weeks}][week_index(epoch_us(ts)) + 1]")


def _rows(history: History, sql: str) -> list[tuple[Any, ...]]:
    return history.sql(sql).rows


def _runs(history: History) -> list[tuple[date, dict[str, Any]]]:
    rows = _rows(
        history,
        """SELECT week_of(occurred_at), count(*) FROM notable, bounds
           WHERE type = 'RunStarted' AND occurred_at >= lo AND occurred_at < hi GROUP BY 1""",
    )
    return [(week, {"runs": runs}) for week, runs in rows]


def _tests(history: History) -> list[tuple[date, dict[str, Any]]]:
    rows = _rows(
        history,
        """SELECT week, sum(runs), sum(passed) / nullif(sum(runs), 0), sum(rescued),
                  count(*) FILTER (WHERE least(passed + rescued, unexplained) > 0)
           FROM test_weeks GROUP BY week""",
    )
    keys = ("tests", "pass_rate", "retries_rescued", "flaky_tests")
    return [(row[0], dict(zip(keys, row[1:], strict=True))) for row in rows]


def _failures(history: History) -> list[tuple[date, dict[str, Any]]]:
    rows = _rows(
        history,
        """WITH decided AS (
               SELECT failure_id, arg_max(detail->>'$.category', occurred_at) AS category
               FROM notable WHERE type = 'DecisionMade' AND failure_id IS NOT NULL GROUP BY 1)
           SELECT week_of(f.occurred_at), coalesce(d.category, 'unknown'), count(*)
           FROM notable f LEFT JOIN decided d USING (failure_id), bounds
           WHERE f.type = 'FailureObserved' AND f.occurred_at >= lo AND f.occurred_at < hi
           GROUP BY ALL""",
    )
    weeks: dict[date, dict[str, Any]] = {}
    for week, category, count in rows:
        figures = weeks.setdefault(week, {"failures": 0})
        key = f"failures_{category if category in CATEGORIES else 'unknown'}"
        figures[key] = figures.get(key, 0) + count
        figures["failures"] += count
    return list(weeks.items())


def _facts(history: History) -> list[tuple[date, dict[str, Any]]]:
    rows = _rows(
        history,
        f"""SELECT week_of(occurred_at),
                  count(*) FILTER (type = 'DefectFiled'),
                  count(*) FILTER (type = 'HealProposed'),
                  count(*) FILTER (type = 'HealVerified'),
                  coalesce(sum(CASE WHEN json_type(detail, '$.tests') = 'ARRAY'
                                    THEN json_array_length(detail, '$.tests')
                                    ELSE try_cast(detail->>'$.tests' AS BIGINT) END)
                           FILTER (type = 'TestsGenerated'), 0),
                  coalesce(sum(try_cast(detail->>'$.wait_s' AS DOUBLE))
                           FILTER (type = 'RetryAttempted'), 0)
           FROM notable, bounds
           WHERE type IN ({", ".join(f"'{t}'" for t in _FACT_TYPES)})
             AND occurred_at >= lo AND occurred_at < hi
           GROUP BY 1""",
    )
    keys = ("defects_filed", "heals_proposed", "heals_applied", "tests_generated", "retry_wait_s")
    return [(row[0], dict(zip(keys, row[1:], strict=True))) for row in rows]


def _incidents(history: History) -> list[tuple[date, dict[str, Any]]]:
    history.sql(_INCIDENT_SPANS_SQL, [RESOLVED_AFTER_RUNS])
    rows = _rows(
        history,
        """WITH recurring AS (
               SELECT week_of(occurred_at) AS week, count(DISTINCT incident_id) AS n
               FROM sightings WHERE week_of(first_seen) < week_of(occurred_at) GROUP BY 1)
           SELECT w.week,
              count(i.incident_id) FILTER (week_of(i.first_seen) = w.week),
              any_value(coalesce(r.n, 0)),
              count(i.incident_id) FILTER (week_of(i.resolved_at) = w.week),
              count(i.incident_id) FILTER (coalesce(i.resolved_at >= week_end(w.week), true)),
              avg(epoch(i.resolved_at - i.first_seen) / 3600)
                  FILTER (week_of(i.resolved_at) = w.week)
           FROM weeks w LEFT JOIN incident_spans i ON i.first_seen < week_end(w.week)
                LEFT JOIN recurring r ON r.week = w.week
           GROUP BY w.week""",
    )
    keys = (
        "incidents_new",
        "incidents_recurring",
        "incidents_resolved",
        "incidents_open",
        "mttr_hours",
    )
    return [(row[0], dict(zip(keys, row[1:], strict=True))) for row in rows]


# The runs whose failures a decision explained, from every decision in the
# log (a slice of its files may hold a result but not its decision).
_EXPLAINED_SQL = "CREATE OR REPLACE TEMP TABLE explained_runs AS " + EXPLAINED.format(
    events="notable"
)

_SIGHTINGS_SQL = """
CREATE OR REPLACE TEMP TABLE sightings AS
WITH merged AS (
    SELECT incident_id, arg_max(detail->>'$.into', occurred_at) AS into_id
    FROM notable WHERE type = 'IncidentsMerged' GROUP BY 1)
SELECT coalesce(m.into_id, l.incident_id) AS incident_id, l.nodeid, l.run_id, l.occurred_at,
       min(l.occurred_at) OVER (PARTITION BY coalesce(m.into_id, l.incident_id)) AS first_seen
FROM notable l LEFT JOIN merged m USING (incident_id)
WHERE l.type = 'FailureLinked' AND l.incident_id IS NOT NULL
"""

# Each incident's span, and the start of the run its last sighting was in
# (its own time when the log has no such run): runs after it may resolve it.
_SPANS_SQL = """
CREATE OR REPLACE TEMP TABLE spans AS
SELECT s.incident_id, min(s.occurred_at) AS first_seen, max(s.occurred_at) AS last_seen,
       coalesce(arg_max(r.occurred_at, s.occurred_at), max(s.occurred_at)) AS watched_from
FROM sightings s LEFT JOIN notable r ON r.type = 'RunStarted' AND r.run_id = s.run_id
GROUP BY 1
"""

_WATCHED_SQL = """
CREATE OR REPLACE TEMP TABLE watched AS
SELECT t.nodeid, min(s.watched_from) AS after
FROM (SELECT DISTINCT incident_id, nodeid FROM sightings) t JOIN spans s USING (incident_id)
GROUP BY 1
"""

# A run resolves toward an incident when its tests ran in it and each passed
# or failed for another incident; the incident is resolved at the start of the
# $1-th such run (`testmem.memory.incidents`).
_INCIDENT_SPANS_SQL = """
CREATE OR REPLACE TEMP TABLE incident_spans AS
WITH clean AS (
    SELECT t.incident_id, a.run_id, any_value(r.occurred_at) AS started_at
    FROM (SELECT DISTINCT incident_id, nodeid FROM sightings) t
         JOIN spans s USING (incident_id)
         JOIN after_sighting a ON a.nodeid = t.nodeid AND a.outcome <> 'skipped'
         JOIN notable r ON r.type = 'RunStarted' AND r.run_id = a.run_id
         LEFT JOIN (SELECT DISTINCT incident_id, nodeid, run_id FROM sightings) o
                ON o.nodeid = a.nodeid AND o.run_id = a.run_id
               AND o.incident_id <> t.incident_id
    WHERE r.occurred_at > s.watched_from
    GROUP BY ALL HAVING bool_and(a.outcome IN ('passed', 'xfailed') OR o.incident_id IS NOT NULL)
), counted AS (
    SELECT *, row_number() OVER (PARTITION BY incident_id ORDER BY started_at, run_id) AS n
    FROM clean
)
SELECT s.incident_id, s.first_seen, s.last_seen, c.started_at AS resolved_at
FROM spans s LEFT JOIN counted c ON c.incident_id = s.incident_id AND c.n = $1
"""


def _http(history: History) -> list[tuple[date, dict[str, Any]]]:
    history.sql(_ROUTE_WEEKS_SQL)
    rows = _rows(
        history,
        """SELECT week, requests, errors / requests, p50_ms, p95_ms
           FROM route_weeks WHERE all_routes""",
    )
    keys = ("requests", "error_rate", "latency_p50_ms", "latency_p95_ms")
    return [(row[0], dict(zip(keys, row[1:], strict=True))) for row in rows]


_ROUTE_WEEKS_SQL = f"""
CREATE OR REPLACE TEMP TABLE route_weeks AS
WITH histogram AS (  -- per route, and (route NULL) for all routes together
    SELECT week, route, bucket, n, errors FROM latency
    UNION ALL
    SELECT week, NULL, bucket, sum(n), sum(errors) FROM latency GROUP BY week, bucket
), running AS (
    SELECT *, sum(n) OVER (PARTITION BY week, route ORDER BY bucket) AS upto,
           sum(n) OVER (PARTITION BY week, route) AS total
    FROM histogram
)
SELECT week, route, route IS NULL AS all_routes, any_value(total) AS requests,
       sum(errors) AS errors,
       exp(min(bucket) FILTER (upto >= 0.5 * total) / {_BUCKETS}) * 1000 AS p50_ms,
       exp(min(bucket) FILTER (upto >= 0.95 * total) / {_BUCKETS}) * 1000 AS p95_ms
FROM running GROUP BY week, route
"""


def _with_changes(period: Period, values: dict[date, dict[str, Any]]) -> list[WeekFigures]:
    weeks = []
    for start in period.starts:
        before = values[start - timedelta(weeks=1)]
        now = {k: _plain(v) for k, v in values[start].items()}
        if not now["tests"]:  # no tests that week: a pass rate would be invented
            now["pass_rate"] = None
        if not now["requests"]:
            now.update(error_rate=None, latency_p50_ms=None, latency_p95_ms=None)
        delta = {m.key: change(m, now[m.key], _plain(before.get(m.key))) for m in METRICS}
        weeks.append(WeekFigures(start, now, delta))
    return weeks


def _plain(value: Any) -> float | None:
    """DuckDB hands back Decimal/int/float/None; the report speaks float or None."""
    return None if value is None else round(float(value), 6)


def _flaky(history: History, period: Period) -> dict[str, list[dict[str, Any]]]:
    last = period.starts[-1]
    before = last - timedelta(weeks=1)
    rows = history.sql(
        """WITH scored AS (
               SELECT week, nodeid, runs, failed, rescued,
                      round(least(passed + rescued, unexplained) / nullif(runs, 0), 3) AS flakiness
               FROM test_weeks WHERE week IN (?, ?)),
           now AS (SELECT * FROM scored WHERE week = ?),
           before AS (SELECT * FROM scored WHERE week = ?)
           SELECT 'top' AS list, nodeid, runs, failed, rescued, flakiness FROM now
               WHERE flakiness > 0
           UNION ALL
           SELECT 'newly', nodeid, runs, failed, rescued, flakiness FROM now
               WHERE flakiness > 0 AND nodeid NOT IN (SELECT nodeid FROM before WHERE flakiness > 0)
           UNION ALL
           SELECT 'no_longer', b.nodeid, n.runs, n.failed, n.rescued, n.flakiness
               FROM before b JOIN now n USING (nodeid) WHERE b.flakiness > 0 AND n.flakiness = 0
           ORDER BY list, flakiness DESC, runs DESC, nodeid""",
        [last, before, last, before],
    ).dicts()
    lists: dict[str, list[dict[str, Any]]] = {"top": [], "newly": [], "no_longer": []}
    for row in rows:
        bucket = lists[row.pop("list")]
        if len(bucket) < TOP:
            bucket.append(row)
    return lists


def _slowest(history: History, period: Period) -> list[dict[str, Any]]:
    """The slowest tests of the latest week that ran tests, with their weekly means."""
    rows = history.sql(
        """WITH latest AS (SELECT max(week) AS week FROM test_weeks WHERE runs > 0),
                top AS (SELECT nodeid FROM test_weeks, latest
                        WHERE test_weeks.week = latest.week AND runs > 0
                        ORDER BY round(mean_s, 4) DESC, nodeid LIMIT ?)
           SELECT t.nodeid, list(t.week ORDER BY t.week), list(t.mean_s ORDER BY t.week)
           FROM test_weeks t JOIN top USING (nodeid) WHERE t.runs > 0
           GROUP BY t.nodeid""",
        [TOP],
    ).rows
    slowest = [_series_of(period, nodeid, weeks, means) for nodeid, weeks, means in rows]
    # Ties by name: equal means come out of the GROUP BY in any order, and
    # means summed in another order (another engine) differ in the last bits.
    return sorted(slowest, key=lambda s: (-(s["mean_s"] or 0), s["nodeid"]))


def _series_of(
    period: Period, nodeid: str, weeks: list[date], means: list[float]
) -> dict[str, Any]:
    """A test's weekly means; its change is its latest week against the week before that."""
    by_week = dict(zip(weeks, means, strict=True))
    values = [_round(by_week.get(w), 4) for w in _all(period)]
    last = max((i for i, v in enumerate(values) if v is not None), default=0)
    latest, before = values[last], values[last - 1] if last else None
    trend = None if not latest or not before else round((latest - before) / before, 3)
    return {"nodeid": nodeid, "mean_s": latest, "change": trend, "weekly_mean_s": values[1:]}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _routes(history: History, period: Period) -> list[dict[str, Any]]:
    rows = history.sql(
        """SELECT route, sum(requests) AS requests, list(week ORDER BY week) AS weeks,
                  list(requests ORDER BY week) AS counts,
                  list(errors / requests ORDER BY week) AS error_rates,
                  list(p50_ms ORDER BY week) AS p50, list(p95_ms ORDER BY week) AS p95
           FROM route_weeks WHERE week >= ? AND NOT all_routes
           GROUP BY route ORDER BY requests DESC, route""",
        [period.starts[0]],
    ).dicts()
    changes = _schema_changes(history, period)
    return [_route(period, row, changes.get(row["route"], [])) for row in rows]


def _route(period: Period, row: dict[str, Any], changes: list[dict[str, Any]]) -> dict[str, Any]:
    index = {w: i for i, w in enumerate(row["weeks"])}

    def weekly(name: str, digits: int) -> list[float | None]:
        return [_round(row[name][index[w]], digits) if w in index else None for w in period.starts]

    p95 = weekly("p95", 1)
    return {
        "route": row["route"],
        "requests": int(row["requests"]),
        "weekly_requests": [int(v or 0) for v in weekly("counts", 0)],
        "weekly_error_rate": weekly("error_rates", 4),
        "weekly_p50_ms": weekly("p50", 1),
        "weekly_p95_ms": p95,
        "schema_changes": changes,
    }


def _schema_changes(history: History, period: Period) -> dict[str, list[dict[str, Any]]]:
    rows = history.sql(
        """WITH keysets AS (
               SELECT week, route, list_sort(list_distinct(flatten(list(json_keys(body)))))
                   AS keys
               FROM bodies WHERE json_valid(body) GROUP BY ALL),
           paired AS (
               SELECT week, route, keys,
                      lag(keys) OVER (PARTITION BY route ORDER BY week) AS before
               FROM keysets)
           SELECT route, week, list_filter(keys, lambda k: NOT list_contains(before, k)) AS added,
                  list_filter(before, lambda k: NOT list_contains(keys, k)) AS removed
           FROM paired WHERE before IS NOT NULL AND keys <> before AND week >= ?
           ORDER BY route, week""",
        [period.starts[0]],
    ).rows
    changes: dict[str, list[dict[str, Any]]] = {}
    for route, week, added, removed in rows:
        changes.setdefault(route, []).append(
            {"week": week_label(week), "added": added, "removed": removed}
        )
    return changes


def _notes() -> list[str]:
    return [
        "Weeks are ISO weeks (Monday to Sunday) in the report's time zone.",
        "Pass rate: share of first attempts that passed; a pass on retry counts as rescued.",
        "Failures without a DecisionMade fact count as category 'unknown'.",
        "Flakiness: min(runs passed at once or on retry, runs failed first that triage did not"
        " put down to an API change or a regression) / runs in the week, as `testmem flaky`.",
        f"An incident is resolved once {RESOLVED_AFTER_RUNS} run(s) after its last sighting ran"
        " its tests and each passed or failed for another incident, as `testmem incidents`"
        " says; time to resolve counts"
        " from its first sighting.",
        "HTTP errors: transport errors and 5xx responses. Latency quantiles are within 2.5 %.",
        "Schema changes: the top-level keys of a route's JSON object responses changed.",
    ]
