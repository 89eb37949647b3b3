"""A parametrised test broken by one API change gets one heal, not one per case,
and applying it settles every case (store recorded by real `pytest --memory`
runs against the shop API: baseline, then `name` renamed `full_name` twice)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from runs import record

from testmem.agents.healer import Heal, apply_heal, heals, propose_heal
from testmem.examples.builds import BUILDS
from testmem.examples.shop_api import ShopServer, serve
from testmem.memory.query import History
from testmem.memory.store import Store

PARAMETRISED = """
import pytest


@pytest.mark.parametrize("user", [1, 2, 3])
def test_a_user_has_a_name(api_client, user):
    body = api_client.get(f"/users/{user}").json()
    assert body["name"]
"""


@pytest.fixture
def server() -> Iterator[ShopServer]:
    with serve(BUILDS[0]) as running:
        yield running


@pytest.fixture
def recorded(tmp_path: Path, server: ShopServer) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_names.py").write_text(PARAMETRISED)
    for number in (0, 3, 3):
        server.set_build(BUILDS[number])
        record(tmp_path, server.url, BUILDS[number].label)
    return tmp_path


def test_one_heal_for_all_cases_and_applying_it_settles_them(recorded: Path) -> None:
    store = Store.open(recorded / "store")
    history = History(store)
    run_id = history.resolve_run("latest")
    failures = history.sql("SELECT * FROM failures WHERE run_id = ?", [run_id]).dicts()
    assert len({f["nodeid"] for f in failures}) == 3
    proposed = [propose_heal(store, history, f) for f in failures]
    assert all(isinstance(h, Heal) for h in proposed), proposed
    assert len({h.heal_id for h in proposed if isinstance(h, Heal)}) == 1
    (heal_id,) = {h.heal_id for h in proposed if isinstance(h, Heal)}
    outcome = apply_heal(store, History(store), heal_id)
    assert outcome.status == "verified", outcome.output
    assert "3 passed" in outcome.output  # every case ran, not only the first
    listed = heals(History(store)).dicts()
    assert [(h["heal_id"], h["status"]) for h in listed] == [(heal_id, "verified")]
