"""Response schemas inferred from recorded exchanges, and the changes between them.

The store comes from real `pytest --memory` runs of the example users tests
against the shop API: baseline, `name` renamed `full_name`, then POST /users
answering 200 instead of 201 (twice). Kinds of change the shop never makes
(a type change, a flapping field) are checked on snapshots built from bodies.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from testmem.agents.schema import ApiChange, Snapshot, changes_in, detect_changes, value_format
from testmem.examples.builds import BUILDS
from testmem.examples.shop_api import ShopServer, serve
from testmem.memory.query import History
from testmem.memory.store import Store

EXAMPLE_USERS = Path(__file__).parent.parent / "examples" / "suite" / "test_users.py"


@pytest.fixture(scope="module")
def server() -> Iterator[ShopServer]:
    with serve(BUILDS[0]) as running:
        yield running


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, server: ShopServer) -> History:
    root = tmp_path_factory.mktemp("schema")
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "suite").mkdir()
    shutil.copy(EXAMPLE_USERS, root / "suite")
    for number in (0, 3, 4, 4):
        server.set_build(BUILDS[number])
        subprocess.run(
            [sys.executable, "-m", "pytest", "suite", "-q", "-p", "no:randomly", "--memory",
             "--memory-dir", str(root / "store"), "--api-base-url", server.url,
             "--memory-build", BUILDS[number].label],
            cwd=root, capture_output=True, timeout=300, check=False,
        )  # fmt: skip
    return History(Store.open(root / "store"))


def kinds(changes: list[ApiChange]) -> set[tuple[str, str, str, str | None, str | None]]:
    return {(c.method, c.route, c.kind, c.path, c.new_path) for c in changes}


def test_a_renamed_field_is_detected_on_every_route_that_answers_it(history: History) -> None:
    found = kinds(detect_changes(history, min_observations=2))
    assert ("GET", "/users/{id}", "renamed", "name", "full_name") in found
    assert ("POST", "/users", "renamed", "name", "full_name") in found
    assert ("GET", "/users", "renamed", "items[].name", "items[].full_name") in found


def test_a_rename_carries_its_evidence(history: History) -> None:
    rename = next(c for c in detect_changes(history, "/users/{id}", "GET") if c.kind == "renamed")
    assert rename.observations == 3
    assert (rename.since_build, rename.last_good_build) == ("v1.3.0", "v1.0.0")
    assert (rename.key, rename.new_key) == ("name", "full_name")


def test_a_changed_success_status_is_detected(history: History) -> None:
    status = [c for c in detect_changes(history, "/users", "POST") if c.kind == "status_changed"]
    assert [(c.old, c.new, c.observations) for c in status] == [("201", "200", 2)]


def test_a_change_needs_its_number_of_observations(history: History) -> None:
    found = kinds(detect_changes(history, min_observations=3))
    assert ("GET", "/users/{id}", "renamed", "name", "full_name") in found
    assert not any(kind == "status_changed" for _, _, kind, _, _ in found)


def test_changes_are_judged_as_of_a_run(history: History) -> None:
    renamed_at = history.sql("SELECT started_at FROM runs WHERE build = 'v1.3.0'").rows[0][0]
    as_then = detect_changes(history, "/users/{id}", "GET", 1, until=renamed_at)
    assert [(c.kind, c.observations) for c in as_then] == [("renamed", 1)]


def test_routes_that_did_not_change_report_nothing(history: History) -> None:
    assert detect_changes(history, "/users/{id}/orders", "GET", 1) == []


# -- snapshots built from bodies: kinds of change the shop never makes -------------


def snapshot(n: int, *bodies: Any, status: int = 200) -> Snapshot:
    from testmem.agents.schema import _add_shape

    shot = Snapshot(f"run{n}", f"b{n}", datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=n))
    shot.statuses.add(status)
    for body in bodies:
        _add_shape(shot, body, "")
    return shot


def test_a_type_change_is_detected() -> None:
    series = [snapshot(0, {"id": 1, "zip": 1234}), snapshot(1, {"id": 2, "zip": "1234"})]
    [change] = changes_in("/a", "GET", series)
    assert (change.kind, change.path, change.old, change.new) == (
        "type_changed",
        "zip",
        "integer",
        "string",
    )


def test_integers_and_floats_are_both_numbers() -> None:
    series = [snapshot(0, {"total": 20}), snapshot(1, {"total": 19.98})]
    assert changes_in("/a", "GET", series) == []


def test_a_removed_field_is_reported_once_with_its_children() -> None:
    series = [snapshot(0, {"id": 1, "address": {"city": "x"}}), snapshot(1, {"id": 1})]
    assert [(c.kind, c.path) for c in changes_in("/a", "GET", series)] == [("removed", "address")]


def test_an_empty_list_does_not_remove_its_items_fields() -> None:
    series = [snapshot(0, {"items": [{"id": 1}]}), snapshot(1, {"items": []})]
    assert changes_in("/a", "GET", series) == []


def test_a_field_that_comes_back_is_no_change() -> None:
    series = [snapshot(0, {"a": 1, "b": 2}), snapshot(1, {"a": 1}), snapshot(2, {"a": 1, "b": 2})]
    assert changes_in("/a", "GET", series) == []


def test_shared_values_pick_the_rename_among_several_new_fields() -> None:
    series = [
        snapshot(0, {"name": "Ada"}, {"name": "Alan"}),
        snapshot(1, {"nick": "x", "full_name": "Ada"}, {"nick": "y", "full_name": "Alan"}),
    ]
    found = {(c.kind, c.path, c.new_path) for c in changes_in("/a", "GET", series)}
    assert found == {("renamed", "name", "full_name"), ("added", "nick", None)}


def test_formats_are_recognised_from_every_sample() -> None:
    assert value_format({'"2024-01-08T09:15:00Z"', '"2024-05-01T06:00:00+00:00"'}) == "date-time"
    assert value_format({'"ada@example.com"'}) == "email"
    assert value_format({'"ada@example.com"', '"not an address"'}) is None
