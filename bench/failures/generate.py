"""Generate the labelled failure set: realistic API test failures with known causes.

Each *cause* (a 500 regression on one route, a renamed field, a slow service...)
is hit by one or more tests of an example shop API suite and reported in the
ways real suites report it: pytest assertion messages with ``+  where`` lines,
``raise_for_status`` errors, custom messages, KeyErrors, httpx timeouts and
connection errors, dict diffs. Every occurrence varies what varies in life:
ids, ports, timestamps, request ids, durations, temp paths, memory addresses,
line numbers, call paths (a helper vs. the test itself).

The set includes near-misses that must stay apart (500 vs 503 on one route,
KeyError 'name' vs 'email', one status on two routes) and paraphrases that must
merge (one cause, several tests, several wordings).

    .venv/bin/python bench/failures/generate.py   # writes bench/failures/labelled.jsonl
    .venv/bin/python bench/failures/generate.py --seed 7 --out /tmp/held-out.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SEED = 20261128
OUT = Path(__file__).with_name("labelled.jsonl")

REASONS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 422: "Unprocessable Entity",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 200: "OK", 201: "Created",
}  # fmt: skip


@dataclass(frozen=True)
class Test:
    """One test of the example suite and the request it makes."""

    file: str
    name: str
    method: str
    path: str  # with {id} where the test puts an id

    @property
    def nodeid(self) -> str:
        return f"{self.file}::{self.name}"


def _tests(file: str, *specs: tuple[str, str, str]) -> list[Test]:
    return [Test(file, name, method, path) for name, method, path in specs]


USERS = _tests(
    "tests/api/test_users.py",
    ("test_get_user", "GET", "/users/{id}"),
    ("test_user_profile_has_contact", "GET", "/users/{id}"),
    ("test_user_is_active", "GET", "/users/{id}"),
    ("test_update_user_email", "PATCH", "/users/{id}"),
    ("test_list_users", "GET", "/users"),
    ("test_user_orders", "GET", "/users/{id}/orders"),
    ("test_user_orders_are_sorted", "GET", "/users/{id}/orders"),
)
ORDERS = _tests(
    "tests/api/test_orders.py",
    ("test_get_order", "GET", "/orders/{id}"),
    ("test_order_total_is_sum_of_items", "GET", "/orders/{id}"),
    ("test_order_status_after_shipping", "GET", "/orders/{id}"),
    ("test_get_order_items", "GET", "/orders/{id}"),
    ("test_create_order", "POST", "/orders"),
    ("test_create_order_takes_stock", "POST", "/orders"),
    ("test_cancel_order", "DELETE", "/orders/{id}"),
)
INVENTORY = _tests(
    "tests/api/test_inventory.py",
    ("test_get_item", "GET", "/inventory/{id}"),
    ("test_stock_level", "GET", "/inventory/{id}"),
    ("test_restock_item", "POST", "/inventory/{id}/restock"),
    ("test_list_inventory", "GET", "/inventory"),
)
PAYMENTS = _tests(
    "tests/api/test_payments.py",
    ("test_charge_card", "POST", "/payments"),
    ("test_get_payment", "GET", "/payments/{id}"),
    ("test_refund_payment", "POST", "/payments/{id}/refund"),
)
ALL_TESTS = USERS + ORDERS + INVENTORY + PAYMENTS


def on(tests: list[Test], *paths: str, method: str | None = None) -> list[Test]:
    return [t for t in tests if t.path in paths and (method is None or t.method == method)]


# --- volatile values ---------------------------------------------------------------


class Volatile:
    """The values that differ between two occurrences of one cause."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.base = datetime(2026, 11, 1, tzinfo=UTC)

    def id(self) -> int:
        return self.rng.randint(1, 99_999)

    def sku(self) -> str:
        return f"{self.rng.choice(['MS', 'CB', 'HS', 'KB'])}-{self.rng.randint(1000, 9999)}"

    def port(self) -> int:
        return self.rng.randint(32768, 60999)

    def timestamp(self) -> str:
        moment = self.base + timedelta(seconds=self.rng.randint(0, 40 * 86400))
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def request_id(self) -> str:
        return self.rng.choice(
            [f"req-{self.rng.getrandbits(48):012x}", str(uuid.UUID(int=self.rng.getrandbits(128)))]
        )

    def address(self) -> str:
        return f"0x7f{self.rng.getrandbits(40):010x}"

    def seconds(self) -> str:
        return f"{self.rng.uniform(0.5, 30):.2f}"

    def line(self) -> int:
        return self.rng.randint(8, 240)

    def name(self) -> str:
        return self.rng.choice(["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"])

    def email(self) -> str:
        return f"{''.join(self.rng.choices(string.ascii_lowercase, k=6))}@example.com"

    def tmp(self) -> str:
        return (
            f"/tmp/pytest-of-ci/pytest-{self.rng.randint(1, 400)}/test_run{self.rng.randint(0, 9)}"
        )

    def path(self, test: Test) -> str:
        value = self.sku() if test.path.startswith("/inventory") else str(self.id())
        return test.path.replace("{id}", value)

    def url(self, test: Test) -> str:
        host = self.rng.choice(["127.0.0.1", "localhost"])
        return f"http://{host}:{self.port()}{self.path(test)}"


