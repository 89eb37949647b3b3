"""The example shop API, over real HTTP on loopback: its routes, and each Build knob."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from testmem.examples.builds import BUILDS
from testmem.examples.shop_api import Build, ShopServer, serve

REPO = Path(__file__).resolve().parent.parent
# httpx builds a TLS context per client, about 200 ms here, even for plain
# loopback HTTP: build it once.
TLS = ssl.create_default_context()
NEW_USER = {
    "name": "Barbara Liskov",
    "email": "barbara.liskov@example.com",
    "address": {"street": "32 Vassar Street", "city": "Cambridge", "country": "US"},
}


@pytest.fixture
def shop() -> Iterator[ShopServer]:
    with serve() as server:
        yield server


@pytest.fixture
def client(shop: ShopServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shop.url, timeout=5, verify=TLS) as client:
        yield client


def _json(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


def _is_utc_timestamp(value: str) -> bool:
    return value.endswith("Z") and datetime.fromisoformat(value).utcoffset() == timedelta(0)


def _shape(detail: str) -> str:
    """An error text with its volatile parts masked, in the spirit of a fingerprint."""
    detail = re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "<uuid>", detail)
    detail = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<time>", detail)
    detail = re.sub(r"req-[0-9a-f]+", "req-<hex>", detail)
    return re.sub(r"\d+(\.\d+)?", "<n>", detail)


# --- serving -----------------------------------------------------------------------


def test_serve_listens_on_loopback_with_a_free_port(shop: ShopServer) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", shop.url)
    assert not shop.url.endswith(":0")


def test_stop_closes_the_port(shop: ShopServer) -> None:
    shop.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(shop.url + "/health", timeout=2, verify=TLS)


def test_server_writes_nothing_to_the_console(
    client: httpx.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    client.get("/users/1")
    client.get("/no/such/route")
    assert capfd.readouterr() == ("", "")


def test_module_serves_in_the_foreground_with_the_chosen_build() -> None:
    command = [sys.executable, "-m", "testmem.examples.shop_api", "--port", "0", "--build", "6"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = re.search(r"http://\S+", process.stdout.readline())
        assert url is not None
        health = httpx.get(url.group() + "/health", timeout=5, verify=TLS).json()
        assert health["version"] == "v1.6.0"
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_concurrent_requests_share_one_rate_limit_counter(
    shop: ShopServer, client: httpx.Client
) -> None:
    shop.set_build(Build(rate_limit_every=4))
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: client.get("/inventory").status_code, range(20)))
    assert sorted(statuses) == [200] * 15 + [429] * 5


# --- baseline routes ---------------------------------------------------------------


def test_health_reports_the_build(client: httpx.Client) -> None:
    assert _json(client.get("/health")) == {"status": "ok", "version": "v1.0.0", "build": 0}


def test_user_has_the_documented_shape(client: httpx.Client) -> None:
    user = _json(client.get("/users/1"))
    assert list(user) == ["id", "name", "email", "address", "created_at"]
    assert (user["id"], user["name"], user["email"]) == (1, "Ada Lovelace", "ada@example.com")
    assert list(user["address"]) == ["street", "city", "country"]
    assert _is_utc_timestamp(user["created_at"])


def test_order_has_the_documented_shape(client: httpx.Client) -> None:
    order = _json(client.get("/orders/1001"))
    assert list(order) == ["id", "customer", "items", "total", "status", "created_at"]
    assert order["customer"] == {"id": 1, "name": "Ada Lovelace", "email": "ada@example.com"}
    assert all(list(item) == ["sku", "quantity", "unit_price"] for item in order["items"])
    assert _is_utc_timestamp(order["created_at"])


def test_seeded_order_totals_are_the_sum_of_their_items(client: httpx.Client) -> None:
    for order_id in range(1001, 1009):
        order = _json(client.get(f"/orders/{order_id}"))
        cents = sum(round(i["unit_price"] * 100) * i["quantity"] for i in order["items"])
        assert round(order["total"] * 100) == cents, order_id


def test_inventory_item_has_the_documented_shape(client: httpx.Client) -> None:
    item = _json(client.get("/inventory/KB-1001"))
    assert list(item) == ["sku", "name", "stock", "unit_price", "warehouse", "updated_at"]
    assert item["warehouse"] == {"code": "AMS1", "city": "Amsterdam"}
    assert _is_utc_timestamp(item["updated_at"])


def test_listings_are_paginated(client: httpx.Client) -> None:
    page = _json(client.get("/users", params={"limit": 2, "offset": 4}))
    assert [user["id"] for user in page["items"]] == [5, 6]
    assert (page["total"], page["limit"], page["offset"]) == (6, 2, 4)


def test_bad_pagination_answers_400(client: httpx.Client) -> None:
    assert _json(client.get("/inventory", params={"limit": "lots"}), 400)["error"] == "bad_request"


def test_seeded_data_is_the_same_on_every_server(client: httpx.Client) -> None:
    with serve() as other, httpx.Client(base_url=other.url, verify=TLS) as other_client:
        for path in ("/users", "/users/1/orders", "/inventory"):
            assert _json(client.get(path)) == _json(other_client.get(path))


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/users/99", "user 99 does not exist"),
        ("/users/abc", "user abc does not exist"),
        ("/users/99/orders", "user 99 does not exist"),
        ("/orders/7", "order 7 does not exist"),
        ("/inventory/XX-0000", "inventory item XX-0000 does not exist"),
        ("/nowhere", "no route for GET /nowhere"),
    ],
)
def test_unknown_things_answer_404_json_errors(
    client: httpx.Client, path: str, detail: str
) -> None:
    assert _json(client.get(path), 404) == {"error": "not_found", "detail": detail}


def test_unsupported_method_answers_405_with_allow(client: httpx.Client) -> None:
    response = client.delete("/users/1")
    assert _json(response, 405)["error"] == "method_not_allowed"
    assert response.headers["Allow"] == "GET"


def test_user_orders_are_that_users_orders(client: httpx.Client) -> None:
    orders = _json(client.get("/users/1/orders"))["items"]
    assert [order["id"] for order in orders] == [1001, 1002, 1007]


# --- creating and changing ---------------------------------------------------------


def test_create_user_answers_201_and_locates_the_user(client: httpx.Client) -> None:
    response = client.post("/users", json=NEW_USER)
    created = _json(response, 201)
    assert created["id"] == 7
    assert _is_utc_timestamp(created["created_at"])
    assert _json(client.get(response.headers["Location"])) == created


def test_create_user_with_malformed_json_answers_400(client: httpx.Client) -> None:
    response = client.post("/users", content=b"{nope")
    assert _json(response, 400)["error"] == "bad_request"


def test_create_user_with_missing_fields_answers_422_naming_them(client: httpx.Client) -> None:
    body = _json(client.post("/users", json={"name": "Nobody"}), 422)
    assert body["error"] == "validation_failed"
    assert set(body["fields"]) == {"email", "address"}


def test_create_user_with_a_taken_email_answers_409(client: httpx.Client) -> None:
    taken = {**NEW_USER, "email": "ada@example.com"}
    assert _json(client.post("/users", json=taken), 409)["error"] == "conflict"


def test_create_order_prices_the_items_and_answers_201(client: httpx.Client) -> None:
    wanted = {"customer_id": 2, "items": [{"sku": "MS-2002", "quantity": 3}]}
    response = client.post("/orders", json=wanted)
    order = _json(response, 201)
    assert response.headers["Location"] == f"/orders/{order['id']}"
    assert order["items"] == [{"sku": "MS-2002", "quantity": 3, "unit_price": 24.99}]
    assert (order["total"], order["status"]) == (74.97, "pending")
    assert order["customer"]["name"] == "Alan Turing"


def test_create_order_takes_the_stock(client: httpx.Client) -> None:
    wanted = {"customer_id": 2, "items": [{"sku": "MN-3003", "quantity": 2}]}
    _json(client.post("/orders", json=wanted), 201)
    assert _json(client.get("/inventory/MN-3003"))["stock"] == 40


def test_create_order_beyond_the_stock_answers_409_and_takes_nothing(
    client: httpx.Client,
) -> None:
    wanted = {
        "customer_id": 2,
        "items": [{"sku": "CB-4004", "quantity": 1}, {"sku": "MN-3003", "quantity": 43}],
    }
    assert _json(client.post("/orders", json=wanted), 409)["error"] == "insufficient_stock"
    assert _json(client.get("/inventory/CB-4004"))["stock"] == 1200


def test_create_order_with_invalid_items_answers_422_naming_them(client: httpx.Client) -> None:
    wanted = {"customer_id": 2, "items": [{"sku": "XX-0000", "quantity": 0}]}
    body = _json(client.post("/orders", json=wanted), 422)
    assert set(body["fields"]) == {"items[0].sku", "items[0].quantity"}


def test_patch_inventory_changes_stock_and_updated_at(client: httpx.Client) -> None:
    item = _json(client.patch("/inventory/DK-6006", json={"stock": 7}))
    assert item["stock"] == 7
    assert item["updated_at"] > "2024-05-03T06:00:00Z"
    assert _json(client.get("/inventory/DK-6006")) == item


def test_patch_inventory_refuses_unpatchable_fields(client: httpx.Client) -> None:
    body = _json(client.patch("/inventory/DK-6006", json={"sku": "X", "stock": -1}), 422)
    assert body["fields"] == {"sku": "cannot be changed", "stock": "an integer >= 0"}


# --- knobs -------------------------------------------------------------------------


def test_rate_limit_answers_every_nth_inventory_request_with_429(
    shop: ShopServer, client: httpx.Client
) -> None:
    shop.set_build(Build(rate_limit_every=3))
    paths = ["/inventory", "/inventory/KB-1001", "/users", "/inventory"] * 2
    statuses = [client.get(path).status_code for path in paths]
    assert statuses == [200, 200, 200, 429, 200, 200, 200, 429]


def test_rate_limited_answer_carries_retry_after_and_a_json_error(
    shop: ShopServer, client: httpx.Client
) -> None:
    shop.set_build(Build(rate_limit_every=1))
    response = client.patch("/inventory/KB-1001", json={"stock": 1})
    assert _json(response, 429)["error"] == "rate_limited"
    assert response.headers["Retry-After"] == "1"


def test_flaky_503s_replay_with_the_same_seed(shop: ShopServer, client: httpx.Client) -> None:
    def statuses(build: Build) -> list[int]:
        shop.set_build(build)
        return [client.get("/orders/1002").status_code for _ in range(30)]

    first = statuses(Build(flaky_503_rate=0.5, seed=7))
    assert set(first) == {200, 503}
    assert statuses(Build(flaky_503_rate=0.5, seed=7)) == first
    assert statuses(Build(flaky_503_rate=0.5, seed=8)) != first


def test_flaky_503s_only_hit_get_order(shop: ShopServer, client: httpx.Client) -> None:
    shop.set_build(Build(flaky_503_rate=1.0))
    assert _json(client.get("/orders/1002"), 503)["error"] == "unavailable"
    _json(client.get("/users/1/orders"))
    wanted = {"customer_id": 2, "items": [{"sku": "CB-4004", "quantity": 1}]}
    _json(client.post("/orders", json=wanted), 201)


def test_renamed_user_field_replaces_name_everywhere(
    shop: ShopServer, client: httpx.Client
) -> None:
    shop.set_build(Build(rename_user_name_to="full_name"))
    shown = [
        _json(client.get("/users/1")),
        _json(client.get("/users"))["items"][0],
        _json(client.post("/users", json=NEW_USER), 201),
    ]
    assert all("name" not in user for user in shown)
    assert [user["full_name"] for user in shown[:2]] == ["Ada Lovelace"] * 2


def test_renamed_user_field_is_accepted_on_create(shop: ShopServer, client: httpx.Client) -> None:
    shop.set_build(Build(rename_user_name_to="full_name"))
    renamed = {"full_name": "Barbara Liskov", **{k: v for k, v in NEW_USER.items() if k != "name"}}
    assert _json(client.post("/users", json=renamed), 201)["full_name"] == "Barbara Liskov"


def test_create_user_status_can_change(shop: ShopServer, client: httpx.Client) -> None:
    shop.set_build(Build(create_user_status=200))
    response = client.post("/users", json=NEW_USER)
    assert _json(response, 200)["email"] == NEW_USER["email"]
    assert response.headers["Location"] == "/users/7"


def test_new_user_field_adds_a_loyalty_tier(shop: ShopServer, client: httpx.Client) -> None:
    shop.set_build(Build(new_user_field=True))
    tiers = {user["id"]: user["loyalty_tier"] for user in _json(client.get("/users"))["items"]}
    assert tiers == {1: "gold", 2: "bronze", 3: "bronze", 4: "bronze", 5: "bronze", 6: "bronze"}


def test_order_total_regression_answers_500s_that_differ_only_in_volatile_parts(
    shop: ShopServer, client: httpx.Client
) -> None:
    shop.set_build(Build(regression_order_total=True))
    first, second = (_json(client.get("/orders/1001"), 500) for _ in range(2))
    assert first["error"] == second["error"] == "internal"
    assert first["detail"] != second["detail"]
    assert _shape(first["detail"]) == _shape(second["detail"])
    assert first["detail"].startswith("OrderTotalMismatch: order 1001 total ")
    assert " != 139.88 " in first["detail"]


def test_order_total_regression_keeps_404_for_unknown_orders(
    shop: ShopServer, client: httpx.Client
) -> None:
    shop.set_build(Build(regression_order_total=True))
    assert _json(client.get("/orders/7"), 404)["error"] == "not_found"


def test_warehouse_regression_answers_500s_that_differ_only_in_volatile_parts(
    shop: ShopServer, client: httpx.Client
) -> None:
    shop.set_build(Build(regression_inventory_warehouse=True))
    first, second = (_json(client.get("/inventory/KB-1001"), 500) for _ in range(2))
    assert first["detail"] != second["detail"]
    assert _shape(first["detail"]) == _shape(second["detail"])
    assert _shape(first["detail"]) == "KeyError: 'warehouse' in request req-<hex>"


def test_warehouse_regression_drops_warehouse_from_listings(
    shop: ShopServer, client: httpx.Client
) -> None:
    shop.set_build(Build(regression_inventory_warehouse=True))
    items = _json(client.get("/inventory"))["items"]
    assert len(items) == 6
    assert all("warehouse" not in item for item in items)


def test_regressions_are_distinct_failures(shop: ShopServer, client: httpx.Client) -> None:
    shop.set_build(Build(regression_order_total=True, regression_inventory_warehouse=True))
    order_detail = _json(client.get("/orders/1001"), 500)["detail"]
    item_detail = _json(client.get("/inventory/KB-1001"), 500)["detail"]
    assert _shape(order_detail) != _shape(item_detail)


def test_set_build_switches_behaviour_live(shop: ShopServer, client: httpx.Client) -> None:
    _json(client.get("/orders/1001"))
    shop.set_build(Build(regression_order_total=True, label="v9.9.9"))
    _json(client.get("/orders/1001"), 500)
    assert _json(client.get("/health"))["version"] == "v9.9.9"
    assert shop.build.label == "v9.9.9"


def test_set_build_resets_the_rate_limit_counter(shop: ShopServer, client: httpx.Client) -> None:
    shop.set_build(Build(rate_limit_every=3))
    client.get("/inventory")
    client.get("/inventory")
    shop.set_build(Build(rate_limit_every=3))
    assert [client.get("/inventory").status_code for _ in range(3)] == [200, 200, 429]


def test_set_build_keeps_the_data(shop: ShopServer, client: httpx.Client) -> None:
    _json(client.post("/users", json=NEW_USER), 201)
    shop.set_build(BUILDS[1])
    assert _json(client.get("/users/7"))["email"] == NEW_USER["email"]


# --- the story of builds -----------------------------------------------------------

_KNOBS = [f.name for f in fields(Build) if f.name not in {"number", "label", "note", "seed"}]


def test_builds_tell_a_story_of_at_least_ten_releases() -> None:
    assert len(BUILDS) >= 10
    assert [build.number for build in BUILDS] == list(range(len(BUILDS)))
    assert len({build.label for build in BUILDS}) == len(BUILDS)
    assert all(re.fullmatch(r"v\d+\.\d+\.\d+", build.label) and build.note for build in BUILDS)


def test_builds_start_from_a_clean_baseline() -> None:
    baseline = BUILDS[0]
    assert all(getattr(baseline, knob) == getattr(Build(), knob) for knob in _KNOBS)


def test_every_knob_is_turned_on_by_some_build() -> None:
    for knob in _KNOBS:
        assert any(getattr(b, knob) != getattr(Build(), knob) for b in BUILDS), knob


@pytest.mark.parametrize("regression", ["regression_order_total", "regression_inventory_warehouse"])
def test_each_regression_persists_for_two_builds_or_more_then_is_fixed(regression: str) -> None:
    runs = "".join("x" if getattr(build, regression) else "." for build in BUILDS)
    assert re.fullmatch(r"\.+x{2,}\.+", runs), runs
