"""Inventory: what is in stock, and where."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx


def test_list_inventory(api_client: httpx.Client) -> None:
    response = api_client.get("/inventory")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 6
    assert "KB-1001" in {item["sku"] for item in body["items"]}


def test_inventory_items_have_a_warehouse(api_client: httpx.Client) -> None:
    response = api_client.get("/inventory")
    assert response.status_code == 200
    for item in response.json()["items"]:
        assert item["warehouse"]["code"] in {"AMS1", "BER2", "LIS1"}


def test_get_inventory_item(api_client: httpx.Client) -> None:
    response = api_client.get("/inventory/KB-1001")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Mechanical keyboard"
    assert body["warehouse"] == {"code": "AMS1", "city": "Amsterdam"}


def test_inventory_item_updated_at_is_utc(api_client: httpx.Client) -> None:
    response = api_client.get("/inventory/DK-6006")
    assert response.status_code == 200
    updated_at = datetime.fromisoformat(response.json()["updated_at"])
    assert updated_at.utcoffset() == timedelta(0)


def test_get_unknown_sku_returns_404(api_client: httpx.Client) -> None:
    response = api_client.get("/inventory/XX-0000")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_patch_inventory_stock(api_client: httpx.Client) -> None:
    response = api_client.patch("/inventory/MN-3003", json={"stock": 40})
    assert response.status_code == 200
    assert response.json()["stock"] == 40


def test_patch_inventory_rejects_negative_stock(api_client: httpx.Client) -> None:
    response = api_client.patch("/inventory/MN-3003", json={"stock": -5})
    assert response.status_code == 422
    assert "stock" in response.json()["fields"]


def test_patch_inventory_cannot_move_the_warehouse(api_client: httpx.Client) -> None:
    move = {"warehouse": {"code": "LIS1", "city": "Lisbon"}}
    response = api_client.patch("/inventory/KB-1001", json=move)
    assert response.status_code == 422
    assert response.json()["fields"] == {"warehouse": "cannot be changed"}