# --- how a failure is reported ---------------------------------------------------


@dataclass
class Report:
    message: str
    exception_type: str
    source: str  # the failing line of the test (or helper)
    status: int | None = None
    via_helper: bool = False


def traceback(v: Volatile, test: Test, report: Report, path: str) -> str:
    """pytest's long traceback text for the report, directly or through a helper."""
    call = f'api_client.{test.method.lower()}(f"{path}")'
    kind = report.exception_type.rsplit(".", 1)[-1]
    shown = (
        report.message if kind == "AssertionError" else f"{report.exception_type}: {report.message}"
    )
    error_lines = "\n".join(f"E       {line}" for line in shown.splitlines())
    if not report.via_helper:
        return (
            f"    def {test.name}(api_client):\n        response = {call}\n"
            f">       {report.source}\n{error_lines}\n\n{test.file}:{v.line()}: {kind}"
        )
    return (
        f"    def {test.name}(api_client):\n>       body = fetch_json(api_client, "
        f'"{test.method}", "{path}")\n\n{test.file}:{v.line()}: \n'
        f"{'_ ' * 30}\n\n    def fetch_json(client, method, path, **kwargs):\n"
        f"        response = client.request(method, path, **kwargs)\n"
        f">       {report.source}\n{error_lines}\n\ntests/api/helpers.py:{v.line()}: {kind}"
    )


def status_assert(v: Volatile, test: Test, got: int, expected: int) -> Report:
    reason = REASONS.get(got, "")
    message = (
        f"assert {got} == {expected}\n +  where {got} = <Response [{got} {reason}]>.status_code"
    )
    return Report(message, "AssertionError", f"assert response.status_code == {expected}", got)


def status_raised(v: Volatile, test: Test, got: int, expected: int) -> Report:
    kind = "Server error" if got >= 500 else "Client error"
    message = (
        f"{kind} '{got} {REASONS.get(got, '')}' for url '{v.url(test)}'\n"
        f"For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/{got}"
    )
    return Report(message, "httpx.HTTPStatusError", "response.raise_for_status()", got, True)


def status_explained(v: Volatile, test: Test, got: int, expected: int) -> Report:
    body = {
        500: {"error": "internal_error", "request_id": v.request_id(), "at": v.timestamp()},
        502: {
            "error": "bad_gateway",
            "upstream": f"10.0.{v.rng.randint(0, 9)}.{v.rng.randint(2, 250)}:8080",
        },
        503: {"error": "unavailable", "retry_in_ms": v.rng.randint(100, 5000)},
        429: {"error": "rate_limited", "retry_after": v.rng.randint(1, 30)},
        404: {"error": "not_found", "id": v.id()},
        422: {"error": "validation_failed", "trace": v.request_id()},
        409: {"error": "conflict", "version": v.rng.randint(1, 50)},
    }.get(got, {"error": "unexpected", "request_id": v.request_id()})
    message = (
        f"unexpected status {got} for {test.method} {v.path(test)}: {json.dumps(body)}\n"
        f"assert {got} == {expected}\n"
        f" +  where {got} = <Response [{got} {REASONS.get(got, '')}]>.status_code"
    )
    source = 'assert response.status_code == %d, f"unexpected status {response.status_code} ..."'
    return Report(message, "AssertionError", source % expected, got)


def missing_key(v: Volatile, test: Test, key: str, renamed: str) -> Report:
    if v.rng.random() < 0.6:
        return Report(f"'{key}'", "KeyError", f'assert response.json()["{key}"]', 200)
    body = {"id": v.id(), renamed: v.name(), "created_at": v.timestamp()}
    return Report(f"assert '{key}' in {body!r}", "AssertionError", f'assert "{key}" in body', 200)


