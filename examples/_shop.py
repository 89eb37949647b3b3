"""The shop API itself: its data, its routes and the knobs of a `Build`.

No HTTP here (`testmem.examples.shop_api` serves it): a route takes a `Call` and
returns a `Reply`, and `Shop.handle` picks the route.

To add a knob: add a field to `Build`, off by default; then either add a
`Fault` to `FAULTS` (it answers instead of the route) or change a
`present_*` function (it changes the shape of a body).
"""

from __future__ import annotations

import copy
import json
import random
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeGuard, cast
from urllib.parse import parse_qsl, urlsplit

from testmem.examples._seed import JSON, Catalog, customer_of, order_total, seed_catalog


@dataclass(frozen=True)
class Build:
    """One release of the API. Every knob is off by default."""

    number: int = 0
    label: str = "v1.0.0"
    note: str = ""
    # Every Nth request to /inventory... answers 429 with Retry-After: 1.
    rate_limit_every: int = 0
    # GET /orders/{id} answers 503 with this probability; `seed` replays it.
    flaky_503_rate: float = 0.0
    seed: int = 0
    # Deliberate API changes: consistent, so a test can be healed.
    rename_user_name_to: str | None = None
    create_user_status: int = 201
    new_user_field: bool = False
    # Defects. Order totals: GET /orders/{id} answers 500. Warehouse: GET
    # /inventory/{sku} answers 500 and other inventory bodies lose `warehouse`.
    regression_order_total: bool = False
    regression_inventory_warehouse: bool = False

    @property
    def user_name_field(self) -> str:
        return self.rename_user_name_to or "name"


