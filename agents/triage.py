"""Triage: for every failed test of a run, decide — then hand the decision on.

    link failures to incidents (testmem.memory.incidents.Matcher)
      → gather evidence (testmem.agents.context) → classify (testmem.agents.analyzer)
      → heal (testmem.agents.healer) | escalate (testmem.agents.defects) → DecisionMade facts

Decisions are events too, so triage is idempotent: a test already decided in
a run is not decided again unless ``force`` is set. The ``DecisionMade`` facts
are written *after* the hand-offs, which are idempotent themselves (one defect
per incident, one proposal per patch), so a triage killed half-way is finished
by the next one instead of leaving decisions whose defect was never filed.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from testmem.agents.analyzer import FailureContext, Verdict, cause_key, classify
from testmem.agents.context import answers, build_contexts, server_errors
from testmem.agents.decision import Decision, TriageResult
from testmem.agents.defects import DefectWarning
from testmem.agents.schema import ApiChange, detect_changes
from testmem.memory.events import Fact
from testmem.memory.matching import Known
from testmem.memory.query import History, Rows
from testmem.memory.store import Store

if TYPE_CHECKING:
    from testmem.agents.defects import DefectAgent
    from testmem.memory.incidents import Incident, Incidents

TRIAGE_LOCK_S = 600.0  # how long a triage waits for another triage of the same run


class Triage:
    def __init__(
        self,
        store: Store,
        *,
        heal_after: int = 2,
        heal: bool = True,
        escalate: bool = True,
        decide: Callable[[FailureContext], Verdict] | None = None,
    ):
        self.store = store
        self.heal_after = heal_after
        self.heal = heal
        self.escalate = escalate
        # Who decides: the rules (`classify`) unless, e.g., an AutoGen analyzer agent is given.
        self.decide = decide or partial(classify, heal_after=heal_after)

    def run(self, run: str | None = None, *, force: bool = False) -> TriageResult:
        recorded = History(self.store)  # the run as recorded: its failures and exchanges
        run_id = recorded.resolve_run(run)
        # One triage of a run at a time (the session's and a manual one): the
        # second then finds the first one's decisions and does not redo them.
        name = hashlib.sha256(run_id.encode()).hexdigest()[:16]  # ids never become raw paths
        with self.store.lock(f"triage-{name}", TRIAGE_LOCK_S, f"run {run_id} is being triaged"):
            return self._run(run_id, force, recorded)

    def _run(self, run_id: str, force: bool, recorded: History) -> TriageResult:
        problems: list[str] = []
        changes = _changes(recorded, problems)
        known = self._link(run_id, changes, problems, recorded)
        recorded.close()
        history = History(self.store)  # a fresh snapshot that holds the links
        links = _links(history, run_id)
        decided = set() if force else _decided(history, run_id)
        contexts = build_contexts(history, run_id, links, _labels(known, links), changes)
        decisions = []
        for test, context in contexts:
            if test["nodeid"] in decided:
                continue
            verdict = self.decide(context)
            decisions.append(_decision(run_id, test, links.get(test["failure_id"]), verdict))
        with _as_problems(problems, DefectWarning) as caught:
            decisions = self._act(history, decisions, changes, problems)
            sink_failed = any(issubclass(w.category, DefectWarning) for w in caught)
            if self.escalate and not sink_failed:  # a sink that just failed waits for later
                _attempt(problems, partial(_flush_outbox, self.store))
        # Last: a decision in the log means its hand-off was made or waits in the outbox.
        self.store.events.append([_fact(d) for d in decisions])
        return TriageResult(run_id, decisions, len(contexts) - len(decisions), problems)

    def _link(
        self, run_id: str, changes: list[ApiChange], problems: list[str], recorded: History
    ) -> Known:
        """Link the run's failures; what is known then (signatures, merges, labels).
        One API change's or server error's failures join one incident, whatever
        their wording (`cause_key`)."""
        from testmem.memory.matching import Matcher

        answered = answers(recorded, run_id)
        errors = server_errors(recorded, run_id)

        def cause(failure: dict[str, Any]) -> str | None:
            return cause_key(changes, failure, answered.get(failure["failure_id"], ()), errors)

        with _as_problems(problems, Warning):  # e.g. the index unavailable: signatures only
            matcher = Matcher(self.store)
            matcher.link_run(run_id, cause)
        return matcher.known

    def _act(
        self,
        history: History,
        decisions: list[Decision],
        changes: list[ApiChange],
        problems: list[str],
    ) -> list[Decision]:
        """Hand heals to the healer and escalations to the defect agent (once
        per incident, all in one of its sessions)."""
        defects: dict[str, str | None] = {}  # incident id -> defect id, one per incident
        causes = _causes(decisions)
        incident = _incident_lookup(self.store, history)
        result = []
        with ExitStack() as held:
            agent: DefectAgent | None = None
            for d in decisions:
                outcome = None
                if d.action == "heal" and self.heal:
                    outcome = _attempt(problems, partial(_propose_heal, self.store, history, d))
                elif d.action == "escalate" and self.escalate and d.incident_id:
                    agent = agent or _defect_session(self.store, held, problems)
                    behind = _cause_of(d, d.incident_id, causes)
                    if behind not in defects and agent is not None:
                        cause = replace(d, incident_id=behind)
                        defects[behind] = _attempt(
                            problems, partial(_file_defect, agent, incident, cause)
                        )
                    outcome = defects.get(behind)
                result.append(replace(d, outcome=outcome))
        return result


def _causes(decisions: list[Decision]) -> dict[str, str]:
    """Route -> the incident of a server error on it, among this run's escalations."""
    return {
        route: d.incident_id
        for d in decisions
        if d.action == "escalate" and d.incident_id
        for route in d.evidence.get("error_routes", [])
    }