def read_timeout(v: Volatile, test: Test, _: str) -> Report:
    message = v.rng.choice(["timed out", "The read operation timed out", "timed out"])
    return Report(message, "httpx.ReadTimeout", "response = api_client.send(request)", None, True)


def connect_error(v: Volatile, test: Test, _: str) -> Report:
    message = v.rng.choice(
        [
            "[Errno 111] Connection refused",
            "All connection attempts failed",
            f"[Errno 111] Connect call failed ('127.0.0.1', {v.port()})",
        ]
    )
    return Report(message, "httpx.ConnectError", "response = api_client.send(request)", None, True)


def value_changed(v: Volatile, test: Test, key: str, old_new: tuple[Any, Any]) -> Report:
    old, new = old_new
    ident, stamp = v.id(), v.timestamp()
    left = {"id": ident, key: new, "updated_at": stamp}
    right = {"id": ident, key: old, "updated_at": stamp}
    message = (
        f"assert {left!r} == {right!r}\n  \n  Omitting 2 identical items, use -vv to show\n"
        f"  Differing items:\n  {{{key!r}: {new!r}}} != {{{key!r}: {old!r}}}\n"
        "  Use -v to get more diff"
    )
    return Report(message, "AssertionError", "assert body == expected", 200)


def type_changed(v: Volatile, test: Test, key: str, value: str) -> Report:
    message = (
        f"assert False\n +  where False = isinstance({value!r}, float)\n"
        f" +    where {value!r} = <built-in method get of dict object at {v.address()}>('{key}')"
    )
    return Report(message, "AssertionError", f'assert isinstance(body.get("{key}"), float)', 200)


def new_field(v: Volatile, test: Test, key: str, value: str) -> Report:
    ident = v.id()
    left = {"id": ident, "name": v.name(), key: value}
    message = (
        f"assert {left!r} == {{'id': {ident}, 'name': {left['name']!r}}}\n  \n"
        f"  Omitting 2 identical items, use -vv to show\n  Left contains 1 more item:\n"
        f"  {{{key!r}: {value!r}}}\n  Use -v to get more diff"
    )
    return Report(message, "AssertionError", "assert body == expected", 200)


def bad_json(v: Volatile, test: Test, _: str) -> Report:
    message = v.rng.choice(
        ["Expecting value: line 1 column 1 (char 0)", "Expecting value: line 1 column 1 (char 0)"]
    )
    return Report(message, "json.decoder.JSONDecodeError", "body = response.json()", 502)


def count_mismatch(v: Volatile, test: Test, _: str) -> Report:
    n = v.rng.randint(3, 40)
    items = ", ".join(f"{{'id': {v.id()}}}" for _ in range(3))
    message = f"assert {n + 1} == {n}\n +  where {n + 1} = len([{items}, ...])"
    return Report(message, "AssertionError", "assert len(response.json()) == expected_count", 200)


def temp_file_missing(v: Volatile, test: Test, _: str) -> Report:
    path = f"{v.tmp()}/fixtures/{test.name}.json"
    message = f"[Errno 2] No such file or directory: '{path}'"
    return Report(message, "FileNotFoundError", "payload = json.loads(fixture.read_text())")


# --- the causes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Cause:
    id: str
    tests: list[Test]
    reporters: tuple[Callable[..., Report], ...]
    args: tuple[Any, ...]
    occurrences: int

    def occurrence(self, v: Volatile) -> dict[str, Any]:
        test = v.rng.choice(self.tests)
        report = v.rng.choice(self.reporters)(v, test, *self.args)
        path = v.path(test)
        known = v.rng.random() < 0.8  # the exchange is known for most recorded failures
        return {
            "message": report.message,
            "exception_type": report.exception_type,
            "traceback": traceback(v, test, report, path),
            "nodeid": f"{test.nodeid}[{v.id()}]" if v.rng.random() < 0.15 else test.nodeid,
            "method": test.method if known else None,
            "route": test.path if known else None,
            "status": report.status if known else None,
            "cause": self.id,
        }


STATUS_REPORTERS = (status_assert, status_raised, status_explained)


