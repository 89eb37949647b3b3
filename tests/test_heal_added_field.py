"""An added field that breaks a whole-dict equality gets a heal: the expected
dict gains the field when it always had one value, else the comparison becomes
tolerant of fields beyond the expected ones; the patch says which."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from runs import record

from testmem.agents.edits import edit_source
from testmem.agents.healer import Heal, apply_heal, propose_heal_for
from testmem.agents.schema import ADDED, ApiChange
from testmem.examples.shop_api import Build, serve
from testmem.memory.query import History
from testmem.memory.store import Store

WHOLE_DICT = """
def test_user_one_is_exactly(api_client):
    body = api_client.get("/users/1").json()
    assert body == {expected!r}
"""


def test_an_added_field_that_breaks_an_equality_is_healed_and_verified(tmp_path: Path) -> None:
    with serve(Build()) as server:
        expected = httpx.get(f"{server.url}/users/1").json()
        (tmp_path / "pytest.ini").write_text("[pytest]\n")
        (tmp_path / "suite").mkdir()
        (tmp_path / "suite" / "test_exact.py").write_text(WHOLE_DICT.format(expected=expected))
        record(tmp_path, server.url, "v1")
        server.set_build(Build(number=5, label="v1.5.0", new_user_field=True))
        record(tmp_path, server.url, "v2")
        record(tmp_path, server.url, "v3")
        store = Store.open(tmp_path / "store")
        history = History(store)
        nodeid = "suite/test_exact.py::test_user_one_is_exactly"
        heal = propose_heal_for(store, history, history.resolve_run("latest"), nodeid)
        assert isinstance(heal, Heal), heal
        assert heal.how.startswith("expected dict updated")
        assert heal.diff.startswith(f"heal: {heal.how}\n")
        assert "'loyalty_tier'" in heal.diff or '"loyalty_tier"' in heal.diff
        outcome = apply_heal(store, History(store), heal.heal_id)
    assert outcome.status == "verified", outcome.output


SOURCE = """
def test_exact(api_client):
    body = api_client.get("/things/1").json()
    assert body == {"id": 1, "name": "bolt"}
"""


def added(value: str | None) -> ApiChange:
    return ApiChange(ADDED, "/things/{id}", "GET", "r2", "v2", 2, path="seen_at", value=value)


def assertion_of(source: str) -> str:
    return next(line.strip() for line in source.splitlines() if line.strip().startswith("assert"))


@pytest.mark.parametrize(
    ("answer", "holds"),
    [
        ({"id": 1, "name": "bolt", "seen_at": "12:00"}, True),
        ({"id": 1, "name": "bolt", "seen_at": "13:07"}, True),
        ({"id": 1, "name": "nut", "seen_at": "12:00"}, False),  # the intent still guarded
        ({"id": 1, "seen_at": "12:00"}, False),
    ],
)
def test_a_field_of_many_values_gets_a_tolerant_comparison(
    answer: dict[str, object], holds: bool
) -> None:
    edited = edit_source(SOURCE, ["test_exact"], added(None), line=4)
    assert edited.how.startswith("tolerant comparison")
    check = assertion_of(edited.source).removeprefix("assert ")
    assert (
        eval(check, {}, {"body": answer}) is holds
    )  # the line the edit wrote, nothing from an API


def test_a_field_of_one_value_joins_the_expected_dict() -> None:
    edited = edit_source(SOURCE, ["test_exact"], added('"gold"'), line=4)
    assert edited.how.startswith("expected dict updated")
    assert (
        assertion_of(edited.source) == 'assert body == {"id": 1, "name": "bolt", "seen_at": "gold"}'
    )


NESTED = """
def test_article(client):
    body = client.get("/articles/a-slug").json()
    assert body == {"article": {"slug": "a-slug", "author": {"username": "jake"}}}
"""


def test_a_nested_field_of_one_value_joins_its_own_dict_in_the_expected_one() -> None:
    change = ApiChange(
        ADDED, "/articles/{slug}", "GET", "r2", "v2", 2, path="article.readingTime", value="1"
    )
    edited = edit_source(NESTED, ["test_article"], change, line=4)
    assert edited.how.startswith("expected dict updated")
    expected = {"article": {"slug": "a-slug", "author": {"username": "jake"}, "readingTime": 1}}
    assert assertion_of(edited.source) == f"assert body == {expected!r}".replace("'", '"')


def test_a_nested_field_of_many_values_is_not_healed_by_a_looser_check() -> None:
    change = ApiChange(ADDED, "/articles/{slug}", "GET", "r2", "v2", 2, path="article.seenAt")
    assert not edit_source(NESTED, ["test_article"], change, line=4).edits
