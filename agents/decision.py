"""What triage decided: a `Decision` per failed test, and a run's
`TriageResult` with its short account for the terminal.

Kept apart from `testmem.agents.triage` (how it decides, which imports the
analyzer, DuckDB's history and the defect agent): pytest's process reads a
result here, from the session's triage child or for a run with nothing to
decide, without importing any of that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from testmem.memory.markup import terminal

SUMMARY_GROUPS = 20  # lines of the terminal summary, one per incident ...
SUMMARY_TESTS = 3  # ... each naming this many of its tests


@dataclass(frozen=True)
class Decision:
    run_id: str
    nodeid: str
    failure_id: str
    action: str
    category: str
    reason: str
    confidence: float
    incident_id: str | None
    incident_is_new: bool | None
    score: float | None
    attempts: int
    final_outcome: str
    evidence: dict[str, Any] = field(default_factory=dict)
    rule: str = ""  # the analyzer's rule that decided
    exchange_id: str | None = None  # the exchange the decision rests on ...
    exchange_rule: str | None = None  # ... and why that one (named, error, last, setup, fixture)
    outcome: str | None = None  # what came of the action: heal id, defect id, or why not


@dataclass
class TriageResult:
    run_id: str
    decisions: list[Decision]
    skipped: int = 0  # tests already decided earlier
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for d in self.decisions:
            counts[d.action] = counts.get(d.action, 0) + 1
        return counts

    def summary_lines(self, groups: int = SUMMARY_GROUPS) -> list[str]:
        """A short account, for pytest's terminal summary and the CLI: one line
        per incident (and action), with its count and a few of its tests, so
        a thousand failures take a screen, not a scroll."""
        if not self.decisions:
            return ["testmem triage: no new failures to decide"]
        counts = ", ".join(f"{n} {action}" for action, n in sorted(self.summary().items()))
        lines = [f"testmem triage: {len(self.decisions)} failed tests → {counts}"]
        grouped = _by_incident(self.decisions)
        lines += [_group_line(same) for same in grouped[:groups]]
        if len(grouped) > groups:
            lines.append(f"  ... {len(grouped) - groups} more incidents: `testmem decisions`")
        lines += [f"  warning: {terminal(p)}" for p in self.problems[:3]]
        return lines


def _by_incident(decisions: list[Decision]) -> list[list[Decision]]:
    """Decisions grouped by incident, action and outcome, the largest group first."""
    groups: dict[tuple[Any, ...], list[Decision]] = {}
    for d in decisions:
        groups.setdefault((d.incident_id, d.action, d.category, d.outcome), []).append(d)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0].incident_id or "", g[0].nodeid))


def _group_line(same: list[Decision]) -> str:
    first = same[0]
    new = " (new)" if first.incident_is_new else ""
    incident = f"{first.incident_id}{new}" if first.incident_id else "-"
    outcome = f" → {first.outcome}" if first.outcome else ""
    shown = ", ".join(d.nodeid for d in same[:SUMMARY_TESTS])
    more = f" +{len(same) - SUMMARY_TESTS} more" if len(same) > SUMMARY_TESTS else ""
    tests = shown if len(same) == 1 else f"{len(same)} tests: {shown}{more}"
    line = f"  {first.action:<8} {first.category:<10} {tests}  [{incident}] {first.reason}{outcome}"
    return terminal(line)
