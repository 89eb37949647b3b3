"""The agents as AutoGen AgentChat agents, with the memory as their tools and memory.

    MemoryTools(store)     similar incidents, test history, route history, flaky
                           statistics, propose a patch, file a defect: plain
                           functions returning compact JSON-able data
    analyzer_agent(...)    AssistantAgents for the analyzer, healer, generator
    healer_agent(...)      and defect roles, each with the tools of its job
    ...
    decide(agent, ctx)     the analyzer agent's decision on one failure, or the
                           deterministic `classify` when its answer is unusable
    StoreMemory(store)     the store as an `autogen_core.memory.Memory` for any agent
    load_model_client()    the model client of an AutoGen component config

Without a model client nothing here is used: the deterministic agents decide
alone. This module imports AutoGen (seconds): import it only when a model is
configured, never on the start-up path of pytest or of quick CLI commands.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import BaseChatMessage
from autogen_core import CancellationToken
from autogen_core.memory import (
    Memory,
    MemoryContent,
    MemoryMimeType,
    MemoryQueryResult,
    UpdateContextResult,
)
from autogen_core.model_context import ChatCompletionContext
from autogen_core.models import ChatCompletionClient, SystemMessage
from autogen_core.tools import FunctionTool
from pydantic import BaseModel

from testmem.agents.analyzer import FailureContext, Verdict, classify
from testmem.memory.errors import TestmemError
from testmem.memory.events import Fact
from testmem.memory.query import History
from testmem.memory.store import Store

ENV_MODEL_CONFIG = "TESTMEM_MODEL_CONFIG"
ACTIONS = ("retry", "heal", "escalate", "none")
CATEGORIES = ("transient", "flaky", "outdated", "regression", "unknown")


class ModelConfigError(TestmemError):
    """The model configuration cannot be read or names no usable client."""


class MemoryClearRefused(TestmemError):
    """The event log is append-only: a memory built on it cannot be cleared."""


# -- the model client ------------------------------------------------------------


def load_model_client(path: Path | str | None = None) -> ChatCompletionClient | None:
    """The client of an AutoGen component config (``{"provider": ..., "config": ...}``,
    JSON or YAML) from ``path``, else from $TESTMEM_MODEL_CONFIG; None if neither."""
    path = path or os.environ.get(ENV_MODEL_CONFIG) or None
    if path is None:
        return None
    config = _read_config(Path(path))
    try:
        return ChatCompletionClient.load_component(config)
    except Exception as exc:  # any provider's own error: one line, not a traceback
        provider = config["provider"]
        raise ModelConfigError(
            f"model config {path}: cannot load provider {provider!r}: {_first_line(exc)}"
        ) from exc


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelConfigError(f"model config {path}: {exc.strerror or exc}") from exc
    yaml_file = path.suffix.lower() in (".yaml", ".yml")
    try:
        if yaml_file:
            import yaml

            config = yaml.safe_load(text)
        else:
            config = json.loads(text)
    except Exception as exc:  # json's and yaml's errors: one line either way
        kind = "YAML" if yaml_file else "JSON"
        raise ModelConfigError(
            f"model config {path}: not valid {kind}: {_first_line(exc)}"
        ) from exc
    if not isinstance(config, dict) or "provider" not in config:
        raise ModelConfigError(f'model config {path}: expected {{"provider": ..., "config": ...}}')
    return config


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- tools ---------------------------------------------------------------------


class MemoryTools:
    """What an agent may ask of, or do to, the memory. Each tool returns JSON-able
    data; a question the memory cannot answer returns ``{"error": "..."}``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.called: list[str] = []  # tool names, in call order: the evidence an agent used

    def similar_incidents(self, text: str, k: int = 5) -> dict[str, Any]:
        """Past incidents whose failures look like ``text`` (an error message), best first."""
        from testmem.memory.incidents import Incidents, Matcher

        candidates = Matcher(self.store).similar(text, k)
        incidents = Incidents(self.store)
        found = []
        for c in candidates:
            incident = incidents.get(c.incident_id)
            found.append(
                {**c.as_dict(), **_compact(incident.summary()), "tests": incident.tests[:5]}
            )
        return {"incidents": found}

    def test_history(self, nodeid: str, limit: int = 20) -> dict[str, Any]:
        """A test's recent results, newest first: run, build, outcome, attempt."""
        rows = History(self.store).test_history(nodeid, limit).dicts()
        return {"nodeid": nodeid, "results": [_compact(r) for r in rows]}

    def route_history(self, route: str, method: str = "GET") -> dict[str, Any]:
        """A route's response schema per run (statuses, field types) and its changes."""
        from testmem.agents.schema import detect_changes, snapshots

        history = History(self.store)
        series = snapshots(history, route, method.upper()).get((route, method.upper()))
        if not series:
            return {"error": f"no successful JSON answers recorded for {method} {route}"}
        changes = detect_changes(history, route, method.upper(), min_observations=1)
        return {
            "route": route,
            "method": method.upper(),
            "snapshots": [_snapshot(s) for s in series[-10:]],
            "changes": [c.describe() for c in changes],
        }

    def flaky_tests(self, window: int = 30, min_runs: int = 3) -> dict[str, Any]:
        """Tests whose outcome flips between runs or that passed only on retry."""
        rows = History(self.store).flaky(window, min_runs).dicts()
        return {"flaky": [_compact(r) for r in rows]}

    def propose_patch(self, run_id: str, nodeid: str) -> dict[str, Any]:
        """Ask the healer for a patch to an outdated test (a diff), or why none."""
        from testmem.agents.healer import NoHeal, propose_heal_for

        history = History(self.store)
        run_id = history.resolve_run(run_id)
        heal = propose_heal_for(self.store, history, run_id, nodeid)
        if isinstance(heal, NoHeal):
            return {"healed": False, "reason": heal.reason}
        return {
            "healed": True,
            "heal_id": heal.heal_id,
            "change": heal.change.describe(),
            "patch": str(heal.path),
            "diff": heal.diff[:2000],
        }

    def file_defect(self, incident_id: str, reason: str) -> dict[str, Any]:
        """File the incident's defect (one per incident, ever; a recurrence updates it)."""
        from testmem.agents.defects import DefectAgent
        from testmem.memory.incidents import Incidents

        incident = Incidents(self.store).get(incident_id)
        result = DefectAgent(self.store).escalate(incident, {"reason": reason, "by": "autogen"})
        return _compact(asdict(result))

    def tools(self, *names: str) -> list[FunctionTool]:
        """The named tools (all of them by default) as AutoGen tools."""
        return [self._tool(name) for name in names or TOOLS]

    def _tool(self, name: str) -> FunctionTool:
        method: Callable[..., dict[str, Any]] = getattr(self, name)
        description = (method.__doc__ or name).strip().splitlines()[0]
        return JsonTool(_answering(self, name, method), description=description, name=name)


