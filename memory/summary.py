"""One run in Markdown, for a CI job's summary or a PR comment: what failed,
what was retried (and rescued), incidents new and recurring, heals proposed,
defects filed or updated.

Bounded: each section lists at most `MAX_ROWS` rows and the whole stays under
`MAX_CHARS` (GitHub refuses comments over 65,536 characters). Every value
from a test, an API or a user is escaped for Markdown. `StepSummary` appends
it to ``$GITHUB_STEP_SUMMARY`` when a recorded run ends, if that is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from testmem.memory.markup import md_text

if TYPE_CHECKING:
    from testmem.memory.query import History
    from testmem.memory.store import Store

ENV_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
MAX_ROWS = 15
MAX_CHARS = 60_000
CELL_CHARS = 160

_FINAL = """
    WITH final AS (
        SELECT nodeid, arg_max(outcome, attempt) AS outcome, max(attempt) AS attempts
        FROM results WHERE run_id = $run GROUP BY nodeid)
    SELECT f.nodeid, f.outcome, f.attempts,
           coalesce(x.assertion, split_part(x.message, chr(10), 1)) AS message,
           l.incident_id, l.detail->>'$.is_new' = 'true' AS is_new
    FROM final f
    LEFT JOIN failures x ON x.run_id = $run AND x.nodeid = f.nodeid AND x.attempt = f.attempts
    LEFT JOIN facts l ON l.type = 'FailureLinked' AND l.failure_id = x.failure_id
    WHERE {where}
    QUALIFY row_number() OVER (PARTITION BY f.nodeid ORDER BY x.occurred_at) = 1
    ORDER BY f.nodeid"""

_INCIDENTS = """
    SELECT incident_id, bool_or(detail->>'$.is_new' = 'true') AS is_new,
           count(*) AS failures, count(DISTINCT nodeid) AS tests,
           any_value(detail->>'$.exception_type') AS exception_type
    FROM facts WHERE type = 'FailureLinked' AND run_id = $run
    GROUP BY incident_id ORDER BY is_new DESC, failures DESC, incident_id"""

_HEALS = """
    SELECT detail->>'$.heal_id' AS heal, nodeid, detail->>'$.change' AS change
    FROM facts WHERE type = 'HealProposed' AND run_id = $run ORDER BY occurred_at"""

_DEFECTS = """
    SELECT CASE type WHEN 'DefectFiled' THEN 'filed' ELSE 'updated' END AS what,
           detail->>'$.defect_id' AS defect, incident_id,
           detail->>'$.occurrences' AS occurrences,
           coalesce(detail->>'$.reference', '') AS reference,
           coalesce(detail->>'$.title', '') AS title
    FROM facts WHERE type IN ('DefectFiled', 'DefectUpdated') AND run_id = $run
    ORDER BY occurred_at"""


def run_markdown(history: History, run: str | None = None) -> str:
    """The summary of ``run`` (id, unique prefix, or None / "latest")."""
    from testmem.memory.quarantine import quarantined

    run_id = history.resolve_run(run)
    facts = history.run_summary(run_id)
    held = quarantined(history.store)

    def rows(sql: str) -> list[dict[str, Any]]:
        return history.sql(sql, {"run": run_id}).dicts()

    failed = rows(_FINAL.format(where="f.outcome IN ('failed', 'error')"))
    retried = rows(_FINAL.format(where="f.attempts > 1"))
    sections = [
        _headline(facts),
        _failed(failed, held),
        _retried(retried),
        _incidents(rows(_INCIDENTS)),
        _heals(rows(_HEALS)),
        _defects(rows(_DEFECTS)),
    ]
    return _bounded("\n\n".join(s for s in sections if s) + "\n")


def _headline(run: dict[str, Any]) -> str:
    counts = ", ".join(
        f"{run[k]} {k}" for k in ("passed", "failed", "errors", "skipped") if run.get(k)
    )
    where = " on ".join(md(str(v)) for v in (run.get("build"), run.get("branch")) if v)
    status = "passed" if run.get("exit_status") == 0 else "failed"
    return (
        f"### testmem: run {md(run['run_id'][:13])} {status}\n\n"
        f"{run.get('tests') or 0} tests ({counts or 'none ran'})"
        + (f", build {where}" if where else "")
        + f", {run.get('exchanges', 0)} HTTP exchanges recorded."
    )


def _failed(rows: list[dict[str, Any]], held: dict[str, Any]) -> str:
    def row(r: dict[str, Any]) -> list[str]:
        outcome = r["outcome"] + (" (quarantined)" if r["nodeid"] in held else "")
        return [r["nodeid"], outcome, r["message"] or "", _incident(r)]

    return _section("Failed", ["test", "outcome", "message", "incident"], rows, row)


def _incident(r: dict[str, Any]) -> str:
    if not r.get("incident_id"):
        return ""
    return f"{r['incident_id']} ({'new' if r['is_new'] else 'recurring'})"


def _retried(rows: list[dict[str, Any]]) -> str:
    def row(r: dict[str, Any]) -> list[str]:
        rescued = r["outcome"] in ("passed", "xpassed")
        return [r["nodeid"], str(r["attempts"]), "rescued" if rescued else f"still {r['outcome']}"]

    return _section("Retried", ["test", "attempts", "result"], rows, row)


def _incidents(rows: list[dict[str, Any]]) -> str:
    def row(r: dict[str, Any]) -> list[str]:
        kind = "new" if r["is_new"] else "recurring"
        return [r["incident_id"], kind, str(r["failures"]), str(r["tests"]), r["exception_type"]]

    columns = ["incident", "", "failures", "tests", "exception"]
    return _section("Incidents", columns, rows, row)


def _heals(rows: list[dict[str, Any]]) -> str:
    def row(r: dict[str, Any]) -> list[str]:
        return [r["heal"] or "", r["nodeid"] or "", r["change"] or ""]

    return _section("Heals proposed", ["heal", "test", "change"], rows, row)


def _defects(rows: list[dict[str, Any]]) -> str:
    def row(r: dict[str, Any]) -> list[str]:
        return [r["defect"], r["what"], r["incident_id"] or "", r["reference"], r["title"]]

    columns = ["defect", "", "incident", "reference", "title"]
    return _section("Defects filed or updated", columns, rows, row)


def _section(
    title: str,
    columns: Sequence[str],
    rows: list[dict[str, Any]],
    cells: Callable[[dict[str, Any]], list[str]],
) -> str:
    if not rows:
        return ""
    lines = [f"#### {title} ({len(rows)})", "", _line(columns), _line(["---"] * len(columns))]
    lines += [_line([md(str(c)) for c in cells(r)]) for r in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines += [
            "",
            f"… and {len(rows) - MAX_ROWS} more (`testmem failures`, `testmem incidents`)",
        ]
    return "\n".join(lines)


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _bounded(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    cut = text.rfind("\n", 0, MAX_CHARS - 80)
    return text[:cut] + "\n\n… (summary cut to fit a comment; `testmem summary` has it all)\n"


_BLANKS = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def md(text: str) -> str:
    """One line of plain text in Markdown (`markup.md_text`: no emphasis, link,
    code, HTML or table pipe), control characters as spaces, capped at
    `CELL_CHARS`."""
    flat = _BLANKS.sub(" ", text).strip()
    if len(flat) > CELL_CHARS:
        flat = flat[: CELL_CHARS - 1] + "…"
    return md_text(flat)


class StepSummary:
    """Appends the run's summary to ``$GITHUB_STEP_SUMMARY`` once the run is
    in the store (after triage, so its incidents, heals and defects are in).
    A failure to write is reported by the recorder, never fails the run."""

    @pytest.hookimpl(trylast=True, optionalhook=True)
    def pytest_testmem_run_recorded(self, store: Store, run_id: str) -> None:
        target = os.environ.get(ENV_STEP_SUMMARY)
        if not target:
            return
        from testmem.memory.errors import TestmemError
        from testmem.memory.query import History

        text = run_markdown(History(store), run_id)
        try:
            with Path(target).open("a", encoding="utf-8") as out:
                out.write(text)
        except OSError as exc:
            raise TestmemError(f"${ENV_STEP_SUMMARY} not written: {exc}") from exc
