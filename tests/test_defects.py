"""The defect agent on a real store: one defect per incident, ever, and nothing lost.

Runs are written to a real Delta log, incidents come from the real incidents
projection, trackers are the fake Jira/GitHub servers of `fakes` on 127.0.0.1.
"""

from __future__ import annotations

import json
import multiprocessing
import shlex
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fakes import FakeGitHub, FakeJira

from testmem.agents.cli import cli
from testmem.agents.defects import DefectAgent, DefectWarning, defect_id_for, defects, severity_of
from testmem.agents.sinks import FileSink, GitHubSink, JiraSink
from testmem.memory.events import (
    Blob,
    Event,
    Fact,
    FailureObserved,
    HttpExchanged,
    RunFinished,
    RunStarted,
    TestFinished,
    uuid7,
)
from testmem.memory.incidents import Incident, Incidents
from testmem.memory.query import History
from testmem.memory.store import Store

INCIDENT = "INC-00000000000000a1"
NODEID = "tests/test_orders.py::test_create_order"
# Secrets as if they had slipped past redaction at record time.
SECRETS = ("sk_live_abcdef123456", "hunter2secret", "KEY123456789", "tok_zzzzzzzzzz")


class Scenario:
    """Writes runs of one test to a store: passing, or failing into one incident."""

    def __init__(self, root: Path) -> None:
        self.store = Store(root)

    def run(
        self,
        build: str,
        *,
        fail: bool,
        nodeid: str = NODEID,
        exchange: bool = True,
        answered: bool = False,  # a passing run records its request's answer too
    ) -> str:
        run_id = uuid7()
        events: list[Event] = [RunStarted(run_id=run_id, build=build)]
        failure_id = uuid7()
        if answered and not fail:
            events.append(_exchange(run_id, nodeid, 201, {"id": 7, "item": "book"}))
        if fail:
            x = _exchange(run_id, nodeid) if exchange else None
            events += [x] if x else []
            events.append(
                FailureObserved(
                    run_id=run_id,
                    failure_id=failure_id,
                    nodeid=nodeid,
                    exception_type="AssertionError",
                    message="assert 500 == 200\n +  where 500 = <Response [500]>.status_code",
                    assertion="assert 500 == 200",
                    exchange_ids=[x.exchange_id] if x else [],
                )
            )
            events.append(_link(run_id, failure_id, nodeid, exchange))
        outcome = "failed" if fail else "passed"
        events += [
            TestFinished(run_id=run_id, nodeid=nodeid, outcome=outcome),
            RunFinished(run_id=run_id),
        ]
        self.store.events.append(events)
        return failure_id

    def incident(self) -> Incident:
        return Incidents(self.store).get(INCIDENT)


def _exchange(
    run_id: str, nodeid: str, status: int = 500, answer: dict[str, Any] | None = None
) -> HttpExchanged:
    headers = {
        "authorization": f"Bearer {SECRETS[0]}",
        "content-type": "application/json",
        "x-request-id": "r-1",
        "host": "127.0.0.1:8000",
    }
    return HttpExchanged(
        run_id=run_id,
        exchange_id=uuid7(),
        nodeid=nodeid,
        method="POST",
        url=f"http://127.0.0.1:8000/orders?api_key={SECRETS[2]}&page=1",
        route="/orders",
        status=status,
        request_headers=json.dumps(headers),
        request_body=Blob.of(json.dumps({"password": SECRETS[1], "item": "book"})),
        response_headers=json.dumps({"content-type": "application/json"}),
        response_body=Blob.of(json.dumps(answer or {"error": "boom", "token": SECRETS[3]})),
    )


def _link(run_id: str, failure_id: str, nodeid: str, exchange: bool) -> Fact:
    """What `testmem.memory.incidents.Link.fact` appends, with the structure it compared."""
    return Fact.of(
        "FailureLinked",
        run_id,
        failure_id=failure_id,
        incident_id=INCIDENT,
        signature="sig-orders-500",
        nodeid=nodeid,
        method="signature",
        score=1.0,
        is_new=False,
        route="/orders" if exchange else None,
        status=500 if exchange else None,
        http_method="POST" if exchange else None,
        exception_type="AssertionError",
        keys=[],
    )


def facts(store: Store, kind: str) -> list[dict[str, Any]]:
    rows = History(store).sql("SELECT * FROM facts WHERE type = ? ORDER BY occurred_at", [kind])
    return [{**r, "detail": json.loads(r["detail"])} for r in rows.dicts()]


@pytest.fixture
def scenario(store_dir: Path) -> Scenario:
    scene = Scenario(store_dir)
    scene.run("b1", fail=False)
    scene.run("b2", fail=True)
    return scene


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    yield fake
    fake.stop()