def status_causes(rng: random.Random) -> list[Cause]:
    """Status regressions, including near-misses: 500 vs 503 on one route, one code on two."""
    cases = [
        (ORDERS, "/orders/{id}", "GET", 500, 200),
        (ORDERS, "/orders/{id}", "GET", 503, 200),
        (ORDERS, "/orders/{id}", "GET", 502, 200),
        (USERS, "/users/{id}", "GET", 500, 200),
        (USERS, "/users/{id}", "GET", 404, 200),
        (USERS, "/users/{id}", "PATCH", 422, 200),
        (USERS, "/users/{id}/orders", "GET", 500, 200),
        (ORDERS, "/orders", "POST", 500, 201),
        (ORDERS, "/orders", "POST", 422, 201),
        (ORDERS, "/orders", "POST", 409, 201),
        (ORDERS, "/orders/{id}", "DELETE", 409, 204),
        (INVENTORY, "/inventory/{id}", "GET", 404, 200),
        (INVENTORY, "/inventory/{id}", "GET", 429, 200),
        (INVENTORY, "/inventory/{id}/restock", "POST", 500, 200),
        (PAYMENTS, "/payments", "POST", 503, 201),
        (PAYMENTS, "/payments", "POST", 500, 201),
        (PAYMENTS, "/payments/{id}", "GET", 401, 200),
        (PAYMENTS, "/payments/{id}/refund", "POST", 403, 200),
    ]
    return [
        Cause(
            f"status:{method} {path}:{got}",
            on(tests, path, method=method),
            STATUS_REPORTERS,
            (got, expected),
            rng.randint(25, 50),
        )
        for tests, path, method, got, expected in cases
    ]


def schema_causes(rng: random.Random) -> list[Cause]:
    """Renamed, retyped, changed and new fields: near-misses differ only in the key."""
    get_user = on(USERS, "/users/{id}", method="GET")
    get_order = on(ORDERS, "/orders/{id}", method="GET")
    items = on(INVENTORY, "/inventory/{id}")
    return [
        Cause("missing:users:name", get_user, (missing_key,), ("name", "full_name"), 30),
        Cause("missing:users:email", get_user, (missing_key,), ("email", "email_address"), 25),
        Cause("missing:orders:total", get_order, (missing_key,), ("total", "total_amount"), 25),
        Cause("missing:orders:status", get_order, (missing_key,), ("status", "state"), 20),
        Cause("missing:inventory:stock", items, (missing_key,), ("stock", "quantity"), 20),
        Cause(
            "changed:orders:status",
            get_order,
            (value_changed,),
            ("status", ("delivered", "shipped")),
            25,
        ),
        Cause(
            "changed:orders:currency", get_order, (value_changed,), ("currency", ("EUR", "USD")), 15
        ),
        Cause("changed:users:role", get_user, (value_changed,), ("role", ("admin", "member")), 15),
        Cause("type:orders:total", get_order, (type_changed,), ("total", "445.00"), 25),
        Cause("type:inventory:price", items, (type_changed,), ("price", "19.99"), 15),
        Cause("new:users:loyalty_tier", get_user, (new_field,), ("loyalty_tier", "gold"), 20),
        Cause(
            "new:users:avatar_url",
            get_user,
            (new_field,),
            ("avatar_url", "https://cdn.example.com/a.png"),
            15,
        ),
    ]


def transport_causes(rng: random.Random) -> list[Cause]:
    """Slow or absent services: many tests, several wordings, one cause per service."""
    return [
        Cause("timeout:payments", PAYMENTS, (read_timeout,), ("",), 40),
        Cause(
            "timeout:orders", on(ORDERS, "/orders/{id}", method="GET"), (read_timeout,), ("",), 30
        ),
        Cause("refused:inventory", INVENTORY, (connect_error,), ("",), 35),
        Cause("refused:payments", PAYMENTS, (connect_error,), ("",), 25),
        Cause("badjson:users", on(USERS, "/users/{id}/orders"), (bad_json,), ("",), 15),
        Cause("count:users", on(USERS, "/users"), (count_mismatch,), ("",), 15),
        Cause("fixture:orders", on(ORDERS, "/orders"), (temp_file_missing,), ("",), 15),
    ]


def generate(seed: int = SEED) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    causes = status_causes(rng) + schema_causes(rng) + transport_causes(rng)
    volatile = Volatile(rng)
    records = [c.occurrence(volatile) for c in causes for _ in range(c.occurrences)]
    rng.shuffle(records)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED, help="another seed: a held-out set")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    records = generate(args.seed)
    with args.out.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, sort_keys=True) + "\n")
    causes = len({r["cause"] for r in records})
    print(f"wrote {len(records)} failures of {causes} causes to {args.out}")


if __name__ == "__main__":
    main()