TOOLS = (
    "similar_incidents",
    "test_history",
    "route_history",
    "flaky_tests",
    "propose_patch",
    "file_defect",
)


def _answering(
    tools: MemoryTools, name: str, method: Callable[..., dict[str, Any]]
) -> Callable[..., dict[str, Any]]:
    """The tool as the model calls it: a refusal of the memory becomes its answer."""

    @functools.wraps(method)
    def answer(*args: Any, **kwargs: Any) -> dict[str, Any]:
        tools.called.append(name)
        try:
            return method(*args, **kwargs)
        except TestmemError as exc:
            return {"error": str(exc)}

    return answer


class JsonTool(FunctionTool):
    """Answers the model in JSON (FunctionTool would give Python's repr)."""

    def return_value_as_string(self, value: Any) -> str:
        return json.dumps(value, default=str, separators=(",", ":"))


def _compact(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-able: timestamps as ISO text, None dropped."""
    return {
        k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items() if v is not None
    }


def _snapshot(s: Any) -> dict[str, Any]:
    return {
        "run_id": s.run_id,
        "build": s.build,
        "statuses": sorted(s.statuses),
        "fields": {path: sorted(types) for path, types in sorted(s.types.items())},
    }


# -- agents --------------------------------------------------------------------

_DECISION_FORMAT = (
    "End with your decision as one JSON object, alone or in a ```json block: "
    '{"action": "retry|heal|escalate|none", '
    '"category": "transient|flaky|outdated|regression|unknown", '
    '"reason": "<one sentence>", "confidence": <0..1>}.'
)
SYSTEM_MESSAGES = {
    "analyzer": (
        "You triage failed API tests. For the failure you are given, use the tools to read "
        "the memory: similar past incidents, the test's history, the route's schema history, "
        "flaky statistics. Classify it: transient (429/502/503/504, timeouts, resets) -> retry; "
        "flaky (passed on retry, flips between runs) -> retry; outdated (the API changed "
        "consistently since a known build, no 5xx, and the failing assertion is about what "
        "changed) -> heal; regression (reproducible, unexplained, or a 5xx) -> escalate; "
        "otherwise unknown -> none. The deterministic analyzer's suggestion is given: "
        "depart from it only with evidence. " + _DECISION_FORMAT
    ),
    "healer": (
        "You update API tests that are outdated because the API changed on purpose. Check the "
        "route's history first: heal only a consistent change seen in several runs, never "
        "against server errors. Use propose_patch to get a patch and report its heal id."
    ),
    "generator": (
        "You watch the API's routes for new fields and new routes. Use route_history to see "
        "each route's schema over time and say which new fields deserve tests, with the "
        "presence, type and format checks they need."
    ),
    "defect": (
        "You file defects for regressions. Check similar incidents first: one defect per "
        "incident, ever. File with file_defect, giving the reason, and report the defect id."
    ),
}
ROLE_TOOLS = {
    "analyzer": ("similar_incidents", "test_history", "route_history", "flaky_tests"),
    "healer": ("route_history", "test_history", "propose_patch"),
    "generator": ("route_history",),
    "defect": ("similar_incidents", "test_history", "file_defect"),
}


def make_agent(
    role: str,
    store: Store,
    model_client: ChatCompletionClient,
    *,
    tools: MemoryTools | None = None,
    with_memory: bool = False,
) -> AssistantAgent:
    """An AssistantAgent for ``role`` (analyzer, healer, generator, defect) over the store."""
    if role not in ROLE_TOOLS:
        raise TestmemError(f"unknown agent role {role!r} (choose from {', '.join(ROLE_TOOLS)})")
    tools = tools or MemoryTools(store)
    return AssistantAgent(
        f"testmem_{role}",
        model_client,
        tools=list(tools.tools(*ROLE_TOOLS[role])),
        system_message=SYSTEM_MESSAGES[role],
        description=f"testmem's {role} agent",
        reflect_on_tool_use=True,  # a final answer after the tools, not their raw output
        max_tool_iterations=4,
        memory=[StoreMemory(store)] if with_memory else None,
        # A model that supports structured output answers in exactly this shape.
        output_content_type=_structured(role, model_client),
    )


class AgentDecision(BaseModel):
    """The analyzer agent's answer, when the model supports structured output."""

    action: Literal["retry", "heal", "escalate", "none"]
    category: Literal["transient", "flaky", "outdated", "regression", "unknown"]
    reason: str
    confidence: float = 0.6


def _structured(role: str, model_client: ChatCompletionClient) -> type[BaseModel] | None:
    supported = model_client.model_info.get("structured_output", False)
    return AgentDecision if role == "analyzer" and supported else None


def analyzer_agent(store: Store, model_client: ChatCompletionClient, **kw: Any) -> AssistantAgent:
    return make_agent("analyzer", store, model_client, **kw)


def healer_agent(store: Store, model_client: ChatCompletionClient, **kw: Any) -> AssistantAgent:
    return make_agent("healer", store, model_client, **kw)


def generator_agent(store: Store, model_client: ChatCompletionClient, **kw: Any) -> AssistantAgent:
    return make_agent("generator", store, model_client, **kw)


def defect_agent(store: Store, model_client: ChatCompletionClient, **kw: Any) -> AssistantAgent:
    return make_agent("defect", store, model_client, **kw)


# -- deciding with the analyzer agent ------------------------------------------------


def decide(agent: AssistantAgent, context: FailureContext, heal_after: int = 2) -> Verdict:
    """The analyzer agent's verdict on one failure; `classify`'s when the agent's
    answer is unusable (no JSON, an unknown action) or the model fails."""
    baseline = classify(context, heal_after)
    try:
        result = asyncio.run(agent.run(task=failure_task(context, baseline)))
        said = [m for m in result.messages if isinstance(m, BaseChatMessage)]
        answer = said[-1].to_model_text() if said else ""
    except Exception as exc:  # the model or its provider failed: decide without it
        return _fallback(baseline, f"model failed: {type(exc).__name__}: {exc}")
    parsed = parse_decision(answer)
    if isinstance(parsed, str):
        return _fallback(baseline, parsed)
    evidence = {"by": "autogen", "agent": agent.name, "baseline": baseline.action}
    return Verdict(**parsed, evidence={**baseline.evidence, **evidence})


def failure_task(context: FailureContext, baseline: Verdict) -> str:
    """The analyzer agent's task: the failure's evidence, and the rules' suggestion."""
    facts = {
        "nodeid": context.nodeid,
        "phase": context.phase,
        "exception_type": context.exception_type,
        "message": context.message[:1500],
        "exchanges": [asdict(x) for x in context.exchanges[-5:]],
        "attempts": context.attempts,
        "final_outcome": context.final_outcome,
        "incident_id": context.incident_id,
        "incident_runs": context.incident_runs,
        "label": context.label,
        "api_changes": [c.describe() for c in context.changes[:10]],
    }
    suggestion = {"action": baseline.action, "category": baseline.category}
    return (
        f"Failure:\n{json.dumps(facts, default=str, indent=1)}\n"
        f"Deterministic suggestion: {json.dumps(suggestion)} ({baseline.reason}).\n"
        "Decide."
    )


_JSON_BLOCK = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)
_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)


