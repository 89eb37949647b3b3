"""The AutoGen layer, driven by AutoGen's replay model client (no network), on a
store recorded by real `pytest --memory` runs of the example suite against the
shop API: baseline, then `name` renamed `full_name` in two runs in a row.

The replayed model asks for real tool calls; the tools answer from the store,
and the agent's final message becomes the decision triage records.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from runs import record

from testmem.agents.analyzer import FailureContext, Verdict, classify
from testmem.agents.cli import cli
from testmem.agents.triage import Triage
from testmem.examples.builds import BUILDS
from testmem.examples.shop_api import serve
from testmem.memory.query import History
from testmem.memory.store import Store

EXAMPLE_USERS = Path(__file__).parent.parent / "examples" / "suite" / "test_users.py"
GET_USER = "suite/test_users.py::test_get_user"
TOOLS_MODEL = {
    "vision": False,
    "function_calling": True,
    "json_output": False,
    "family": "unknown",
    "structured_output": False,
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("autogen")
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "suite").mkdir()
    shutil.copy(EXAMPLE_USERS, root / "suite" / "test_users.py")
    with serve(BUILDS[0]) as server:
        for number in (0, 3, 3):
            server.set_build(BUILDS[number])
            record(root, server.url, BUILDS[number].label)
        yield root


@pytest.fixture
def store(recorded: Path) -> Store:
    return Store.open(recorded / "store")


def replay(*answers: Any, **model_info: Any) -> Any:
    from autogen_ext.models.replay import ReplayChatCompletionClient

    return ReplayChatCompletionClient(list(answers), model_info={**TOOLS_MODEL, **model_info})


def tool_calls(*calls: tuple[str, dict[str, Any]]) -> Any:
    """A model turn asking for tool calls, as a real model's would look."""
    from autogen_core import FunctionCall
    from autogen_core.models import CreateResult, RequestUsage

    return CreateResult(
        finish_reason="function_calls",
        content=[
            FunctionCall(id=f"call-{i}", name=name, arguments=json.dumps(args))
            for i, (name, args) in enumerate(calls)
        ],
        usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
        cached=False,
    )


def tool_results(client: Any) -> dict[str, Any]:
    """What each tool answered, as the model received it on its next turn."""
    from autogen_core.models import FunctionExecutionResultMessage

    answered = {}
    for call in client.create_calls:
        for message in call["messages"]:
            if isinstance(message, FunctionExecutionResultMessage):
                for result in message.content:
                    assert not result.is_error, result.content
                    answered[result.name] = json.loads(result.content)
    return answered


def agent_for(nodeid: str, decide_with: Callable[[FailureContext], Verdict]) -> Any:
    """A Triage decider: the agent for ``nodeid``, the rules for every other test."""

    def decide_one(context: FailureContext) -> Verdict:
        return decide_with(context) if context.nodeid == nodeid else classify(context)

    return decide_one


def last_decision(store: Store, nodeid: str) -> dict[str, Any]:
    rows = (
        History(store)
        .sql(
            """SELECT detail->>'$.action' AS action, detail->>'$.category' AS category,
                  detail->>'$.reason' AS reason, detail->'$.evidence' AS evidence
           FROM facts WHERE type = 'DecisionMade' AND nodeid = ?
           ORDER BY occurred_at DESC LIMIT 1""",
            [nodeid],
        )
        .dicts()
    )
    assert rows, f"no decision recorded for {nodeid}"
    return {**rows[0], "evidence": json.loads(rows[0]["evidence"])}


# -- the analyzer agent in triage ---------------------------------------------------


def test_the_analyzer_agent_reads_the_memory_through_tools_and_its_decision_is_recorded(
    store: Store,
) -> None:
    from testmem.agents.autogen import MemoryTools, analyzer_agent, decide

    used: dict[str, Any] = {}

    def with_agent(context: FailureContext) -> Verdict:
        client = replay(
            tool_calls(
                ("test_history", {"nodeid": context.nodeid}),
                ("similar_incidents", {"text": f"{context.exception_type}: {context.message}"}),
                ("route_history", {"route": "/users/{id}"}),
            ),
            'The field was renamed on purpose.\n```json\n{"action": "heal", "category": '
            '"outdated", "reason": "users renamed name to full_name", "confidence": 0.8}\n```',
        )
        tools = MemoryTools(store)
        used.update(client=client, tools=tools, context=context)
        return decide(analyzer_agent(store, client, tools=tools), context)

    result = Triage(store, heal=False, escalate=False, decide=agent_for(GET_USER, with_agent)).run(
        force=True
    )

    answered = tool_results(used["client"])
    outcomes = [(r["build"], r["outcome"]) for r in answered["test_history"]["results"]]
    assert outcomes == [("v1.3.0", "failed"), ("v1.3.0", "failed"), ("v1.0.0", "passed")]
    incident = used["context"].incident_id
    assert incident and answered["similar_incidents"]["incidents"][0]["incident_id"] == incident
    assert any("renamed 'full_name'" in c for c in answered["route_history"]["changes"])
    assert sorted(used["tools"].called) == ["route_history", "similar_incidents", "test_history"]

    decided = {d.nodeid: d for d in result.decisions}[GET_USER]
    assert (decided.action, decided.category) == ("heal", "outdated")
    recorded = last_decision(store, GET_USER)
    assert recorded["reason"] == "users renamed name to full_name"
    assert recorded["evidence"]["by"] == "autogen"


