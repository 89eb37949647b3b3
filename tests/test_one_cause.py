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
from testmem.memory.causes import server_error_cause
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


# Two regressions of one build, each seen on two routes or by two tests alike:
# the warehouse join breaks (GET /items/{sku} answers 500, GET /items drops the
# field), and GET /orders/{id} fails two ways (a total mismatch for order 1, a
# ledger timeout for order 2). In build 2 order 1 fails a third way.
ERRORS_APP = """
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

BUILD = int(os.environ.get("SHOP_BUILD", "0"))
ITEMS = {"KB-1": {"sku": "KB-1", "warehouse": "AMS1"}, "MN-2": {"sku": "MN-2", "warehouse": "BER2"}}
ORDER_ERRORS = {
    1: {1: "OrderTotalMismatch: total 12.50 != 10.00", 2: "CurrencyMissing: order has no currency"},
    2: {1: "LedgerTimeout: ledger did not answer in 30s"},
}


def shown(item):
    return {k: v for k, v in item.items() if not (BUILD >= 1 and k == "warehouse")}


async def items(request):
    return JSONResponse({"items": [shown(i) for i in ITEMS.values()]})


async def item(request):
    if BUILD >= 1:
        body = {"error": "internal", "detail": "KeyError: 'warehouse' in request req-4f2a9c1b"}
        return JSONResponse(body, status_code=500)
    return JSONResponse(shown(ITEMS[request.path_params["sku"]]))


async def order(request):
    number = request.path_params["id"]
    error = ORDER_ERRORS.get(BUILD, {}).get(number)
    if error:
        return JSONResponse({"error": "internal", "detail": error}, status_code=500)
    return JSONResponse({"order": {"id": number}})


app = Starlette(routes=[
    Route("/items", items), Route("/items/{sku}", item), Route("/orders/{id:int}", order),
])
"""

ERRORS_SUITE = """
def test_item_answers(client):
    assert client.get("/items/KB-1").status_code == 200


def test_item_is_as_stocked(client):
    assert client.get("/items/MN-2").json() == {"sku": "MN-2", "warehouse": "BER2"}


def test_items_have_a_warehouse(client):
    for item in client.get("/items").json()["items"]:
        assert item["warehouse"] in {"AMS1", "BER2"}


def test_first_order_answers(client):
    assert client.get("/orders/1").status_code == 200


def test_second_order_answers(client):
    assert client.get("/orders/2").status_code == 200
"""


def play(
    root: Path, builds: int, app: str = APP, suite: str = SUITE
) -> list[dict[str, dict[str, object]]]:
    """Each build's decisions, by test name."""
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "suite").mkdir()
    for name, text in {"app.py": app, "conftest.py": CONFTEST, "test_shop.py": suite}.items():
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


@pytest.fixture(scope="module")
def errors(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, dict[str, object]]]:
    return play(tmp_path_factory.mktemp("server-errors"), 3, ERRORS_APP, ERRORS_SUITE)


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


def test_a_server_error_and_the_field_it_drops_elsewhere_are_one_incident(
    errors: list[dict[str, dict[str, object]]],
) -> None:
    incident = incidents(errors[1])
    # a 500 on GET /items/{sku}, and GET /items answering without `warehouse`
    assert incident["test_items_have_a_warehouse"] == incident["test_item_answers"]
    assert incident["test_item_is_as_stocked"] == incident["test_item_answers"]
    items = ("test_item_answers", "test_item_is_as_stocked", "test_items_have_a_warehouse")
    assert {errors[1][t]["category"] for t in items} == {"regression"}
    # the regression persists: its failures stay in its incident
    assert incidents(errors[2])["test_items_have_a_warehouse"] == incident["test_item_answers"]


def test_two_server_errors_on_one_route_are_two_incidents(
    errors: list[dict[str, dict[str, object]]],
) -> None:
    # the same words (assert 500 == 200) from one route, two different errors
    incident = incidents(errors[1])
    assert incident["test_first_order_answers"] != incident["test_second_order_answers"]
    assert incident["test_first_order_answers"] != incident["test_item_answers"]


def test_a_new_server_error_behind_the_same_failure_is_a_new_incident(
    errors: list[dict[str, dict[str, object]]],
) -> None:
    # build 2: order 1's first error is fixed and another one answers in its place
    before, after = (incidents(b)["test_first_order_answers"] for b in errors[1:])
    assert after != before
    assert after not in set(incidents(errors[1]).values())


def test_a_server_error_is_named_by_what_its_body_says_values_masked() -> None:
    one = '{"error": "internal", "detail": "KeyError: \'warehouse\' in request req-4f2a9c1b"}'
    two = '{"error": "internal", "detail": "KeyError: \'warehouse\' in request req-77e0d3aa"}'
    assert server_error_cause("GET", "/items/{sku}", 500, one) == server_error_cause(
        "PATCH", "/items", 500, two
    )
    other = '{"error": "internal", "detail": "KeyError: \'price\' in request req-4f2a9c1b"}'
    assert server_error_cause("GET", "/items/{sku}", 500, other) != server_error_cause(
        "GET", "/items/{sku}", 500, one
    )


@pytest.mark.parametrize(
    "body",
    [
        "Internal Server Error",
        '{"detail": "Internal Server Error"}',
        '{"errors": {"body": ["internal error"]}, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}',
        "<html><head><title>500 Internal Server Error</title></head>"
        "<body><center><h1>500 Internal Server Error</h1></center><hr>nginx</body></html>",
        "",
        "[" * 100_000,
    ],
)
def test_a_server_error_that_says_nothing_of_its_own_is_named_by_its_request(body: str) -> None:
    on_items = server_error_cause("GET", "/items/{sku}", 500, body)
    assert on_items == "server error 500 on GET /items/{sku}"
    assert server_error_cause("GET", "/orders/{id}", 500, body) != on_items


def test_the_values_of_the_request_are_masked_in_its_error() -> None:
    def cause(slug: str) -> str:
        body = f'{{"detail": "article {slug} cannot be rendered: no author"}}'
        url = f"http://testserver/api/articles/{slug}?author={slug}-by"
        return server_error_cause("GET", "/api/articles/{slug}", 500, body, url)

    assert cause("how-to-train-your-dragon") == cause("welcome-to-rust")
    assert "welcome" not in cause("welcome-to-rust")
