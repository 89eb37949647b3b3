"""The analyzer: from what the memory knows of a failure, a category and an action.

Pure judgment, no I/O: `context.py` gathers the evidence, this module weighs
it. Rules are ordered from the strongest evidence to the weakest, and every
verdict says which rule fired and what it saw, so a decision can be explained
and, when wrong, corrected with `testmem label`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from testmem.agents.schema import ADDED, REMOVED, STATUS_CHANGED, ApiChange
from testmem.memory.causes import server_error_cause

TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
TRANSIENT_ERRORS = (
    "Timeout",
    "ConnectError",
    "ConnectionReset",
    "ConnectionRefused",
    "RemoteProtocolError",
    "ReadError",
    "WriteError",
    "NetworkError",
)
_WHOLE_DICT = re.compile(r"^assert \{.*\} == \{.*\}$", re.MULTILINE)
LABEL_VERDICTS = {
    "flaky": ("retry", "flaky"),
    "infra": ("retry", "transient"),
    "test-outdated": ("heal", "outdated"),
    "product-bug": ("escalate", "regression"),
}


@dataclass(frozen=True)
class Exchange:
    method: str
    route: str
    status: int | None
    error: str | None = None
    retry_after: str | None = None
    phase: str = "call"


@dataclass(frozen=True)
class ServerError:
    """A server error a run met: its request and what its body said."""

    method: str
    route: str
    status: int
    body: str = ""
    url: str = ""

    @property
    def cause(self) -> str:
        return server_error_cause(self.method, self.route, self.status, self.body, self.url)


@dataclass(frozen=True)
class TestRecord:
    """The test's past, over a window of recent runs (this run excluded)."""

    __test__ = False
    runs: int = 0
    failed_runs: int = 0
    flip_rate: float = 0.0
    retry_pass_rate: float = 0.0

    @classmethod
    def of(cls, row: dict[str, Any]) -> TestRecord:
        """From a row of `History.test_records`."""
        rates = float(row["flip_rate"]), float(row["retry_pass_rate"])
        return cls(row["runs"], row["failed_runs"], *rates)


@dataclass(frozen=True)
class FailureContext:
    nodeid: str
    phase: str
    exception_type: str
    message: str
    exchanges: list[Exchange] = field(default_factory=list)  # the final attempt's own phase
    exchange: Exchange | None = None  # the one that explains the failure ...
    exchange_rule: str | None = None  # ... and the rule that chose it (memory/blame.py)
    attempts: int = 1
    final_outcome: str = "failed"
    history: TestRecord = TestRecord()
    incident_id: str | None = None
    incident_runs: int = 0  # distinct runs the incident was seen in, this one included
    label: str | None = None
    retries_tried: int = 0  # past runs where this incident was retried ...
    retries_rescued: int = 0  # ... and the retry passed
    changes: list[ApiChange] = field(default_factory=list)
    failing_routes: frozenset[str] = frozenset()  # routes answering 500s in this run
    intended_before: bool = False  # an earlier run classified the incident an API change


@dataclass(frozen=True)
class Verdict:
    action: str  # retry | heal | escalate | none
    category: str  # transient | flaky | outdated | regression | unknown
    reason: str
    confidence: float
    evidence: dict[str, Any] = field(default_factory=dict)
    rule: str = "waiting"  # which rule of `classify` decided


def classify(ctx: FailureContext, heal_after: int = 2) -> Verdict:
    """Weigh the evidence, strongest first; the first rule that fires decides.

    A test is healed only once its API change held in ``heal_after`` runs.
    """
    outdated = partial(_outdated, heal_after=heal_after)
    kept = partial(_kept, heal_after=heal_after)
    for rule in (_labelled, kept, _transient, _rescued, outdated, _flaky, _regression):
        verdict = rule(ctx)
        if verdict is not None:
            return replace(verdict, rule=_rule_name(rule))
    return Verdict(
        "none",
        "unknown",
        "first sighting with no explaining evidence; waiting for it to recur",
        0.4,
    )


def _rule_name(rule: Any) -> str:
    return (rule.func if isinstance(rule, partial) else rule).__name__.strip("_")


def _labelled(ctx: FailureContext) -> Verdict | None:
    if ctx.label not in LABEL_VERDICTS:
        return None
    action, category = LABEL_VERDICTS[ctx.label]
    if action == "heal" and not _touching_changes(ctx):
        action = "none"  # labelled outdated, but no API change to heal from
    return Verdict(
        action, category, f"incident labelled {ctx.label} by a person", 0.99, {"label": ctx.label}
    )