def parse_decision(text: str) -> dict[str, Any] | str:
    """``action, category, reason, confidence`` from a model's final message, or
    why it cannot be used."""
    blocks = _JSON_BLOCK.findall(text) or _JSON_OBJECT.findall(text)
    if not blocks:
        return "model answer has no JSON decision"
    try:
        data = json.loads(blocks[-1])
    except ValueError as exc:
        return f"model answer is not valid JSON: {exc}"
    action, category = data.get("action"), data.get("category")
    if action not in ACTIONS or category not in CATEGORIES:
        return f"model answer has an unknown action or category: {action!r}, {category!r}"
    try:
        confidence = min(max(float(data.get("confidence", 0.6)), 0.0), 1.0)
    except (TypeError, ValueError):
        confidence = 0.6
    reason = str(data.get("reason") or "decided by the analyzer agent")
    return {"action": action, "category": category, "reason": reason, "confidence": confidence}


def _fallback(baseline: Verdict, why: str) -> Verdict:
    evidence = {**baseline.evidence, "by": "rules", "agent_unusable": why}
    return Verdict(
        baseline.action, baseline.category, baseline.reason, baseline.confidence, evidence
    )


def agent_decider(
    store: Store, model_client: ChatCompletionClient, heal_after: int = 2
) -> Callable[[FailureContext], Verdict]:
    """A decider for `Triage`: a fresh analyzer agent per failure (no shared chat)."""

    def decide_one(context: FailureContext) -> Verdict:
        return decide(analyzer_agent(store, model_client), context, heal_after)

    return decide_one


