"""Post-run triage: at the end of a recorded session, and on demand."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from testmem.agents.cli import cli
from testmem.examples.shop_api import ShopServer

SUITE = """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("fixture could not start")

def test_unknown_user_is_found(api_client):
    response = api_client.get("/users/9999")
    assert response.status_code == 200

def test_setup_error_without_any_exchange(broken):
    pass

def test_user_exists(api_client):
    assert api_client.get("/users/1").status_code == 200
"""
DECISION_KEYS = {
    "run_id", "nodeid", "action", "category", "incident_id", "incident_is_new",
    "score", "reason", "attempts", "final_outcome",
}  # fmt: skip


@dataclass
class Recorded:
    store: Path
    outputs: list[str]
    exit_codes: list[int]


@pytest.fixture(scope="module")
def recorded_twice(tmp_path_factory: pytest.TempPathFactory, shop: ShopServer) -> Recorded:
    """The same suite recorded twice, with session-end triage on (the default)."""
    root = tmp_path_factory.mktemp("triage")
    (root / "test_shop.py").write_text(SUITE)
    store = root / "store"
    command = [
        *(sys.executable, "-m", "pytest", str(root), f"--rootdir={root}", "-p", "no:cacheprovider"),
        *("--memory", f"--memory-dir={store}", f"--api-base-url={shop.url}"),
    ]
    runs = [subprocess.run(command, capture_output=True, text=True, cwd=root) for _ in range(2)]
    return Recorded(store, [r.stdout for r in runs], [r.returncode for r in runs])


def test_session_end_triage_prints_its_decisions(recorded_twice: Recorded) -> None:
    first, second = recorded_twice.outputs
    assert "testmem triage: 2 failed tests" in first
    assert re.search(r"none +unknown +test_shop.py::test_unknown_user_is_found", first)
    assert re.search(r"escalate +regression +test_shop.py::test_unknown_user_is_found", second)
    assert recorded_twice.exit_codes == [1, 1]  # triage never changes the session's outcome


def test_decisions_carry_the_documented_fields(
    recorded_twice: Recorded,
) -> None:
    store = recorded_twice.store
    result = CliRunner().invoke(cli, ["--dir", str(store), "decisions", "--json"])
    assert result.exit_code == 0, result.output
    decisions = {d["nodeid"]: d for d in json.loads(result.output)}
    assert set(decisions) == {
        "test_shop.py::test_unknown_user_is_found",
        "test_shop.py::test_setup_error_without_any_exchange",
    }
    assert all(set(d) >= DECISION_KEYS for d in decisions.values())
    found = decisions["test_shop.py::test_unknown_user_is_found"]
    assert (found["action"], found["incident_is_new"], found["final_outcome"]) == (
        "escalate",
        False,
        "failed",
    )


def test_a_decision_shows_the_exchange_it_rests_on_and_why(recorded_twice: Recorded) -> None:
    result = CliRunner().invoke(cli, ["--dir", str(recorded_twice.store), "decisions", "--json"])
    found = {d["nodeid"]: d for d in json.loads(result.output)}
    api = found["test_shop.py::test_unknown_user_is_found"]
    assert (api["method"], api["route"], api["status"]) == ("GET", "/users/{id}", 404)
    assert (api["exchange_rule"], api["rule"]) == ("named", "regression")
    setup = found["test_shop.py::test_setup_error_without_any_exchange"]
    assert setup["exchange_id"] is None and setup["rule"]


def test_a_setup_error_with_no_exchange_gets_a_reasoned_decision(
    recorded_twice: Recorded,
) -> None:
    store = recorded_twice.store
    result = CliRunner().invoke(cli, ["--dir", str(store), "decisions", "--json"])
    setup = next(d for d in json.loads(result.output) if "setup_error" in d["nodeid"])
    assert setup["action"] in ("none", "escalate") and setup["reason"]


def test_on_demand_triage_does_not_decide_twice(
    recorded_twice: Recorded,
) -> None:
    store = recorded_twice.store
    result = CliRunner().invoke(cli, ["--dir", str(store), "triage"])
    assert result.exit_code == 0, result.output
    assert "no new failures to decide" in result.output
    assert "2 tests already decided" in result.output


def test_triage_of_an_unknown_run_is_a_clean_error(
    recorded_twice: Recorded,
) -> None:
    store = recorded_twice.store
    result = CliRunner().invoke(cli, ["--dir", str(store), "triage", "--run", "nope"])
    assert result.exit_code == 2
    assert "unknown run 'nope'" in result.output


def test_two_triages_of_one_run_at_once_decide_each_test_once(
    tmp_path: Path, shop: ShopServer
) -> None:
    """The session's triage and one started by hand: the second waits for the
    first and then finds every test decided."""
    root = tmp_path / "suite"
    root.mkdir()
    (root / "test_shop.py").write_text(SUITE)
    store = tmp_path / "store"
    subprocess.run(
        [
            *(sys.executable, "-m", "pytest", str(root), f"--rootdir={root}"),
            *("-p", "no:cacheprovider", "--memory", "--no-memory-triage"),
            *(f"--memory-dir={store}", f"--api-base-url={shop.url}"),
        ],
        capture_output=True, cwd=root, check=False,
    )  # fmt: skip
    triage = [
        sys.executable,
        "-c",
        "from testmem.agents.cli import main; main()",
        "--dir",
        str(store),
    ]
    both = [subprocess.Popen([*triage, "triage"], stdout=subprocess.PIPE) for _ in range(2)]
    assert [p.wait(timeout=300) for p in both] == [0, 0]
    counted = subprocess.run(
        [*triage, "query", "--json",
         "SELECT nodeid, count(*) AS n FROM facts WHERE type = 'DecisionMade' GROUP BY nodeid"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert {r["nodeid"]: r["n"] for r in json.loads(counted.stdout)} == {
        "test_shop.py::test_unknown_user_is_found": 1,
        "test_shop.py::test_setup_error_without_any_exchange": 1,
    }
