"""Users: the shop's customers."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


def _new_user() -> dict[str, Any]:
    # A fresh email each time: the API refuses a second account per address,
    # and the suite may run many times against one server.
    return {
        "name": "Barbara Liskov",
        "email": f"barbara.liskov+{uuid.uuid4().hex[:8]}@example.com",
        "address": {"street": "32 Vassar Street", "city": "Cambridge", "country": "US"},
    }


def test_list_users(api_client: httpx.Client) -> None:
    response = api_client.get("/users")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] >= 6
    assert [user["id"] for user in body["items"][:3]] == [1, 2, 3]


def test_list_users_paginates(api_client: httpx.Client) -> None:
    response = api_client.get("/users", params={"limit": 2, "offset": 2})
    assert response.status_code == 200
    assert [user["id"] for user in response.json()["items"]] == [3, 4]


def test_list_users_rejects_a_negative_offset(api_client: httpx.Client) -> None:
    response = api_client.get("/users", params={"offset": -1})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


def test_get_user(api_client: httpx.Client) -> None:
    response = api_client.get("/users/1")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Ada Lovelace"


def test_get_user_has_the_documented_fields(api_client: httpx.Client) -> None:
    response = api_client.get("/users/2")
    assert response.status_code == 200
    assert {"id", "name", "email", "address", "created_at"} <= set(response.json())


def test_get_user_address(api_client: httpx.Client) -> None:
    response = api_client.get("/users/2")
    assert response.status_code == 200
    address = response.json()["address"]
    assert address == {"street": "78 High Street", "city": "Cambridge", "country": "GB"}


def test_get_user_phone_number(api_client: httpx.Client) -> None:
    # fails on purpose: the API has no phone numbers; this test expects one
    response = api_client.get("/users/1")
    assert response.status_code == 200
    assert response.json()["phone"] == "+44 20 7946 0018"


def test_get_unknown_user_returns_404(api_client: httpx.Client) -> None:
    response = api_client.get("/users/9999")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_create_user(api_client: httpx.Client) -> None:
    response = api_client.post("/users", json=_new_user())
    assert response.status_code == 201
    body = response.json()
    assert response.headers["Location"] == f"/users/{body['id']}"


def test_created_user_can_be_read_back(api_client: httpx.Client) -> None:
    new_user = _new_user()
    created = api_client.post("/users", json=new_user).json()
    response = api_client.get(f"/users/{created['id']}")
    assert response.status_code == 200
    assert response.json()["email"] == new_user["email"]


def test_create_user_without_email_is_rejected(api_client: httpx.Client) -> None:
    new_user = _new_user()
    del new_user["email"]
    response = api_client.post("/users", json=new_user)
    assert response.status_code == 422
    assert "email" in response.json()["fields"]


def test_create_user_with_malformed_json_is_rejected(api_client: httpx.Client) -> None:
    response = api_client.post(
        "/users", content=b'{"name": "Ada"', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


def test_list_user_orders(api_client: httpx.Client) -> None:
    response = api_client.get("/users/1/orders")
    assert response.status_code == 200
    orders = response.json()["items"]
    assert {1001, 1002, 1007} <= {order["id"] for order in orders}
    assert all(order["customer"]["id"] == 1 for order in orders)
