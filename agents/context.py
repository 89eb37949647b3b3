"""Gathering the evidence for each failed test of a run, from the memory.

A few set-based DuckDB queries per run (not per test), so triage of a run
with a thousand failures stays fast.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from testmem.agents.analyzer import (
    TRANSIENT_STATUSES,
    ApiChange,
    Exchange,
    FailureContext,
    ServerError,
    TestRecord,
)

if TYPE_CHECKING:  # DuckDB stays out of the retry advisor's imports
    from testmem.memory.query import History

_FAILED_TESTS = """
    WITH attempts AS (
        SELECT nodeid, max(attempt) AS attempts, arg_max(outcome, attempt) AS final_outcome,
               bool_or(outcome IN ('failed', 'error')) AS failed
        FROM results WHERE run_id = $run GROUP BY nodeid
    ), deciding AS (
        -- The final attempt's failure decides, unless it met only a transient
        -- answer after an earlier attempt had failed for a lasting reason: a
        -- 503 on a retry does not explain a test that was failing already.
        SELECT f.nodeid, f.failure_id, f.phase, f.exception_type, f.message, f.exchange_ids,
               e.exchange_id, e.exchange_rule
        FROM failures f LEFT JOIN explaining e USING (failure_id)
        LEFT JOIN exchanges x ON x.exchange_id = e.exchange_id
        WHERE f.run_id = $run
        QUALIFY row_number() OVER (
            PARTITION BY f.nodeid
            ORDER BY coalesce(list_contains($transient, x.status), false), f.occurred_at DESC) = 1
    )
    SELECT f.*,
           coalesce(a.attempts, 1) AS attempts, coalesce(a.final_outcome, 'error') AS final_outcome
    FROM deciding f LEFT JOIN attempts a USING (nodeid)
    WHERE a.failed IS NULL OR a.failed
    ORDER BY f.nodeid"""

_EXCHANGES = """
    SELECT x.exchange_id, x.method, x.route, x.status, x.error, x.phase,
           json_extract_string(x.response_headers, '$."retry-after"') AS retry_after
    FROM exchanges x WHERE x.run_id = $run AND x.exchange_id IN (
        SELECT unnest(exchange_ids) FROM failures WHERE run_id = $run)"""

# Per incident (one cause, however worded): in how many earlier runs was it retried,
# and how often did that rescue the test?
_RETRY_LEARNING = """
    WITH retried AS (
        SELECT DISTINCT l.incident_id, r.run_id, r.nodeid
        FROM facts r JOIN facts l ON l.type = 'FailureLinked' AND l.failure_id = r.failure_id
        WHERE r.type = 'RetryAttempted' AND r.run_id <> $run
    ), final AS (
        SELECT run_id, nodeid, arg_max(outcome, attempt) AS final FROM results GROUP BY ALL
    )
    SELECT incident_id, count(*) AS tried, count(*) FILTER (WHERE final = 'passed') AS rescued
    FROM retried JOIN final USING (run_id, nodeid) GROUP BY incident_id"""

_FAILING_ROUTES = """
    SELECT DISTINCT route FROM exchanges
    WHERE run_id = $run AND status >= 500 AND status NOT IN (502, 503, 504)"""

# The run's server errors, a few answers of each request: what their bodies say.
_SERVER_ERRORS = """
    SELECT DISTINCT method, route, status,
           CASE WHEN response_body_encoding = 'utf-8' THEN response_body END AS body, url
    FROM exchanges WHERE run_id = $run AND status >= 500 AND status NOT IN (502, 503, 504)
    QUALIFY row_number() OVER (PARTITION BY method, route, status ORDER BY occurred_at) <= 20"""

_ANSWERS = """
    SELECT f.failure_id, x.method, x.route
    FROM (SELECT failure_id, unnest(exchange_ids) AS exchange_id FROM failures
          WHERE run_id = $run) f
    JOIN exchanges x USING (exchange_id)
    WHERE x.run_id = $run AND x.status BETWEEN 200 AND 299"""

# Incidents an earlier run classified as an API change (once intended, intended).
_INTENDED = """
    SELECT DISTINCT incident_id FROM facts
    WHERE type = 'DecisionMade' AND run_id <> $run AND incident_id IS NOT NULL
      AND detail->>'$.category' = 'outdated'"""

_INCIDENT_RUNS = """
    SELECT incident_id, count(DISTINCT run_id) AS runs FROM facts
    WHERE type = 'FailureLinked' GROUP BY incident_id"""


def failed_tests(history: History, run_id: str) -> list[dict[str, Any]]:
    """One row per test that failed at least once in the run (its last failure)."""
    params = {"run": run_id, "transient": sorted(TRANSIENT_STATUSES)}
    return history.sql(_FAILED_TESTS, params).dicts()


def answers(history: History, run_id: str) -> dict[str, list[tuple[str, str]]]:
    """For each failure of the run, the method and route of each successful
    answer its attempt got (what an API change may have changed)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for failure_id, method, route in history.sql(_ANSWERS, {"run": run_id}).rows:
        found.setdefault(failure_id, []).append((method, route))
    return found