def _kept(ctx: FailureContext, heal_after: int) -> Verdict | None:
    """Once intended, intended: an incident an earlier run classified as an API
    change keeps that class while the change still holds and the failure
    touches it. A 503 or a failing neighbour in a later build is noise over
    the same cause, not a new one (its own failures go to incidents of their own)."""
    touching = _touching_changes(ctx) if ctx.intended_before else []
    return _healing(touching[0], heal_after) if touching else None


def _transient(ctx: FailureContext) -> Verdict | None:
    signals = _transient_signals(ctx)
    if not signals:
        return None
    evidence: dict[str, Any] = {"signals": signals}
    if ctx.retries_tried >= 3 and ctx.retries_rescued / ctx.retries_tried < 0.2:
        evidence.update(retries_tried=ctx.retries_tried, retries_rescued=ctx.retries_rescued)
        rescued = f"{ctx.retries_rescued}/{ctx.retries_tried}"
        reason = f"looks transient ({signals[0]}) but retries rescued only {rescued} before"
        return Verdict("escalate", "regression", reason, 0.7, evidence)
    # Persistent only while no retry ever rescued it: an intermittent 503 that meets
    # one test on every attempt now and then, across builds, is still intermittent.
    persistent = ctx.incident_runs >= 3 and not ctx.retries_rescued
    if ctx.attempts > 1 and ctx.final_outcome == "failed" and persistent:
        return Verdict(
            "escalate",
            "regression",
            f"{signals[0]} persists across retries and runs",
            0.7,
            evidence,
        )
    return Verdict("retry", "transient", f"transient: {signals[0]}", 0.9, evidence)


def _transient_signals(ctx: FailureContext) -> list[str]:
    signals = [
        f"HTTP {x.status} on {x.method} {x.route}"
        for x in ctx.exchanges
        if x.status in TRANSIENT_STATUSES
    ]
    signals += [
        f"{x.error.split(':')[0]} on {x.method} {x.route}"
        for x in ctx.exchanges
        if x.error and _is_transient_error(x.error)
    ]
    if _is_transient_error(ctx.exception_type):
        signals.append(ctx.exception_type)
    return signals


def _is_transient_error(text: str) -> bool:
    return any(word in text for word in TRANSIENT_ERRORS)


def _rescued(ctx: FailureContext) -> Verdict | None:
    if ctx.attempts > 1 and ctx.final_outcome == "passed":
        return Verdict("retry", "flaky", "failed, then passed on retry in this run", 0.85)
    return None


def _flaky(ctx: FailureContext) -> Verdict | None:
    """Flaky by history: it flipped back and forth, or retries rescued it before.
    One flip is not flakiness: a test that broke once and stays broken flipped once."""
    h = ctx.history
    flips = round(h.flip_rate * max(h.runs - 1, 0))
    if _server_errors(ctx) or h.runs < 3 or not (h.retry_pass_rate > 0 or flips >= 2):
        return None
    evidence = {"runs": h.runs, "flips": flips, "retry_pass_rate": h.retry_pass_rate}
    reason = (
        f"flaky by history: {flips} flips in {h.runs} runs, "
        f"passed on retry in {h.retry_pass_rate:.0%} of runs"
    )
    return Verdict("retry", "flaky", reason, 0.75, evidence)


def _outdated(ctx: FailureContext, heal_after: int) -> Verdict | None:
    if _server_errors(ctx):
        return None  # never heal a test against a server that is failing
    touching = _touching_changes(ctx)
    if not touching:
        return None
    change = touching[0]
    evidence = {"change": change.as_dict(), "observations": change.observations}
    broken = sorted(r for r in ctx.failing_routes if _resource(r) == _resource(change.route))
    if broken and change.kind == REMOVED:
        # A field that vanished while its resource answers 500s is a symptom, not a design;
        # a rename, a new field or a new status is a design whatever else is failing.
        reason = f"API changed ({change.describe()}) while {broken[0]} answers server errors"
        return Verdict(
            "escalate", "regression", reason, 0.7, {**evidence, "failing_routes": broken}
        )
    return _healing(change, heal_after)


def _healing(change: ApiChange, heal_after: int) -> Verdict:
    """Heal once the change has settled, else wait for it."""
    evidence = {"change": change.as_dict(), "observations": change.observations}
    if not change.settled(heal_after):
        reason = f"API changed ({change.describe()}); seen in {change.observations} run(s), "
        return Verdict("none", "outdated", reason + f"healing after {heal_after}", 0.6, evidence)
    return Verdict("heal", "outdated", f"API changed: {change.describe()}", 0.85, evidence)


