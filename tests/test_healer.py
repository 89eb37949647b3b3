"""The healer, on a store recorded by real `pytest --memory` runs of the example
suite against the shop API across builds: baseline, then `name` renamed
`full_name` (twice), then POST /users answering 200 instead of 201 (twice)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from runs import record

from testmem.agents.cli import cli
from testmem.agents.edits import edit_source
from testmem.agents.healer import Heal, HealError, NoHeal, apply_heal, heals, propose_heal
from testmem.agents.schema import ApiChange, detect_changes
from testmem.examples.builds import BUILDS
from testmem.examples.shop_api import ShopServer, serve
from testmem.memory.query import History
from testmem.memory.store import Store

EXAMPLE_USERS = Path(__file__).parent.parent / "examples" / "suite" / "test_users.py"

# A test whose formatting and comments the heal must keep.
STYLED = """\
import httpx


def test_user_three(api_client: httpx.Client) -> None:
    response = api_client.get("/users/3")  # Grace
    body = response.json()
    # the display name, as the profile page shows it
    assert body [ 'name' ]   ==   "Grace Hopper"  # keep me
    assert body.get('email')  # unchanged
"""

# A test whose heal would be too large to propose.
MANY = (
    "def test_many_names(api_client):\n"
    '    body = api_client.get("/users/4").json()\n' + '    assert body["name"]\n' * 45
)


@pytest.fixture(scope="module")
def server() -> Iterator[ShopServer]:
    with serve(BUILDS[0]) as running:
        yield running


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, server: ShopServer) -> Path:
    root = tmp_path_factory.mktemp("healer")
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "suite").mkdir()
    shutil.copy(EXAMPLE_USERS, root / "suite" / "test_users.py")
    (root / "suite" / "test_styled.py").write_text(STYLED)
    (root / "suite" / "test_many.py").write_text(MANY)
    for number in (0, 3, 3, 4, 4):
        server.set_build(BUILDS[number])
        record(root, server.url, BUILDS[number].label)
    return root


@pytest.fixture
def suite(recorded: Path, server: ShopServer) -> Iterator[Path]:
    """The recorded suite, put back as it was after each test; the API at build 4."""
    saved = {p: p.read_text() for p in (recorded / "suite").glob("*.py")}
    server.set_build(BUILDS[4])
    yield recorded / "suite"
    for path, text in saved.items():
        path.write_text(text)


def open_history(root: Path) -> tuple[Store, History]:
    store = Store.open(root / "store")
    return store, History(store)


def last_failure(history: History, test: str) -> dict[str, Any]:
    rows = history.sql(
        "SELECT * FROM failures WHERE nodeid LIKE ? ORDER BY occurred_at DESC LIMIT 1",
        [f"%::{test}"],
    ).dicts()
    assert rows, f"{test} did not fail in the recorded runs"
    return rows[0]


def test_a_consistent_rename_gives_a_patch_of_the_failing_assertion(suite: Path) -> None:
    store, history = open_history(suite.parent)
    heal = propose_heal(store, history, last_failure(history, "test_get_user"))
    assert isinstance(heal, Heal), heal
    assert heal.change.kind == "renamed"
    assert '-    assert body["name"] == "Ada Lovelace"' in heal.diff
    assert '+    assert body["full_name"] == "Ada Lovelace"' in heal.diff
    assert heal.path.read_text() == heal.diff
    assert heal.path.parent == suite.parent / "store" / "heals"


def test_applying_a_rename_heal_makes_the_test_pass(suite: Path) -> None:
    store, history = open_history(suite.parent)
    heal = propose_heal(store, history, last_failure(history, "test_get_user"))
    assert isinstance(heal, Heal), heal
    outcome = apply_heal(store, History(store), heal.heal_id)
    assert outcome.status == "verified", outcome.output
    assert 'body["full_name"] == "Ada Lovelace"' in (suite / "test_users.py").read_text()
    listed = {r["heal_id"]: r for r in heals(History(store)).dicts()}
    assert listed[heal.heal_id]["status"] == "verified"
    with pytest.raises(HealError, match="already applied"):
        apply_heal(store, History(store), heal.heal_id)


def test_a_changed_success_status_is_healed_and_verified(suite: Path) -> None:
    store, history = open_history(suite.parent)
    heal = propose_heal(store, history, last_failure(history, "test_create_user"))
    assert isinstance(heal, Heal), heal
    assert (heal.change.kind, heal.change.old, heal.change.new) == ("status_changed", "201", "200")
    assert "+    assert response.status_code == 200" in heal.diff
    assert apply_heal(store, History(store), heal.heal_id).status == "verified"


def test_comments_and_formatting_survive_the_patch(suite: Path) -> None:
    store, history = open_history(suite.parent)
    heal = propose_heal(store, history, last_failure(history, "test_user_three"))
    assert isinstance(heal, Heal), heal
    assert apply_heal(store, History(store), heal.heal_id).status == "verified"
    expected = STYLED.replace("body [ 'name' ]", "body [ 'full_name' ]")
    assert (suite / "test_styled.py").read_text() == expected


def test_a_change_every_answer_of_its_first_run_shows_is_healed_at_once(suite: Path) -> None:
    # Issue 16: a run whose answers of the route all show the change is
    # evidence enough (one answer alone waits: tests/test_heal_first_sighting.py).
    store, history = open_history(suite.parent)
    first_renamed_run = history.sql(
        "SELECT run_id FROM runs WHERE build = ? ORDER BY started_at LIMIT 1",
        [BUILDS[3].label],
    ).rows[0][0]
    answers = history.sql(
        "SELECT count(*) FROM exchanges"
        " WHERE run_id = ? AND route = '/users/{id}' AND status = 200",
        [first_renamed_run],
    ).rows[0][0]
    assert answers >= 2
    failure = history.sql(
        "SELECT * FROM failures WHERE run_id = ? AND nodeid LIKE '%::test_get_user'",
        [first_renamed_run],
    ).dicts()[0]
    healed = propose_heal(store, history, failure)
    assert isinstance(healed, Heal), healed
    assert healed.change.kind == "renamed"


def test_a_5xx_answer_is_never_healed(suite: Path, server: ShopServer) -> None:
    server.set_build(BUILDS[6])  # GET /orders/{id} answers 500
    orders = suite / "test_orders_5xx.py"
    orders.write_text(
        "def test_order(api_client):\n"
        '    assert api_client.get("/orders/1001").json()["name"] == "x"\n'
    )
    record(suite.parent, server.url, BUILDS[6].label)
    orders.unlink()
    store, history = open_history(suite.parent)
    failure = last_failure(history, "test_order")
    rename = next(c for c in detect_changes(history, "/users/{id}", "GET") if c.kind == "renamed")
    refused = propose_heal(store, history, failure, rename)
    assert isinstance(refused, NoHeal)
    assert "5xx" in refused.reason


def test_a_moved_test_file_gets_a_reason_not_a_crash(suite: Path) -> None:
    store, history = open_history(suite.parent)
    failure = last_failure(history, "test_get_user")
    (suite / "test_users.py").rename(suite / "test_users_moved.py")
    try:
        refused = propose_heal(store, history, failure)
    finally:
        (suite / "test_users_moved.py").rename(suite / "test_users.py")
    assert isinstance(refused, NoHeal)
    assert "moved or deleted" in refused.reason


def test_an_unparsable_test_file_gets_a_reason(suite: Path) -> None:
    store, history = open_history(suite.parent)
    failure = last_failure(history, "test_get_user")
    path = suite / "test_users.py"
    path.write_text(path.read_text() + "\ndef broken(:\n")
    refused = propose_heal(store, history, failure)
    assert isinstance(refused, NoHeal)
    assert "no longer parses" in refused.reason


def test_apply_refuses_when_the_test_file_changed_since(suite: Path) -> None:
    store, history = open_history(suite.parent)
    heal = propose_heal(store, history, last_failure(history, "test_get_user"))
    assert isinstance(heal, Heal), heal
    path = suite / "test_users.py"
    path.write_text(path.read_text().replace('body["name"] == "Ada', 'body["nom"] == "Ada'))
    with pytest.raises(HealError, match="no longer applies"):
        apply_heal(store, History(store), heal.heal_id)
    result = CliRunner().invoke(cli, ["--dir", str(suite.parent / "store"), "heal", "apply",
                                      heal.heal_id])  # fmt: skip
    assert result.exit_code == 2
    assert "testmem: error: the patch no longer applies" in result.output


def test_heals_json_lists_every_heal_with_its_status(suite: Path) -> None:
    store, history = open_history(suite.parent)
    heal = propose_heal(store, history, last_failure(history, "test_create_user"))
    assert isinstance(heal, Heal), heal
    result = CliRunner().invoke(cli, ["--dir", str(suite.parent / "store"), "heals", "--json"])
    assert result.exit_code == 0, result.output
    listed = {h["heal_id"]: h for h in json.loads(result.output)}
    assert set(listed[heal.heal_id]) >= {"heal_id", "incident_id", "nodeid", "path", "status"}
    assert listed[heal.heal_id]["nodeid"].endswith("::test_create_user")
    assert listed[heal.heal_id]["status"] in ("proposed", "verified")


def test_an_unknown_heal_id_is_a_clean_error(suite: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--dir", str(suite.parent / "store"), "heal", "apply", "../../etc/passwd"]
    )
    assert result.exit_code == 2
    assert result.output.startswith("testmem: error: '../../etc/passwd' is not a heal id")


def test_a_huge_patch_is_not_proposed(suite: Path) -> None:
    store, history = open_history(suite.parent)
    refused = propose_heal(store, history, last_failure(history, "test_many_names"))
    assert isinstance(refused, NoHeal)
    assert "too large" in refused.reason


def test_heal_propose_lists_a_heal_or_a_reason_per_failure(suite: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--dir", str(suite.parent / "store"), "heal", "propose", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = {r["nodeid"].split("::")[1]: r for r in json.loads(result.output)}
    assert rows["test_create_user"]["heal_id"]
    assert rows["test_get_user_phone_number"]["heal_id"] is None
    assert "not about it" in rows["test_get_user_phone_number"]["why"]


# -- editing a source: what a heal touches and what it leaves alone -----------------

RETYPED = ApiChange(
    kind="type_changed", route="/a", method="GET", since_run="r", since_build="b",
    observations=2, path="zip", old="integer", new="string",
)  # fmt: skip
RENAMED = ApiChange(
    kind="renamed", route="/a", method="GET", since_run="r", since_build="b",
    observations=2, path="name", new_path="full_name",
)  # fmt: skip
SOURCE = """\
def test_zip(api_client):
    body = api_client.post("/a", json={"name": "Ada"}).json()
    assert isinstance(body["zip"], int)  # postal code
    assert isinstance(body["id"], int)
    assert body["name"] == "Ada"


