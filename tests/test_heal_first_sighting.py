"""A change is healed at first sight when the run itself is consistent (several
answers of the route, all of the new shape, or values that moved to the new
key), and waits a run when the evidence is one answer. Real `pytest --memory`
runs against a JSON API on 127.0.0.1, triaged at their end as by default."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_api import serve_json
from runs import record

from testmem.agents.healer import heals
from testmem.agents.triage import decisions
from testmem.memory.query import History
from testmem.memory.store import Store

ONE_ANSWER = """
def test_widget_name(api_client):
    assert api_client.get("/widgets/1").json()["name"]
"""

TWO_ANSWERS = """
def test_widget_names(api_client):
    bodies = [api_client.get(f"/widgets/{number}").json() for number in (1, 2)]
    assert all(body["name"] for body in bodies)
"""

OLD = {"/widgets/1": {"id": 1, "name": "bolt"}, "/widgets/2": {"id": 2, "name": "nut"}}
NEW = {"/widgets/1": {"id": 1, "title": "Bolt M6"}, "/widgets/2": {"id": 2, "title": "Nut M6"}}
MOVED = {"/widgets/1": {"id": 1, "title": "bolt"}, "/widgets/2": {"id": 2, "title": "nut"}}


def after_one_run_of(tmp_path: Path, suite: str, new: dict[str, object]) -> tuple[str, int]:
    """The decision on the test in the first run of ``new``, and the heals proposed."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_widgets.py").write_text(suite)
    with serve_json(dict(OLD)) as api:
        record(tmp_path, api.url, "v1")
        api.answers.update(new)
        record(tmp_path, api.url, "v2")
    history = History(Store.open(tmp_path / "store"))
    (decided,) = decisions(history, history.resolve_run("latest")).dicts()
    return f"{decided['action']}: {decided['reason']}", len(heals(history).rows)


@pytest.mark.parametrize(
    ("suite", "new", "expected"),
    [
        (TWO_ANSWERS, NEW, "heal"),  # two answers, both renamed
        (ONE_ANSWER, MOVED, "heal"),  # one answer, but its value moved to the new key
        (ONE_ANSWER, NEW, "none"),  # one answer, new values: wait for the next run
    ],
    ids=["several-answers", "value-moved", "one-answer"],
)
def test_a_rename_is_healed_at_first_sight_only_on_consistent_evidence(
    tmp_path: Path, suite: str, new: dict[str, object], expected: str
) -> None:
    decided, proposed = after_one_run_of(tmp_path, suite, new)
    assert decided.startswith(expected), decided
    assert proposed == (1 if expected == "heal" else 0)