# -- the store as an AutoGen memory ------------------------------------------------


class StoreMemory(Memory):
    """testmem's store as memory for any AutoGen agent: past incidents like the
    conversation's last message, with the decisions taken on them."""

    def __init__(self, store: Store, k: int = 3, min_score: float = 0.5) -> None:
        self.store, self.k, self.min_score = store, k, min_score

    async def query(
        self,
        query: str | MemoryContent,
        cancellation_token: CancellationToken | None = None,
        **kwargs: Any,
    ) -> MemoryQueryResult:
        text = query if isinstance(query, str) else str(query.content)
        contents = await asyncio.to_thread(self._recall, text) if text.strip() else []
        return MemoryQueryResult(results=contents)

    async def update_context(self, model_context: ChatCompletionContext) -> UpdateContextResult:
        """Adds what the memory recalls of the last message as a system message."""
        messages = await model_context.get_messages()
        last = next((m for m in reversed(messages) if isinstance(m.content, str)), None)
        found = await self.query(str(last.content)) if last else MemoryQueryResult(results=[])
        if found.results:
            lines = [f"{i}. " + str(m.content) for i, m in enumerate(found.results, 1)]
            text = "testmem remembers these past incidents:\n" + "\n".join(lines)
            await model_context.add_message(SystemMessage(content=text))
        return UpdateContextResult(memories=found)

    async def add(
        self, content: MemoryContent, cancellation_token: CancellationToken | None = None
    ) -> None:
        """Appends the note to the log as a ``MemoryNoted`` fact."""
        note = Fact.of(
            "MemoryNoted",
            note=str(content.content),
            mime_type=str(getattr(content.mime_type, "value", content.mime_type)),
            metadata=content.metadata or {},
        )
        await asyncio.to_thread(self.store.events.append, [note])

    async def clear(self) -> None:
        raise MemoryClearRefused(
            "testmem's memory is an append-only event log: it cannot be cleared"
        )

    async def close(self) -> None:
        """Nothing to release: every query opens and drops its own reader."""

    def _recall(self, text: str) -> list[MemoryContent]:
        from testmem.memory.incidents import Incidents, Matcher

        candidates = [
            c for c in Matcher(self.store).similar(text, self.k) if c.score >= self.min_score
        ]
        if not candidates:
            return []
        incidents = Incidents(self.store)
        decisions = _last_decisions(History(self.store), [c.incident_id for c in candidates])
        recalled = []
        for c in candidates:
            incident = incidents.get(c.incident_id)
            decision = decisions.get(incident.incident_id)
            recalled.append(
                MemoryContent(
                    content=_recollection(incident, c.score, decision),
                    mime_type=MemoryMimeType.TEXT,
                    metadata={"incident_id": incident.incident_id, "score": round(c.score, 3)},
                )
            )
        return recalled