def test_other(api_client):
    assert api_client.get("/a").json()["name"]
"""


def test_a_type_change_edits_the_isinstance_of_that_field() -> None:
    edited = edit_source(SOURCE, ["test_zip"], RETYPED, line=3)
    assert edited.edits == 1
    assert 'assert isinstance(body["zip"], str)  # postal code' in edited.source
    assert 'assert isinstance(body["id"], int)' in edited.source


def test_a_rename_keeps_request_payloads_and_other_tests() -> None:
    edited = edit_source(SOURCE, ["test_zip"], RENAMED)
    assert 'json={"name": "Ada"}' in edited.source  # what the test sends is not an answer
    assert 'assert body["full_name"] == "Ada"' in edited.source
    assert 'json()["name"]' in edited.source  # test_other is not the failing test


def test_a_statement_elsewhere_is_left_alone() -> None:
    assert edit_source(SOURCE, ["test_zip"], RETYPED, line=4).edits == 0


def test_a_heal_whose_test_still_fails_is_recorded_failed_and_undone(
    suite: Path, server: ShopServer
) -> None:
    store, history = open_history(suite.parent)
    heal = propose_heal(store, history, last_failure(history, "test_create_user"))
    assert isinstance(heal, Heal), heal
    before = (suite / "test_users.py").read_text()
    server.set_build(BUILDS[3])  # POST /users answers 201 again: the healed test fails
    result = CliRunner().invoke(
        cli, ["--dir", str(suite.parent / "store"), "heal", "apply", heal.heal_id]
    )
    assert result.exit_code == 1
    assert f"heal {heal.heal_id}: failed" in result.output
    assert (suite / "test_users.py").read_text() == before
    listed = {r["heal_id"]: r for r in heals(History(store)).dicts()}
    assert listed[heal.heal_id]["status"] == "failed"