def github_agent(store: Store, fake: FakeGitHub, timeout: float = 2.0) -> DefectAgent:
    return DefectAgent(store, GitHubSink(fake.repo, fake.token, api=fake.url, timeout=timeout))


def test_first_escalation_files_the_defect_and_records_it(scenario: Scenario) -> None:
    result = DefectAgent(scenario.store, FileSink(scenario.store.subdir("defects"))).escalate(
        scenario.incident(), {"reason": "reproducible 500"}
    )

    [filed] = facts(scenario.store, "DefectFiled")
    assert result.created and not result.pending
    assert result.defect_id == defect_id_for(INCIDENT) == filed["detail"]["defect_id"]
    assert filed["incident_id"] == INCIDENT
    assert filed["detail"]["sink"] == "file"
    assert filed["detail"]["severity"] == "high"
    assert Path(result.reference or "").read_text().startswith("# POST /orders answers 500")


def test_escalating_again_without_new_occurrences_changes_nothing(
    scenario: Scenario, github: FakeGitHub
) -> None:
    agent = github_agent(scenario.store, github)
    first = agent.escalate(scenario.incident())

    again = agent.escalate(scenario.incident())

    assert (again.created, again.reference) == (False, first.reference)
    assert len(github.issues) == 1 and github.comments == {}
    assert len(facts(scenario.store, "DefectFiled")) == 1
    assert facts(scenario.store, "DefectUpdated") == []


def test_a_later_occurrence_comments_and_updates_the_count(
    scenario: Scenario, github: FakeGitHub
) -> None:
    agent = github_agent(scenario.store, github)
    agent.escalate(scenario.incident())
    scenario.run("b3", fail=True)

    result = agent.escalate(scenario.incident())

    [updated] = facts(scenario.store, "DefectUpdated")
    assert not result.created
    assert updated["detail"]["occurrences"] == 2
    assert "2 occurrences" in github.comments[1][0]
    assert len(github.issues) == 1
    assert [d["occurrences"] for d in defects(scenario.store)] == [2]


def test_jira_gets_one_issue_and_a_comment_per_recurrence(scenario: Scenario) -> None:
    jira = FakeJira()
    try:
        sink = JiraSink(jira.url, jira.project, jira.token, user=jira.user, timeout=2.0)
        agent = DefectAgent(scenario.store, sink)
        filed = agent.escalate(scenario.incident())
        scenario.run("b3", fail=True)
        agent.escalate(scenario.incident())
    finally:
        jira.stop()

    assert filed.reference == "SHOP-1"
    assert list(jira.issues) == ["SHOP-1"]
    assert len(jira.comments["SHOP-1"]) == 1
    assert [d["reference"] for d in defects(scenario.store)] == ["SHOP-1"]


def test_reproduction_is_the_test_and_a_curl_command_of_the_recorded_request(
    scenario: Scenario,
) -> None:
    result = DefectAgent(scenario.store, FileSink(scenario.store.subdir("defects"))).escalate(
        scenario.incident()
    )

    report = json.loads(Path(result.reference or "").with_suffix(".json").read_text())
    test, curl = report["reproduction"].splitlines()
    assert shlex.split(test) == ["pytest", NODEID]
    words = shlex.split(curl)
    assert words[:3] == ["curl", "-X", "POST"]
    assert words[3].startswith("http://127.0.0.1:8000/orders?") and "page=1" in words[3]
    assert "x-request-id: r-1" in words
    assert not any(w.startswith("host:") for w in words)
    body = json.loads(words[words.index("--data-raw") + 1])
    assert body["item"] == "book"


def test_secrets_never_reach_a_defect(scenario: Scenario, github: FakeGitHub) -> None:
    files = DefectAgent(scenario.store, FileSink(scenario.store.subdir("defects")))
    result = files.escalate(scenario.incident())
    github_agent(Store(scenario.store.root), github).escalate(scenario.incident())

    written = Path(result.reference or "").read_text()
    written += Path(result.reference or "").with_suffix(".json").read_text()
    sent = json.dumps(github.issues)
    for secret in SECRETS:
        assert secret not in written
        assert secret not in sent
    assert "[REDACTED]" in written


def test_report_states_expected_actual_builds_and_breadth(scenario: Scenario) -> None:
    result = DefectAgent(scenario.store, FileSink(scenario.store.subdir("defects"))).escalate(
        scenario.incident()
    )

    report = json.loads(Path(result.reference or "").with_suffix(".json").read_text())
    assert report["expected"] == "200"
    assert report["actual"] == "500 (HTTP 500)"
    assert (report["first_bad_build"], report["last_good_build"]) == ("b2", "b1")
    assert report["tests"] == [NODEID]
    assert report["routes"] == ["/orders"]
    assert report["response"].startswith("HTTP 500")