def _cause_of(decision: Decision, incident: str, causes: dict[str, str]) -> str:
    """The incident to file a defect under: a symptom (a field gone while its
    resource answers 500s) goes to the defect of the server error behind it."""
    behind = [causes[r] for r in decision.evidence.get("failing_routes", []) if r in causes]
    return behind[0] if behind else incident


def _attempt(problems: list[str], action: Callable[[], str | None]) -> str | None:
    """Run one hand-off; its failure is a problem to report, not a crash of triage."""
    try:
        return action()
    except Exception as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
        return None


@contextmanager
def _as_problems(problems: list[str], category: type[Warning]) -> Iterator[list[Any]]:
    """Warnings of ``category`` become problems, one summary line each, instead of
    a warning per attempt in pytest's warnings summary; other warnings pass on."""
    caught: list[Any] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", category)
            yield caught
    finally:
        for w in caught:
            if issubclass(w.category, category):
                problems.append(str(w.message))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _propose_heal(store: Store, history: History, decision: Decision) -> str:
    from testmem.agents.healer import NoHeal, propose_heal_for

    heal = propose_heal_for(store, history, decision.run_id, decision.nodeid, decision.incident_id)
    return f"not healed: {heal.reason}" if isinstance(heal, NoHeal) else heal.heal_id


def _incident_lookup(store: Store, history: History) -> Callable[[str], Incident]:
    """Incidents by id, from the projection built once (from ``history``), when first asked."""
    built: list[Incidents] = []

    def get(incident_id: str) -> Incident:
        from testmem.memory.incidents import Incidents

        if not built:
            built.append(Incidents(store, history=history))
        return built[0].get(incident_id)

    return get


def _defect_session(store: Store, held: ExitStack, problems: list[str]) -> DefectAgent | None:
    """The defect agent, in a session held until ``held`` closes; None (and
    a problem said) if it cannot start, e.g. a sink configured wrong."""
    from testmem.agents.defects import DefectAgent

    try:
        agent = DefectAgent(store)
        held.enter_context(agent.session())
    except Exception as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
        return None
    return agent


def _file_defect(
    agent: DefectAgent, incident_of: Callable[[str], Incident], decision: Decision
) -> str:
    incident = incident_of(decision.incident_id or "")
    evidence = {
        "run_id": decision.run_id,
        "failure_id": decision.failure_id,
        "reason": decision.reason,
        **decision.evidence,
    }
    result = agent.escalate(incident, evidence)
    return f"{result.defect_id} (waits in the outbox)" if result.pending else result.defect_id