_LAST_DECISIONS = """
    SELECT incident_id, arg_max(detail->>'$.action', occurred_at) AS action,
           arg_max(detail->>'$.category', occurred_at) AS category,
           arg_max(detail->>'$.reason', occurred_at) AS reason
    FROM facts WHERE type = 'DecisionMade' AND incident_id IN (SELECT unnest(?::VARCHAR[]))
    GROUP BY incident_id"""


def _last_decisions(history: History, incident_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = history.sql(_LAST_DECISIONS, [incident_ids]).dicts()
    return {r["incident_id"]: r for r in rows}


def _recollection(incident: Any, score: float, decision: dict[str, Any] | None) -> str:
    text = (
        f"incident {incident.incident_id} (similarity {score:.2f}, {incident.status}, "
        f"{incident.occurrences} occurrences, label {incident.label or 'none'}, "
        f"tests {', '.join(incident.tests[:3])}): {incident.sample_message[:200]}"
    )
    if decision:
        text += f" | last decision: {decision['action']} ({decision['category']}): "
        text += str(decision["reason"])[:200]
    return text


__all__ = [
    "ENV_MODEL_CONFIG",
    "MemoryClearRefused",
    "MemoryTools",
    "ModelConfigError",
    "StoreMemory",
    "agent_decider",
    "analyzer_agent",
    "decide",
    "defect_agent",
    "generator_agent",
    "healer_agent",
    "load_model_client",
    "make_agent",
    "parse_decision",
]