def test_an_unusable_answer_falls_back_to_the_rules(store: Store) -> None:
    from testmem.agents.autogen import analyzer_agent, decide

    seen: dict[str, Any] = {}

    def with_agent(context: FailureContext) -> Verdict:
        seen["rules"] = classify(context)
        client = replay("Hard to say, it could be anything really.")
        return decide(analyzer_agent(store, client), context)

    Triage(store, heal=False, escalate=False, decide=agent_for(GET_USER, with_agent)).run(
        force=True
    )
    recorded = last_decision(store, GET_USER)
    assert (recorded["action"], recorded["reason"]) == (seen["rules"].action, seen["rules"].reason)
    assert recorded["evidence"]["agent_unusable"] == "model answer has no JSON decision"


def test_a_model_with_structured_output_answers_in_the_decision_shape(store: Store) -> None:
    from testmem.agents.autogen import AgentDecision, analyzer_agent, decide

    client = replay(
        '{"action": "escalate", "category": "regression", "reason": "500s", "confidence": 2}',
        structured_output=True,
    )
    agent = analyzer_agent(store, client)
    context = FailureContext(GET_USER, "call", "AssertionError", "assert 500 == 200")
    verdict = decide(agent, context)
    assert (verdict.action, verdict.category, verdict.confidence) == ("escalate", "regression", 1)
    assert client.create_calls[0]["json_output"] is AgentDecision


@pytest.mark.parametrize(
    "answer, problem",
    [
        ('{"action": "reboot", "category": "flaky"}', "unknown action"),
        ("```json\n{not json}\n```", "not valid JSON"),
        ("", "no JSON decision"),
    ],
)
def test_decisions_the_model_cannot_make_are_refused(answer: str, problem: str) -> None:
    from testmem.agents.autogen import parse_decision

    parsed = parse_decision(answer)
    assert isinstance(parsed, str) and problem in parsed


def test_the_healer_and_defect_agents_act_through_their_tools(store: Store) -> None:
    from testmem.agents.autogen import defect_agent, healer_agent
    from testmem.agents.defects import defect_id_for, defects
    from testmem.agents.healer import heals

    client = replay(
        tool_calls(("propose_patch", {"run_id": "latest", "nodeid": GET_USER})), "Patch proposed."
    )
    asyncio.run(healer_agent(store, client).run(task=f"Heal {GET_USER}"))
    heal = tool_results(client)["propose_patch"]
    assert heal["healed"] is True, heal
    assert heal["heal_id"] in {r["heal_id"] for r in heals(History(store)).dicts()}

    incident_id = (
        History(store)
        .sql(
            "SELECT incident_id FROM facts WHERE type = 'FailureLinked' AND nodeid = ? LIMIT 1",
            [GET_USER],
        )
        .rows[0][0]
    )
    client = replay(
        tool_calls(("file_defect", {"incident_id": incident_id, "reason": "still broken"})),
        "Filed.",
    )
    asyncio.run(defect_agent(store, client).run(task=f"Escalate {incident_id}"))
    filed = tool_results(client)["file_defect"]
    assert filed["defect_id"] == defect_id_for(incident_id)
    assert filed["defect_id"] in {d["defect_id"] for d in defects(store)}


# -- tools, straight -----------------------------------------------------------


def test_tools_answer_from_the_store_or_with_a_clear_error(store: Store, recorded: Path) -> None:
    from testmem.agents.autogen import MemoryTools

    tools = {t.name: t for t in MemoryTools(store).tools()}
    assert set(tools) >= {"similar_incidents", "test_history", "route_history", "flaky_tests"}
    assert set(tools) >= {"propose_patch", "file_defect"}

    def call(name: str, **args: Any) -> Any:
        from autogen_core import CancellationToken

        value = asyncio.run(tools[name].run_json(args, CancellationToken()))
        return json.loads(tools[name].return_value_as_string(value))

    assert call("test_history", nodeid="suite/nope.py::test_x") == {
        "error": "no results for test 'suite/nope.py::test_x'"
    }
    assert "no successful JSON answers" in call("route_history", route="/nowhere")["error"]
    assert "is unknown" in call("file_defect", incident_id="INC-00000000", reason="x")["error"]
    patch = call("propose_patch", run_id="latest", nodeid=GET_USER)
    assert patch["healed"] is True, patch
    assert '+    assert body["full_name"] == "Ada Lovelace"' in patch["diff"]
    assert Path(patch["patch"]).parent == recorded / "store" / "heals"


