"""Orders: what customers bought, and what it cost."""

from __future__ import annotations

import httpx


def test_get_order(api_client: httpx.Client) -> None:
    response = api_client.get("/orders/1001")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "delivered"
    assert body["customer"] == {"id": 1, "name": "Ada Lovelace", "email": "ada@example.com"}


def test_get_order_items(api_client: httpx.Client) -> None:
    response = api_client.get("/orders/1008")
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(item["sku"], item["quantity"]) for item in items] == [("MS-2002", 1), ("CB-4004", 1)]


def test_order_total_is_the_sum_of_its_items(api_client: httpx.Client) -> None:
    response = api_client.get("/orders/1004")
    assert response.status_code == 200
    body = response.json()
    expected = sum(item["quantity"] * item["unit_price"] for item in body["items"])
    assert body["total"] == round(expected, 2)


def test_order_total_is_as_invoiced(api_client: httpx.Client) -> None:
    # fails on purpose: the expected total was copied from an outdated invoice
    response = api_client.get("/orders/1003")
    assert response.status_code == 200
    assert response.json()["total"] == 445.00


def test_get_unknown_order_returns_404(api_client: httpx.Client) -> None:
    response = api_client.get("/orders/42")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_create_order(api_client: httpx.Client) -> None:
    order = {"customer_id": 2, "items": [{"sku": "CB-4004", "quantity": 2}]}
    response = api_client.post("/orders", json=order)
    assert response.status_code == 201
    body = response.json()
    assert response.headers["Location"] == f"/orders/{body['id']}"
    assert (body["status"], body["total"]) == ("pending", 19.98)


def test_create_order_takes_stock(api_client: httpx.Client) -> None:
    before = api_client.get("/inventory/HS-5005").json()["stock"]
    order = {"customer_id": 3, "items": [{"sku": "HS-5005", "quantity": 1}]}
    assert api_client.post("/orders", json=order).status_code == 201
    after = api_client.get("/inventory/HS-5005").json()["stock"]
    assert after == before - 1


def test_create_order_without_items_is_rejected(api_client: httpx.Client) -> None:
    response = api_client.post("/orders", json={"customer_id": 2, "items": []})
    assert response.status_code == 422
    assert response.json()["error"] == "validation_failed"


def test_create_order_with_unknown_sku_returns_404(api_client: httpx.Client) -> None:
    # fails on purpose: the API answers 422, an unknown sku is invalid input
    order = {"customer_id": 2, "items": [{"sku": "XX-0000", "quantity": 1}]}
    response = api_client.post("/orders", json=order)
    assert response.status_code == 404