def _touching_changes(ctx: FailureContext) -> list[ApiChange]:
    routes = {(x.method, x.route) for x in ctx.exchanges}
    return [c for c in ctx.changes if (c.method, c.route) in routes and touches(c, ctx.message)]


def _resource(route: str) -> str:
    """The collection a route belongs to, its last name before an id:
    ``/inventory/{id}`` → ``inventory``, ``/api/v1/articles/{slug}`` → ``articles``."""
    names = [part for part in route.strip("/").split("/") if part and "{" not in part]
    return names[-1] if names else ""


def touches(change: ApiChange, text: str) -> bool:
    """Does the failure text mention what changed (the old field, the old status)?
    A new field breaks a whole-dict equality without being named: pytest's diff
    of nested dicts hides it."""
    if change.kind == STATUS_CHANGED:
        return bool(change.old and change.new) and f"{change.new} == {change.old}" in text
    if change.kind == ADDED and _WHOLE_DICT.match(text):
        return True
    key = change.key
    return bool(key) and any(q in text for q in (f"'{key}'", f'"{key}"'))


def cause_key(
    changes: list[ApiChange],
    failure: dict[str, Any],
    answers: Iterable[tuple[str, str]] = (),
    server_errors: Iterable[ServerError] = (),
) -> str | None:
    """The name of a failure's cause when its exchanges name one, whatever the
    failure's wording (a missing key, a whole-dict diff, a status check).
    Failures of one cause join one incident (`testmem.memory.matching.Matcher.link_run`).

    Strongest first, as a final attempt shows them: a server error on the
    exchange that explains it, named by what its body says
    (`testmem.memory.causes`); an API change detected on that route, or on the
    route of another successful answer of the failure (``answers``: method and
    route), that the failure touches; a rate limit or an unavailable answer on
    the explaining route. A field gone while its resource answers server
    errors in the run (``server_errors``) is a symptom of that error, as
    `_outdated` judges it: its cause is the error's.
    """
    method, route = failure.get("method"), failure.get("route")
    status = failure.get("status") or 0
    if status >= 500 and status not in TRANSIENT_STATUSES:
        return server_error_cause(method, route, status, _body(failure), failure.get("url") or "")
    message = failure.get("message") or ""
    explaining = [(method, route)] if 0 < status < 400 else []
    for where in [*explaining, *answers]:
        for c in changes:
            if (c.method, c.route) == where and touches(c, message):
                behind = _error_behind(c, server_errors)
                if behind:
                    return behind.cause
                return f"{c.method} {c.route}: {c.kind} {c.path}>{c.new_path} {c.old}>{c.new}"
    if status in TRANSIENT_STATUSES:
        return f"{method} {route} answers {status}"
    return None


def _body(failure: dict[str, Any]) -> str:
    """The explaining answer's body as text (a binary one says nothing here)."""
    if failure.get("response_body_encoding") not in (None, "utf-8"):
        return ""
    return str(failure.get("response_body") or "")


def _error_behind(change: ApiChange, errors: Iterable[ServerError]) -> ServerError | None:
    """The server error a removed field is a symptom of: one on the field's
    resource, the one whose body names the field first."""
    if change.kind != REMOVED:
        return None
    mine = [e for e in errors if _resource(e.route) == _resource(change.route)]
    key = change.key or ""
    named = re.compile(rf"\b{re.escape(key)}\b") if key else None

    def order(e: ServerError) -> tuple[bool, str, str, int]:
        return (not (named and named.search(e.body)), e.route, e.method, e.status)

    return min(mine, key=order, default=None)


def _regression(ctx: FailureContext) -> Verdict | None:
    errors = _server_errors(ctx)
    if errors:
        return Verdict(
            "escalate",
            "regression",
            f"server error: {errors[0]}",
            0.85,
            {"server_errors": errors, "error_routes": sorted({x.route for x in _errors(ctx)})},
        )
    reproduced = ctx.attempts > 1 and ctx.final_outcome in ("failed", "error")
    if reproduced or ctx.incident_runs >= 2:
        why = "failed on every retry" if reproduced else f"recurred in {ctx.incident_runs} runs"
        return Verdict(
            "escalate",
            "regression",
            f"reproducible and unexplained: {why}",
            0.75,
            {"incident_runs": ctx.incident_runs},
        )
    return None


def _server_errors(ctx: FailureContext) -> list[str]:
    return [f"HTTP {x.status} on {x.method} {x.route}" for x in _errors(ctx)]


def _errors(ctx: FailureContext) -> list[Exchange]:
    """Exchanges answered with a server error that is not a transient one."""
    return [
        x
        for x in ctx.exchanges
        if x.status is not None and x.status >= 500 and x.status not in TRANSIENT_STATUSES
    ]