def server_errors(history: History, run_id: str) -> list[ServerError]:
    """The server errors the run met, one per request and cause
    (`testmem.agents.analyzer.cause_key` reads them)."""
    found: dict[tuple[str, str, int, str], ServerError] = {}
    for method, route, status, body, url in history.sql(_SERVER_ERRORS, {"run": run_id}).rows:
        error = ServerError(method or "", route or "", status, body or "", url or "")
        found.setdefault((error.method, error.route, error.status, error.cause), error)
    return sorted(found.values(), key=lambda e: (e.route, e.method, e.status, e.cause))


def build_contexts(
    history: History,
    run_id: str,
    links: dict[str, dict[str, Any]],
    labels: dict[str, str],
    changes: list[ApiChange],
    window: int = 30,
) -> list[tuple[dict[str, Any], FailureContext]]:
    """The evidence for every failed test of ``run_id``.

    ``links`` maps failure ids to their FailureLinked row (incident_id,
    signature, ...); ``labels`` incident ids to human labels.
    """
    tests = failed_tests(history, run_id)
    exchanges = _exchanges(history, run_id)
    records = _records(history, run_id, [t["nodeid"] for t in tests], window)
    learning = {r[0]: (r[1], r[2]) for r in history.sql(_RETRY_LEARNING, {"run": run_id}).rows}
    incident_runs = dict(history.sql(_INCIDENT_RUNS).rows)
    failing_routes = frozenset(r[0] for r in history.sql(_FAILING_ROUTES, {"run": run_id}).rows)
    intended = {r[0] for r in history.sql(_INTENDED, {"run": run_id}).rows}
    contexts = []
    for test in tests:
        link = links.get(test["failure_id"])
        own = _own_exchanges(test, exchanges)
        incident_id = link["incident_id"] if link else None
        tried, rescued = learning.get(incident_id, (0, 0)) if incident_id else (0, 0)
        context = FailureContext(
            nodeid=test["nodeid"],
            phase=test["phase"] or "call",
            exception_type=test["exception_type"] or "",
            message=test["message"] or "",
            exchanges=own,
            exchange=exchanges.get(test["exchange_id"] or ""),
            exchange_rule=test["exchange_rule"],
            attempts=test["attempts"],
            final_outcome=test["final_outcome"],
            history=records.get(test["nodeid"], TestRecord()),
            incident_id=incident_id,
            incident_runs=int(incident_runs.get(incident_id, 1)) if incident_id else 1,
            label=labels.get(incident_id) if incident_id else None,
            retries_tried=tried,
            retries_rescued=rescued,
            changes=changes,
            failing_routes=failing_routes,
            intended_before=incident_id in intended,
        )
        contexts.append((test, context))
    return contexts


def _own_exchanges(test: dict[str, Any], exchanges: dict[str, Exchange]) -> list[Exchange]:
    """The exchanges of the failing attempt's own phase: a fixture's login in
    setup is no evidence about a failure of the test's body, unless the body
    made no request and asserts on what its fixtures fetched (rule ``fixture``)."""
    phase = "setup" if test["exchange_rule"] == "fixture" else test["phase"] or "call"
    found = [exchanges[i] for i in test["exchange_ids"] or [] if i in exchanges]
    return [x for x in found if x.phase == phase]


def _exchanges(history: History, run_id: str) -> dict[str, Exchange]:
    rows = history.sql(_EXCHANGES, {"run": run_id}).dicts()
    return {
        r["exchange_id"]: Exchange(
            r["method"], r["route"], r["status"], r["error"], r["retry_after"], r["phase"] or "call"
        )
        for r in rows
    }


def _records(
    history: History, run_id: str, nodeids: list[str], window: int
) -> dict[str, TestRecord]:
    if not nodeids:
        return {}
    rows = history.test_records(window, nodeids, exclude_run=run_id).dicts()
    return {r["nodeid"]: TestRecord.of(r) for r in rows}


def exchange_from_capture(captured: dict[str, Any]) -> Exchange:
    """An analyzer `Exchange` from a live capture (`testmem.memory.transport.Tap`)."""
    headers = json.loads(captured.get("response_headers") or "{}")
    return Exchange(
        captured["method"],
        captured["route"],
        captured.get("status"),
        captured.get("error"),
        headers.get("retry-after"),
    )
