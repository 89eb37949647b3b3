"""The shop's starting data: the same every time, so tests can name it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

_WAREHOUSES = {
    "AMS1": {"code": "AMS1", "city": "Amsterdam"},
    "BER2": {"code": "BER2", "city": "Berlin"},
    "LIS1": {"code": "LIS1", "city": "Lisbon"},
}

# (id, name, email, (street, city, country), created_at)
_USERS = [
    (1, "Ada Lovelace", "ada@example.com",
     ("12 St James's Square", "London", "GB"), "2024-01-08T09:15:00Z"),
    (2, "Alan Turing", "alan.turing@example.com",
     ("78 High Street", "Cambridge", "GB"), "2024-01-09T14:02:31Z"),
    (3, "Grace Hopper", "grace.hopper@example.com",
     ("1 Navy Way", "Arlington", "US"), "2024-02-12T17:45:09Z"),
    (4, "Katherine Johnson", "katherine.johnson@example.com",
     ("300 E Street SW", "Washington", "US"), "2024-03-01T08:00:00Z"),
    (5, "Edsger Dijkstra", "edsger.dijkstra@example.com",
     ("Plantage Muidergracht 24", "Amsterdam", "NL"), "2024-03-19T11:30:42Z"),
    (6, "Margaret Hamilton", "margaret.hamilton@example.com",
     ("77 Massachusetts Ave", "Cambridge", "US"), "2024-04-02T16:20:15Z"),
]  # fmt: skip

# (sku, name, stock, unit_price, warehouse code, updated_at)
_INVENTORY = [
    ("KB-1001", "Mechanical keyboard", 140, 89.90, "AMS1", "2024-05-01T06:00:00Z"),
    ("MS-2002", "Wireless mouse", 380, 24.99, "AMS1", "2024-05-01T06:00:00Z"),
    ("MN-3003", "27-inch monitor", 42, 229.00, "BER2", "2024-05-02T06:00:00Z"),
    ("CB-4004", "USB-C cable 1 m", 1200, 9.99, "BER2", "2024-05-02T06:00:00Z"),
    ("HS-5005", "Noise-cancelling headset", 75, 149.50, "LIS1", "2024-05-03T06:00:00Z"),
    ("DK-6006", "Docking station", 60, 119.00, "LIS1", "2024-05-03T06:00:00Z"),
]  # fmt: skip

# (id, customer id, [(sku, quantity)], status, created_at)
_ORDERS = [
    (1001, 1, [("KB-1001", 1), ("MS-2002", 2)], "delivered", "2024-05-04T10:12:45Z"),
    (1002, 1, [("CB-4004", 3)], "shipped", "2024-05-06T18:30:02Z"),
    (1003, 2, [("MN-3003", 2)], "paid", "2024-05-07T09:01:17Z"),
    (1004, 3, [("HS-5005", 1), ("CB-4004", 2)], "pending", "2024-05-08T13:44:51Z"),
    (1005, 4, [("DK-6006", 1)], "delivered", "2024-05-09T07:25:33Z"),
    (1006, 5, [("KB-1001", 1)], "cancelled", "2024-05-10T21:05:08Z"),
    (1007, 1, [("HS-5005", 1)], "paid", "2024-05-12T15:50:29Z"),
    (1008, 6, [("MS-2002", 1), ("CB-4004", 1)], "shipped", "2024-05-13T12:00:00Z"),
]  # fmt: skip


@dataclass
class Catalog:
    """Everything the shop knows, keyed the way the routes look it up."""

    users: dict[int, JSON]
    orders: dict[int, JSON]
    inventory: dict[str, JSON]

    def next_user_id(self) -> int:
        return max(self.users, default=0) + 1

    def next_order_id(self) -> int:
        return max(self.orders, default=1000) + 1


def order_total(items: list[JSON]) -> float:
    """Sum in cents: adding floats would drift by a cent now and then."""
    cents: int = sum(round(item["unit_price"] * 100) * item["quantity"] for item in items)
    return round(cents / 100, 2)


def customer_of(user: JSON) -> JSON:
    """The snapshot of a user that an order keeps."""
    return {"id": user["id"], "name": user["name"], "email": user["email"]}


def seed_catalog() -> Catalog:
    """A fresh copy of the starting data; callers may mutate it freely."""
    users = {
        user_id: {
            "id": user_id,
            "name": name,
            "email": email,
            "address": {"street": street, "city": city, "country": country},
            "created_at": created_at,
        }
        for user_id, name, email, (street, city, country), created_at in _USERS
    }
    inventory = {
        sku: {
            "sku": sku,
            "name": name,
            "stock": stock,
            "unit_price": price,
            "warehouse": dict(_WAREHOUSES[code]),
            "updated_at": updated_at,
        }
        for sku, name, stock, price, code, updated_at in _INVENTORY
    }
    orders = {row[0]: _seed_order(row, users, inventory) for row in _ORDERS}
    return Catalog(users=users, orders=orders, inventory=inventory)


def _seed_order(
    row: tuple[int, int, list[tuple[str, int]], str, str],
    users: dict[int, JSON],
    inventory: dict[str, JSON],
) -> JSON:
    order_id, customer_id, lines, status, created_at = row
    items = [
        {"sku": sku, "quantity": quantity, "unit_price": inventory[sku]["unit_price"]}
        for sku, quantity in lines
    ]
    return {
        "id": order_id,
        "customer": customer_of(users[customer_id]),
        "items": items,
        "total": order_total(items),
        "status": status,
        "created_at": created_at,
    }
