"""One cause, one incident, one classification: failures of different wordings
that one API change or one server error explains join one incident, and a
change once classified intended stays so when later builds get noisier.

Real `pytest --memory` runs of a suite driving a Starlette app in-process
through `TestClient`, one per build (``SHOP_BUILD``), triaged at their end.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runs import record

from testmem.agents.triage import decisions
from testmem.memory.query import History
from testmem.memory.store import Store

APP = """
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

BUILD = int(os.environ.get("SHOP_BUILD", "0"))
SEEN = {"profiles": 0}


async def profile(request):
    name = request.path_params["name"]
    SEEN["profiles"] += 1
    if BUILD >= 2 and name == "bob":  # a neighbour on the same route, unavailable
        return JSONResponse({"errors": ["upstream unavailable"]}, status_code=503)
    image = "avatar" if BUILD >= 1 else "image"  # the intended rename
    return JSONResponse({"profile": {"name": name, image: f"/img/{name}.png"}})


async def order(request):
    if BUILD >= 1:  # the regression
        return JSONResponse({"errors": ["KeyError: 'total'"]}, status_code=500)
    return JSONResponse({"order": {"id": int(request.path_params["id"])}})


app = Starlette(routes=[Route("/profiles/{name}", profile), Route("/orders/{id:int}", order)])
"""

CONFTEST = """
import pytest
from starlette.testclient import TestClient

from app import app


@pytest.fixture
def client():
    with TestClient(app) as client:
        yield client
"""

SUITE = """
def test_profile_image(client):
    assert client.get("/profiles/joe").json()["profile"]["image"] == "/img/joe.png"


def test_profile_is_as_registered(client):
    assert client.get("/profiles/ann").json() == {
        "profile": {"name": "ann", "image": "/img/ann.png"}
    }


def test_order_answers(client):
    assert client.get("/orders/1").status_code == 200


def test_order_is_as_placed(client):
    assert client.get("/orders/2").json() == {"order": {"id": 2}}


def test_profile_after_a_neighbour(client):
    client.get("/profiles/bob")  # a neighbour whose answer this test ignores
    assert client.get("/profiles/eve").json()["profile"]["image"] == "/img/eve.png"
"""


def play(root: Path, builds: int) -> list[dict[str, dict[str, object]]]:
    """Each build's decisions, by test name."""
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "suite").mkdir()
    for name, text in {"app.py": APP, "conftest.py": CONFTEST, "test_shop.py": SUITE}.items():
        (root / "suite" / name).write_text(text)
    played = []
    for build in range(builds):
        record(root, None, f"v{build}", {"SHOP_BUILD": str(build), "PYTHONPATH": _path(root)})
        history = History(Store.open(root / "store"))
        rows = decisions(history, history.resolve_run("latest")).dicts()
        played.append({r["nodeid"].rpartition("::")[2]: r for r in rows})
    return played


def _path(root: Path) -> str:
    import os

    return os.pathsep.join(filter(None, (str(root / "suite"), os.environ.get("PYTHONPATH"))))


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, dict[str, object]]]:
    return play(tmp_path_factory.mktemp("one-cause"), 4)


def incidents(build: dict[str, dict[str, object]]) -> dict[str, object]:
    return {name: decided["incident_id"] for name, decided in build.items()}


def test_a_rename_s_failures_of_every_wording_join_one_incident(
    builds: list[dict[str, dict[str, object]]],
) -> None:
    incident = incidents(builds[1])
    # a missing key and a whole-dict diff, explained by the same renamed answer
    assert incident["test_profile_image"] == incident["test_profile_is_as_registered"]
    assert builds[1]["test_profile_image"]["category"] == "outdated"


def test_a_server_error_s_failures_of_every_wording_join_one_incident(
    builds: list[dict[str, dict[str, object]]],
) -> None:
    incident = incidents(builds[1])
    # a status check and a whole-dict diff of the 500's body
    assert incident["test_order_answers"] == incident["test_order_is_as_placed"]
    assert incident["test_order_answers"] != incident["test_profile_image"]


def test_a_change_classified_intended_stays_so_when_a_later_build_is_noisier(
    builds: list[dict[str, dict[str, object]]],
) -> None:
    # from build 2 on, a 503 on the same route comes first in the same test
    decided = [b["test_profile_after_a_neighbour"] for b in builds[1:]]
    assert [d["category"] for d in decided] == ["outdated"] * 3, decided
    assert {d["incident_id"] for d in decided} == {incidents(builds[1])["test_profile_image"]}