# -- the store as an AutoGen memory ----------------------------------------------


def test_store_memory_puts_past_incidents_in_any_agents_model_context(store: Store) -> None:
    from autogen_agentchat.agents import AssistantAgent
    from autogen_core.models import SystemMessage

    from testmem.agents.autogen import StoreMemory

    failure = History(store).sql(
        """SELECT exception_type || ': ' || message FROM failures WHERE nodeid = ?
           ORDER BY occurred_at DESC LIMIT 1""",
        [GET_USER],
    )
    message = failure.rows[0][0]  # KeyError: 'name'
    incident = (
        History(store)
        .sql(
            """SELECT incident_id FROM facts WHERE type = 'FailureLinked' AND nodeid = ?
           ORDER BY occurred_at DESC LIMIT 1""",
            [GET_USER],
        )
        .rows[0][0]
    )
    client = replay("noted")
    agent = AssistantAgent("any_agent", client, memory=[StoreMemory(store)])
    asyncio.run(agent.run(task=f"Why does test_get_user fail with {message} on GET /users/1?"))

    system = [m.content for m in client.create_calls[0]["messages"] if isinstance(m, SystemMessage)]
    remembered = [text for text in system if "testmem remembers" in str(text)]
    assert remembered and incident in str(remembered[0])
    assert "last decision:" in str(remembered[0])  # triage of the recorded runs decided it


def test_store_memory_notes_are_facts_and_the_log_is_never_cleared(store: Store) -> None:
    from autogen_core.memory import MemoryContent, MemoryMimeType

    from testmem.agents.autogen import MemoryClearRefused, StoreMemory

    memory = StoreMemory(store)
    note = MemoryContent(
        content="the staging gateway restarts at 02:00", mime_type=MemoryMimeType.TEXT
    )
    asyncio.run(memory.add(note))
    noted = (
        History(store).sql("SELECT detail->>'$.note' FROM facts WHERE type = 'MemoryNoted'").rows
    )
    assert ("the staging gateway restarts at 02:00",) in noted
    with pytest.raises(MemoryClearRefused, match="append-only"):
        asyncio.run(memory.clear())
    assert asyncio.run(memory.query("")).results == []


# -- the model config ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name, text, problem",
    [
        ("m.json", "{oops", "not valid JSON"),
        ("m.yaml", "provider: [", "not valid YAML"),
        ("m.json", '{"config": {}}', 'expected {"provider"'),
        (
            "m.json",
            '{"provider": "no.such.Client", "config": {}}',
            "cannot load provider 'no.such.Client'",
        ),
    ],
)
def test_a_bad_model_config_is_one_line_and_exit_2(
    store: Store, tmp_path: Path, name: str, text: str, problem: str
) -> None:
    config = tmp_path / name
    config.write_text(text)
    result = CliRunner().invoke(
        cli, ["--dir", str(store.root), "triage", "--no-heal", "--model-config", str(config)]
    )
    assert result.exit_code == 2, result.output
    assert result.output.startswith("testmem: error: model config") and problem in result.output
    assert result.output.count("\n") == 1


def test_triage_takes_its_model_from_the_environment(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = (
        '{"action": "none", "category": "unknown", "reason": "the model looked", "confidence": 0.5}'
    )
    config = tmp_path / "model.yaml"
    config.write_text(
        "provider: autogen_ext.models.replay.ReplayChatCompletionClient\n"
        f"config:\n  chat_completions: [{json.dumps(answer)}]\n"
        f"  model_info: {json.dumps(TOOLS_MODEL)}\n"
    )
    monkeypatch.setenv("TESTMEM_MODEL_CONFIG", str(config))
    result = CliRunner().invoke(
        cli, ["--dir", str(store.root), "triage", "--force", "--no-heal", "--no-escalate", "--json"]
    )
    assert result.exit_code == 0, result.output
    decisions = json.loads(result.output)
    by_model = [d for d in decisions if d["evidence"].get("by") == "autogen"]
    assert [d["reason"] for d in by_model] == ["the model looked"]  # one replayed answer
    rest = [d for d in decisions if d not in by_model]
    assert rest and all("model failed" in d["evidence"]["agent_unusable"] for d in rest)
