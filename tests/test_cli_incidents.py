"""The failure-memory commands, through the real `testmem` CLI on a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_incidents import GET_USER, MISSING_ADDRESS, MISSING_EMAIL, NO_EMAIL, record_run

from testmem.agents.cli import cli
from testmem.memory.embed import Embedder
from testmem.memory.incidents import Matcher
from testmem.memory.store import Store


@pytest.fixture
def store(tmp_path: Path, embedder: Embedder) -> Store:
    """Two incidents: a missing 'email' key (seen twice) and a missing 'email_address'."""
    store = Store(tmp_path / "store")
    for message in (MISSING_EMAIL.format(n=1), NO_EMAIL.format(n=2), MISSING_ADDRESS.format(n=3)):
        Matcher(store, embedder=embedder).link_run(record_run(store, {GET_USER: message}))
    return store


def run_cli(store: Store, *args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["--dir", str(store.root), *args], input=input)


def incidents_of(store: Store) -> list[dict]:
    return json.loads(run_cli(store, "incidents", "--json").output)


def test_incidents_lists_each_incident_with_its_occurrences(store: Store):
    found = incidents_of(store)

    assert sorted(i["occurrences"] for i in found) == [1, 2]
    # The test's last run failed for 'email_address' only: 'email' is gone from it.
    assert {i["occurrences"]: i["status"] for i in found} == {2: "resolved", 1: "open"}


def test_incident_shows_tests_and_timeline(store: Store):
    email = max(incidents_of(store), key=lambda i: i["occurrences"])["incident_id"]

    shown = json.loads(run_cli(store, "incident", email[:8], "--json").output)

    assert shown["incident_id"] == email and shown["tests"] == [GET_USER]
    assert [t["outcome"] for t in shown["timeline"]] == ["failed", "failed", "elsewhere"]


def test_an_unknown_incident_is_one_line_and_exit_2(store: Store):
    result = run_cli(store, "incident", "INC-00000000")

    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "testmem: error: incident 'INC-00000000' is unknown"
    ]


def test_similar_ranks_the_nearest_incident_first_with_why(store: Store):
    result = run_cli(store, "similar", "AssertionError: user 9 lacks key 'email'", "--json")

    best = json.loads(result.output)[0]
    email = max(incidents_of(store), key=lambda i: i["occurrences"])["incident_id"]
    assert best["incident_id"] == email and best["why"].startswith("cosine")


def test_similar_to_a_recorded_failure(store: Store):
    from testmem.memory.query import History

    failure_id = History(store).sql("SELECT failure_id FROM failures LIMIT 1").rows[0][0]

    result = run_cli(store, "similar", "--failure", failure_id[:30], "-k", "1", "--json")

    assert result.exit_code == 0 and json.loads(result.output)[0]["score"] >= 1.0


def test_similar_needs_text_or_a_failure(store: Store):
    result = run_cli(store, "similar")

    assert result.exit_code == 2 and "give either TEXT or --failure ID" in result.stderr


def test_label_then_the_incident_carries_it(store: Store):
    email = incidents_of(store)[0]["incident_id"]

    assert run_cli(store, "label", email, "--as", "product-bug").exit_code == 0

    assert {i["incident_id"]: i["label"] for i in incidents_of(store)}[email] == "product-bug"


def test_label_refuses_an_unknown_label(store: Store):
    email = incidents_of(store)[0]["incident_id"]

    result = run_cli(store, "label", email, "--as", "gremlins")

    assert result.exit_code == 2 and "gremlins" in result.stderr


def test_merge_leaves_one_incident(store: Store):
    first, second = (i["incident_id"] for i in incidents_of(store))

    result = run_cli(store, "merge", second, first)

    assert result.exit_code == 0, result.stderr
    assert [(i["incident_id"], i["occurrences"]) for i in incidents_of(store)] == [(first, 3)]


def test_cluster_groups_lines_and_json_lines(store: Store, tmp_path: Path):
    lines = [
        json.dumps({"message": MISSING_EMAIL.format(n=5), "route": "/users/5"}),
        NO_EMAIL.format(n=6),
        "ConnectionRefusedError: [Errno 111] Connection refused",
        "\xff\xfe not utf-8",
    ]
    data = "\n".join(lines).encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff")

    result = run_cli(store, "cluster", "-", input=data)

    shown = json.loads(result.output)
    clusters = [row["cluster"] for row in shown["inputs"]]
    assert clusters[0] == clusters[1] != clusters[2]
    assert shown["summary"]["messages"] == 4


def test_reindex_rebuilds_with_a_progress_bar(store: Store):
    result = run_cli(store, "reindex")

    assert result.exit_code == 0, result.stderr
    assert "indexed 3 signatures of 2 incidents (0 failures newly linked)" in result.output


def test_commands_on_a_missing_store_fail_cleanly(tmp_path: Path):
    result = CliRunner().invoke(cli, ["--dir", str(tmp_path / "none"), "incidents"])

    assert result.exit_code == 2 and result.stderr.startswith("testmem: error: no testmem store")