def _flush_outbox(store: Store) -> None:
    """Defects a sink could not take earlier get another chance at every triage."""
    from testmem.agents.defects import DefectAgent

    if (store.root / "defects" / "outbox").is_dir():
        DefectAgent(store).flush()


def _decision(
    run_id: str, test: dict[str, Any], link: dict[str, Any] | None, verdict: Verdict
) -> Decision:
    link = link or {}
    return Decision(
        run_id=run_id,
        nodeid=test["nodeid"],
        failure_id=test["failure_id"],
        action=verdict.action,
        category=verdict.category,
        reason=verdict.reason,
        confidence=verdict.confidence,
        incident_id=link.get("incident_id"),
        incident_is_new=link.get("is_new"),
        score=link.get("score"),
        attempts=test["attempts"],
        final_outcome=test["final_outcome"],
        evidence=verdict.evidence,
        rule=verdict.rule,
        exchange_id=test.get("exchange_id"),
        exchange_rule=test.get("exchange_rule"),
    )


def _fact(d: Decision) -> Fact:
    detail = {k: v for k, v in asdict(d).items() if k not in ("run_id", "outcome")}
    return Fact.of("DecisionMade", d.run_id, **detail)


def _links(history: History, run_id: str) -> dict[str, dict[str, Any]]:
    rows = history.sql(
        """SELECT failure_id, arg_max(incident_id, occurred_at) AS incident_id,
                  arg_max(signature, occurred_at) AS signature,
                  arg_max(CAST(detail->>'$.is_new' AS BOOLEAN), occurred_at) AS is_new,
                  arg_max(CAST(detail->>'$.score' AS DOUBLE), occurred_at) AS score
           FROM facts WHERE type = 'FailureLinked' AND run_id = ? GROUP BY failure_id""",
        [run_id],
    )
    return {r["failure_id"]: r for r in rows.dicts()}


def _decided(history: History, run_id: str) -> set[str]:
    rows = history.sql(
        "SELECT DISTINCT nodeid FROM facts WHERE type = 'DecisionMade' AND run_id = ?", [run_id]
    )
    return {r[0] for r in rows.rows}


def _labels(known: Known, links: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The human labels of the live incidents the run's failures joined."""
    live = {link["incident_id"] for link in links.values()} & set(known.incident_ids)
    labels = {i: known.label_of(i) for i in live if known.resolve(i) == i}
    return {i: label for i, label in labels.items() if label}


def _changes(history: History, problems: list[str]) -> list[ApiChange]:
    try:
        return detect_changes(history, min_observations=1)
    except Exception as exc:
        problems.append(f"API change detection failed: {exc}")
        return []


DECISIONS = """
    WITH latest AS (
        SELECT * FROM facts d WHERE d.type = 'DecisionMade' AND d.run_id = ?
        QUALIFY row_number() OVER (PARTITION BY d.nodeid ORDER BY d.occurred_at DESC) = 1
    )
    SELECT d.run_id, d.nodeid, d.detail->>'$.action' AS action,
           d.detail->>'$.category' AS category, d.incident_id,
           coalesce(CAST(d.detail->>'$.incident_is_new' AS BOOLEAN), false) AS incident_is_new,
           CAST(d.detail->>'$.score' AS DOUBLE) AS score, d.detail->>'$.reason' AS reason,
           d.detail->>'$.rule' AS rule,
           CAST(d.detail->>'$.attempts' AS INTEGER) AS attempts,
           d.detail->>'$.final_outcome' AS final_outcome,
           CAST(d.detail->>'$.confidence' AS DOUBLE) AS confidence, d.failure_id,
           x.exchange_id, coalesce(d.detail->>'$.exchange_rule', e.exchange_rule) AS exchange_rule,
           x.method, x.route, x.status
    FROM latest d LEFT JOIN explaining e USING (failure_id)
    LEFT JOIN exchanges x
        ON x.exchange_id = coalesce(d.detail->>'$.exchange_id', e.exchange_id)
    ORDER BY d.nodeid"""


def decisions(history: History, run_id: str) -> Rows:
    """The latest decision for each test of a run that failed (a forced
    re-triage supersedes the earlier one): what was decided, by which rule,
    on which incident, and the exchange it rests on with why that one. The
    one view of the truth `testmem decisions` and the scenarios' scorers read."""
    return history.sql(DECISIONS, [run_id])