@pytest.mark.parametrize(
    ("statuses", "tests", "routes", "severity"),
    [
        ([404], 1, 1, "low"),
        ([404], 2, 1, "medium"),
        ([500], 1, 1, "high"),
        ([404], 5, 1, "high"),
        ([503], 2, 2, "critical"),
    ],
)
def test_severity_rises_with_server_errors_and_breadth(
    scenario: Scenario, statuses: list[int], tests: int, routes: int, severity: str
) -> None:
    incident = replace(
        scenario.incident(),
        statuses=statuses,
        tests=[f"t{i}" for i in range(tests)],
        routes=[f"/r{i}" for i in range(routes)],
    )

    assert severity_of(incident) == severity


def test_a_failing_tracker_leaves_the_defect_in_the_outbox_until_flush(
    scenario: Scenario, github: FakeGitHub
) -> None:
    agent = github_agent(scenario.store, github)
    github.fail_with = 500

    with pytest.warns(DefectWarning, match="HTTP 500"):
        result = agent.escalate(scenario.incident())
    assert result.pending and result.reference is None
    assert [d["status"] for d in defects(scenario.store)] == ["pending"]
    assert facts(scenario.store, "DefectFiled") == []

    github.fail_with = None
    flushed = agent.flush()

    assert (flushed.delivered, flushed.pending) == ([result.defect_id], 0)
    assert len(github.issues) == 1
    assert [d["status"] for d in defects(scenario.store)] == ["filed"]
    assert agent.flush().delivered == []
    assert list((scenario.store.root / "defects" / "outbox").iterdir()) == []


def test_a_lost_acknowledgement_is_found_on_retry_not_filed_twice(
    scenario: Scenario, github: FakeGitHub
) -> None:
    github.hang_s = 1.0  # the issue is created, the answer comes too late

    with pytest.warns(DefectWarning, match="Timeout"):
        result = github_agent(scenario.store, github, timeout=0.3).escalate(scenario.incident())
    github.hang_s = 0.0
    flushed = github_agent(scenario.store, github).flush()

    [filed] = facts(scenario.store, "DefectFiled")
    assert result.pending and flushed.delivered == [result.defect_id]
    assert len(github.issues) == 1
    assert filed["detail"]["reference"] == github.issues[1]["html_url"]


def test_an_escalation_while_the_create_is_pending_files_it_once(
    scenario: Scenario, github: FakeGitHub
) -> None:
    agent = github_agent(scenario.store, github)
    github.fail_with = 503
    with pytest.warns(DefectWarning):
        agent.escalate(scenario.incident())
    scenario.run("b3", fail=True)
    github.fail_with = None

    result = agent.escalate(scenario.incident())

    assert result.created and not result.pending
    assert len(github.issues) == 1 and github.comments == {}
    assert "**occurrences** 2" in github.issues[1]["body"]


def test_a_refused_connection_goes_to_the_outbox(
    scenario: Scenario, github: FakeGitHub, refused_url: str
) -> None:
    down = DefectAgent(scenario.store, GitHubSink(github.repo, github.token, api=refused_url))
    with pytest.warns(DefectWarning, match="ConnectError"):
        assert down.escalate(scenario.incident()).pending

    assert github_agent(scenario.store, github).flush().pending == 0
    assert len(github.issues) == 1


def test_a_failed_comment_is_retried_by_flush(scenario: Scenario, github: FakeGitHub) -> None:
    agent = github_agent(scenario.store, github)
    agent.escalate(scenario.incident())
    scenario.run("b3", fail=True)
    github.fail_with = 502
    with pytest.warns(DefectWarning, match="HTTP 502"):
        assert agent.escalate(scenario.incident()).pending
    github.fail_with = None

    agent.flush()

    assert len(github.comments[1]) == 1
    assert [f["detail"]["occurrences"] for f in facts(scenario.store, "DefectUpdated")] == [2]


def test_a_failure_without_an_exchange_is_reproduced_by_its_test_alone(
    store_dir: Path,
) -> None:
    scene = Scenario(store_dir)
    scene.run("b1", fail=True, exchange=False)

    result = DefectAgent(scene.store, FileSink(scene.store.subdir("defects"))).escalate(
        scene.incident()
    )

    report = json.loads(Path(result.reference or "").with_suffix(".json").read_text())
    assert report["reproduction"] == f"pytest {shlex.quote(NODEID)}"
    assert report["title"].startswith("AssertionError: assert 500 == 200")


def _escalate_in_another_process(root: str, url: str) -> str:
    store = Store(Path(root))
    sink = GitHubSink("acme/shop", "ghp_fake", api=url, timeout=5.0)
    return DefectAgent(store, sink).escalate(Incidents(store).get(INCIDENT)).defect_id