# --- requests and replies, free of HTTP ---------------------------------------


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def error_reply(
    status: int,
    error: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Reply:
    return Reply(status, {"error": error, "detail": detail, **extra}, headers or {})


class ApiError(Exception):
    """Raised anywhere in a route to answer with a JSON error instead."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.reply = error_reply(status, error, detail, headers, **extra)


@dataclass(frozen=True)
class Call:
    """One request as a route sees it."""

    method: str
    route: str  # the template that matched, e.g. "/users/{id}"
    params: dict[str, str]
    query: dict[str, str]
    body: bytes


Handler = Callable[["Shop", Call], Reply]
Fault = Callable[["Shop", Call], "Reply | None"]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler


@lru_cache
def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _now_precise() -> str:
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    return now.replace("+00:00", "Z")


# --- the shop ----------------------------------------------------------------------


class Shop:
    """The API's data and behaviour. One lock serialises requests: it is tiny."""

    def __init__(self, build: Build) -> None:
        self.catalog: Catalog = seed_catalog()
        self._lock = threading.Lock()
        self._use(build)

    @property
    def build(self) -> Build:
        return self._build

    def set_build(self, build: Build) -> None:
        with self._lock:
            self._use(build)

    def _use(self, build: Build) -> None:
        self._build = build
        self.inventory_requests = 0
        self.random = random.Random(build.seed)

    def handle(self, method: str, target: str, body: bytes) -> Reply:
        url = urlsplit(target)
        query = dict(parse_qsl(url.query))
        with self._lock:
            try:
                route, params = _match(method, url.path)
                call = Call(method, route.template, params, query, body)
                return _first_fault(self, call) or route.handler(self, call)
            except ApiError as error:
                return error.reply
            except Exception as error:  # a bug here must still answer JSON
                return error_reply(500, "internal", f"{type(error).__name__}: {error}")


def _match(method: str, path: str) -> tuple[Route, dict[str, str]]:
    allowed = []
    for route in ROUTES:
        found = _pattern(route.template).fullmatch(path)
        if found and route.method == method:
            return route, found.groupdict()
        if found:
            allowed.append(route.method)
    if allowed:
        detail = f"{method} {path} is not supported"
        allow = {"Allow": ", ".join(allowed)}
        raise ApiError(405, "method_not_allowed", detail, headers=allow)
    raise ApiError(404, "not_found", f"no route for {method} {path}")


def _first_fault(shop: Shop, call: Call) -> Reply | None:
    for fault in FAULTS:
        reply = fault(shop, call)
        if reply is not None:
            return reply
    return None


# --- knobs that answer instead of the route --------------------------------------


def _rate_limited(shop: Shop, call: Call) -> Reply | None:
    every = shop.build.rate_limit_every
    if every <= 0 or not call.route.startswith("/inventory"):
        return None
    shop.inventory_requests += 1
    if shop.inventory_requests % every:
        return None
    detail = "too many requests to /inventory, retry after 1 second"
    return error_reply(429, "rate_limited", detail, headers={"Retry-After": "1"})


def _flaky_upstream(shop: Shop, call: Call) -> Reply | None:
    rate = shop.build.flaky_503_rate
    if rate <= 0 or (call.method, call.route) != ("GET", "/orders/{id}"):
        return None
    if shop.random.random() >= rate:
        return None
    return error_reply(503, "unavailable", "order service is temporarily unavailable")


def _order_total_regression(shop: Shop, call: Call) -> Reply | None:
    if not shop.build.regression_order_total:
        return None
    if (call.method, call.route) != ("GET", "/orders/{id}"):
        return None
    order = find_order(shop, call.params["id"])
    # Volatile parts (ledger id, drift, trace, time) change on every request,
    # as in a real stack trace: matching failures must see past them.
    drift = (secrets.randbelow(900) + 100) / 100
    detail = (
        f"OrderTotalMismatch: order {order['id']} total {order['total'] + drift:.2f}"
        f" != {order['total']:.2f} (ledger {secrets.randbelow(90000) + 10000},"
        f" trace {uuid.uuid4()}) at {_now_precise()}"
    )
    return error_reply(500, "internal", detail)


def _warehouse_regression(shop: Shop, call: Call) -> Reply | None:
    if not shop.build.regression_inventory_warehouse:
        return None
    if (call.method, call.route) != ("GET", "/inventory/{sku}"):
        return None
    find_item(shop, call.params["sku"])
    detail = f"KeyError: 'warehouse' in request req-{secrets.token_hex(6)}"
    return error_reply(500, "internal", detail)


# Gateway first, then infrastructure, then the application: as in production.
FAULTS: tuple[Fault, ...] = (
    _rate_limited,
    _flaky_upstream,
    _order_total_regression,
    _warehouse_regression,
)


# --- knobs that change the shape of a body ---------------------------------------


def present_user(shop: Shop, user: JSON) -> JSON:
    name_field = shop.build.user_name_field
    shown = {(name_field if key == "name" else key): value for key, value in user.items()}
    if shop.build.new_user_field:
        shown["loyalty_tier"] = _loyalty_tier(shop, user["id"])
    return copy.deepcopy(shown)


def _loyalty_tier(shop: Shop, user_id: int) -> str:
    orders = sum(o["customer"]["id"] == user_id for o in shop.catalog.orders.values())
    return "gold" if orders >= 3 else "silver" if orders == 2 else "bronze"


def present_order(shop: Shop, order: JSON) -> JSON:
    # No knob changes orders yet; this is where one would.
    return copy.deepcopy(order)


def present_item(shop: Shop, item: JSON) -> JSON:
    shown = copy.deepcopy(item)
    if shop.build.regression_inventory_warehouse:
        del shown["warehouse"]
    return shown


# --- lookups and input checks ----------------------------------------------------


def find_user(shop: Shop, raw_id: str) -> JSON:
    user = shop.catalog.users.get(int(raw_id)) if raw_id.isdigit() else None
    if user is None:
        raise ApiError(404, "not_found", f"user {raw_id} does not exist")
    return user


def find_order(shop: Shop, raw_id: str) -> JSON:
    order = shop.catalog.orders.get(int(raw_id)) if raw_id.isdigit() else None
    if order is None:
        raise ApiError(404, "not_found", f"order {raw_id} does not exist")
    return order


def find_item(shop: Shop, sku: str) -> JSON:
    item = shop.catalog.inventory.get(sku)
    if item is None:
        raise ApiError(404, "not_found", f"inventory item {sku} does not exist")
    return item


def _json_object(body: bytes) -> JSON:
    try:
        payload = json.loads(body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(400, "bad_request", f"body is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_request", "body must be a JSON object")
    return payload


def _invalid(problems: dict[str, str]) -> ApiError:
    detail = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
    return ApiError(422, "validation_failed", detail, fields=problems)


def _reject(problems: dict[str, str]) -> None:
    if problems:
        raise _invalid(problems)


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_count(value: object, minimum: int) -> TypeGuard[int]:
    # bool is an int to Python, but `true` is no quantity.
    return type(value) is int and value >= minimum


def _page(items: list[JSON], query: dict[str, str]) -> JSON:
    limit = _query_int(query, "limit", default=50, minimum=1)
    offset = _query_int(query, "offset", default=0, minimum=0)
    window = items[offset : offset + limit]
    return {"items": window, "total": len(items), "limit": limit, "offset": offset}


def _query_int(query: dict[str, str], name: str, default: int, minimum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise ApiError(400, "bad_request", f"{name} must be an integer >= {minimum}")
    return int(raw)


# --- routes: users ---------------------------------------------------------------

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ADDRESS_FIELDS = ("street", "city", "country")


def health(shop: Shop, call: Call) -> Reply:
    build = shop.build
    return Reply(200, {"status": "ok", "version": build.label, "build": build.number})


def list_users(shop: Shop, call: Call) -> Reply:
    users = [present_user(shop, user) for user in shop.catalog.users.values()]
    return Reply(200, _page(users, call.query))


def get_user(shop: Shop, call: Call) -> Reply:
    return Reply(200, present_user(shop, find_user(shop, call.params["id"])))


def list_user_orders(shop: Shop, call: Call) -> Reply:
    user = find_user(shop, call.params["id"])
    orders = [
        present_order(shop, order)
        for order in shop.catalog.orders.values()
        if order["customer"]["id"] == user["id"]
    ]
    return Reply(200, _page(orders, call.query))


def create_user(shop: Shop, call: Call) -> Reply:
    fields = _new_user_fields(shop, _json_object(call.body))
    if any(user["email"] == fields["email"] for user in shop.catalog.users.values()):
        raise ApiError(409, "conflict", f"email {fields['email']} is already registered")
    user = {"id": shop.catalog.next_user_id(), **fields, "created_at": _now()}
    shop.catalog.users[user["id"]] = user
    location = {"Location": f"/users/{user['id']}"}
    return Reply(shop.build.create_user_status, present_user(shop, user), location)


def _new_user_fields(shop: Shop, payload: JSON) -> JSON:
    name_field = shop.build.user_name_field
    # Clients written before a rename still send "name"; keep accepting it.
    name = payload.get(name_field, payload.get("name"))
    email = payload.get("email")
    address = payload.get("address")
    problems: dict[str, str] = {}
    if not _is_text(name):
        problems[name_field] = "required, a non-empty string"
    if not (isinstance(email, str) and _EMAIL.fullmatch(email)):
        problems["email"] = "required, an email address"
    if not (
        isinstance(address, dict) and all(_is_text(address.get(part)) for part in _ADDRESS_FIELDS)
    ):
        problems["address"] = "required, an object with street, city and country"
    _reject(problems)
    parts = {part: cast(JSON, address)[part].strip() for part in _ADDRESS_FIELDS}
    return {"name": cast(str, name).strip(), "email": email, "address": parts}


# --- routes: orders --------------------------------------------------------------


def get_order(shop: Shop, call: Call) -> Reply:
    return Reply(200, present_order(shop, find_order(shop, call.params["id"])))


def create_order(shop: Shop, call: Call) -> Reply:
    payload = _json_object(call.body)
    customer = _order_customer(shop, payload)
    items = _order_items(shop, payload)
    _take_stock(shop, items)
    order: JSON = {
        "id": shop.catalog.next_order_id(),
        "customer": customer_of(customer),
        "items": items,
        "total": order_total(items),
        "status": "pending",
        "created_at": _now(),
    }
    shop.catalog.orders[order["id"]] = order
    location = {"Location": f"/orders/{order['id']}"}
    return Reply(201, present_order(shop, order), location)


def _order_customer(shop: Shop, payload: JSON) -> JSON:
    customer_id = payload.get("customer_id")
    if not _is_count(customer_id, minimum=1):
        raise _invalid({"customer_id": "required, a positive integer"})
    customer = shop.catalog.users.get(customer_id)
    if customer is None:
        raise _invalid({"customer_id": f"user {customer_id} does not exist"})
    return customer


def _order_items(shop: Shop, payload: JSON) -> list[JSON]:
    lines = payload.get("items")
    if not isinstance(lines, list) or not lines:
        raise _invalid({"items": "required, a non-empty list"})
    problems: dict[str, str] = {}
    for index, line in enumerate(lines):
        problems.update(_order_line_problems(shop, f"items[{index}]", line))
    _reject(problems)
    return [_priced_item(shop, line) for line in lines]


def _priced_item(shop: Shop, line: JSON) -> JSON:
    # The order keeps today's price: later price changes must not alter it.
    price = shop.catalog.inventory[line["sku"]]["unit_price"]
    return {"sku": line["sku"], "quantity": line["quantity"], "unit_price": price}


def _order_line_problems(shop: Shop, where: str, line: object) -> dict[str, str]:
    if not isinstance(line, dict):
        return {where: "an object with sku and quantity"}
    problems = {}
    sku = line.get("sku")
    if not (isinstance(sku, str) and sku in shop.catalog.inventory):
        problems[f"{where}.sku"] = f"unknown sku {sku!r}"
    if not _is_count(line.get("quantity"), minimum=1):
        problems[f"{where}.quantity"] = "required, a positive integer"
    return problems


def _take_stock(shop: Shop, items: list[JSON]) -> None:
    inventory = shop.catalog.inventory
    for item in items:
        available = inventory[item["sku"]]["stock"]
        if available < item["quantity"]:
            detail = f"{item['sku']}: {item['quantity']} wanted, {available} in stock"
            raise ApiError(409, "insufficient_stock", detail)
    for item in items:
        inventory[item["sku"]]["stock"] -= item["quantity"]
        inventory[item["sku"]]["updated_at"] = _now()


# --- routes: inventory -----------------------------------------------------------

_PATCHABLE = {"name", "stock"}


def list_inventory(shop: Shop, call: Call) -> Reply:
    items = [present_item(shop, item) for item in shop.catalog.inventory.values()]
    return Reply(200, _page(items, call.query))


def get_item(shop: Shop, call: Call) -> Reply:
    return Reply(200, present_item(shop, find_item(shop, call.params["sku"])))


def patch_item(shop: Shop, call: Call) -> Reply:
    item = find_item(shop, call.params["sku"])
    changes = _json_object(call.body)
    problems = {name: "cannot be changed" for name in changes if name not in _PATCHABLE}
    if not changes:
        problems["body"] = "name a field to change: name or stock"
    if "stock" in changes and not _is_count(changes["stock"], minimum=0):
        problems["stock"] = "an integer >= 0"
    if "name" in changes and not _is_text(changes["name"]):
        problems["name"] = "a non-empty string"
    _reject(problems)
    item.update(changes, updated_at=_now())
    return Reply(200, present_item(shop, item))


ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", health),
    Route("GET", "/users", list_users),
    Route("POST", "/users", create_user),
    Route("GET", "/users/{id}", get_user),
    Route("GET", "/users/{id}/orders", list_user_orders),
    Route("POST", "/orders", create_order),
    Route("GET", "/orders/{id}", get_order),
    Route("GET", "/inventory", list_inventory),
    Route("GET", "/inventory/{sku}", get_item),
    Route("PATCH", "/inventory/{sku}", patch_item),
)