def test_concurrent_triage_processes_file_one_defect(
    scenario: Scenario, github: FakeGitHub
) -> None:
    context = multiprocessing.get_context("spawn")  # deltalake must not be forked
    root = str(scenario.store.root)
    with context.Pool(2) as pool:
        ids = pool.starmap(_escalate_in_another_process, [(root, github.url)] * 2)

    assert len(set(ids)) == 1
    assert len(github.issues) == 1
    assert len(facts(scenario.store, "DefectFiled")) == 1


def test_cli_lists_defects_as_json_with_the_agreed_keys(
    scenario: Scenario, github: FakeGitHub
) -> None:
    github_agent(scenario.store, github).escalate(scenario.incident())

    out = CliRunner().invoke(cli, ["--dir", str(scenario.store.root), "defects", "--json"])

    [row] = json.loads(out.output)
    assert out.exit_code == 0
    assert {
        "defect_id",
        "incident_id",
        "title",
        "severity",
        "sink",
        "reference",
        "occurrences",
    } <= set(row)
    assert (row["sink"], row["reference"]) == ("github", github.issues[1]["html_url"])


def test_cli_flush_exits_1_while_actions_stay_pending(
    scenario: Scenario, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "TESTMEM_DEFECT_SINK": "github",
        "TESTMEM_GITHUB_REPO": github.repo,
        "TESTMEM_GITHUB_TOKEN": github.token,
        "TESTMEM_GITHUB_API": github.url,
    }.items():
        monkeypatch.setenv(name, value)
    github.fail_with = 500
    with pytest.warns(DefectWarning):
        DefectAgent(scenario.store).escalate(scenario.incident())
    flush = ["--dir", str(scenario.store.root), "defects", "flush", "--json"]

    failed = CliRunner().invoke(cli, flush)
    github.fail_with = None
    done = CliRunner().invoke(cli, flush)

    assert failed.exit_code == 1 and "HTTP 500" in failed.output
    assert done.exit_code == 0 and json.loads(done.output)["pending"] == 0
    assert len(github.issues) == 1


def test_cli_names_a_misconfigured_sink_without_a_traceback(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTMEM_DEFECT_SINK", "jira")

    out = CliRunner().invoke(cli, ["--dir", str(scenario.store.root), "defects", "flush"])

    assert out.exit_code == 2
    assert "testmem: error: the jira sink needs TESTMEM_JIRA_URL" in out.output


def test_the_title_names_the_request_its_status_and_the_first_bad_build(
    scenario: Scenario,
) -> None:
    result = DefectAgent(scenario.store, FileSink(scenario.store.subdir("defects"))).escalate(
        scenario.incident()
    )
    [filed] = facts(scenario.store, "DefectFiled")
    assert filed["detail"]["title"] == "POST /orders answers 500 since b2"
    assert filed["detail"]["last_good_build"] == "b1"
    assert (
        Path(result.reference or "").read_text().startswith("# POST /orders answers 500 since b2")
    )


def test_what_changed_is_the_same_request_in_the_last_good_build_beside_the_first_bad(
    store_dir: Path,
) -> None:
    scene = Scenario(store_dir)
    scene.run("b1", fail=False, answered=True)
    scene.run("b2", fail=True)

    result = DefectAgent(scene.store, FileSink(scene.store.subdir("defects"))).escalate(
        scene.incident()
    )

    report = json.loads(Path(result.reference or "").with_suffix(".json").read_text())
    lines = report["changed"].splitlines()
    assert lines[1:3] == ["last good build b1: HTTP 201", "first bad build b2: HTTP 500"]
    assert {"- id: 7", '- item: "book"', '+ error: "boom"'} <= set(lines)
    assert "## What changed" in Path(result.reference or "").read_text()
    assert SECRETS[3] not in report["changed"]


def test_an_update_counts_occurrences_per_build_and_names_the_last_few(
    scenario: Scenario, github: FakeGitHub
) -> None:
    agent = github_agent(scenario.store, github)
    agent.escalate(scenario.incident())
    scenario.run("b3", fail=True)
    scenario.run("b3", fail=True)
    scenario.run("b4", fail=True, nodeid="tests/test_orders.py::test_list_orders")

    agent.escalate(scenario.incident())

    [comment] = github.comments[1]
    assert "Per build: b2 1, b3 2, b4 1." in comment
    assert comment.count("`tests/test_orders.py::") == 3  # the last few, not every one


def test_an_update_keeps_the_title_it_was_filed_with(scenario: Scenario) -> None:
    agent = DefectAgent(scenario.store, FileSink(scenario.store.subdir("defects")))
    agent.escalate(scenario.incident())
    scenario.run("b3", fail=True, exchange=False)  # alone, it would be titled by its assertion

    updated = agent.escalate(scenario.incident())

    report = json.loads(Path(updated.reference or "").with_suffix(".json").read_text())
    assert report["occurrences"] == 2
    assert report["title"] == "POST /orders answers 500 since b2"
