# ruff: noqa: E501, B023  (library texts kept whole; each lambda is called at once, in its loop)
"""A harder labelled failure set: real libraries' own error texts, made for real.

Every message here was raised by the library named, against servers on
127.0.0.1 (a closed port, a server answering errors, one too slow to answer)
or by its own validation: requests, httpx, aiohttp, urllib3, pydantic,
FastAPI (through its TestClient), SQLAlchemy on SQLite, botocore, gRPC, and
pytest's own assertion rewriting with ``-vv`` diffs (an inner pytest session).
Causes are what a person triaging would call one cause: one service down
whichever client says so, one error status of one request however the test
words it; near-misses are other causes: refused vs timed out, another status,
another route, another field, another constraint, another gRPC status.

    pip install sqlalchemy botocore   # only for generating; the benches need neither
    python bench/failures/hard/generate.py   # writes labelled.jsonl beside it
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
R = random.Random(17)
TESTS = {
    "users": ["test_get_user", "test_user_profile", "test_list_users", "test_update_user"],
    "orders": ["test_get_order", "test_order_total", "test_cancel_order"],
    "payments": ["test_refund", "test_capture_payment"],
    "db": ["test_create_user_row", "test_signup_twice", "test_rename"],
    "storage": ["test_download_invoice", "test_upload_avatar", "test_list_reports"],
    "rpc": ["test_inventory_rpc", "test_pricing_rpc"],
}


def _nodeid(area: str) -> str:
    name = R.choice(TESTS[area])
    return f"tests/test_{area}.py::{name}[{R.randint(1, 99)}]"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(0.5)
        status = 503 if self.path.startswith("/users") else 502 if "/orders" in self.path else 404
        body = json.dumps({"error": "unavailable", "request_id": f"{R.getrandbits(64):x}"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass

    def handle(self) -> None:
        with contextlib.suppress(BrokenPipeError):  # a client that timed out on /slow left
            super().handle()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _caught(call: Callable[[], Any]) -> BaseException:
    try:
        call()
    except BaseException as exc:  # the point is the library's own error
        return exc
    raise AssertionError("expected the call to fail")


def _record(cause: str, exc: BaseException, area: str, **structure: Any) -> dict[str, Any]:
    kind = type(exc)
    return {
        "cause": cause,
        "exception_type": f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins."),
        "message": str(exc),
        "nodeid": _nodeid(area),
        **structure,
    }


def http_clients(base: str, down: str) -> Iterator[dict[str, Any]]:
    import httpx
    import requests
    import urllib3

    for _ in range(6):
        n = R.randint(1, 99999)
        refused = {"method": "GET", "route": "/users/{id}"}
        yield _record(
            "down:users",
            _caught(lambda: requests.get(f"{down}/users/{n}", timeout=2)),
            "users",
            **refused,
        )
        yield _record(
            "down:users", _caught(lambda: httpx.get(f"{down}/users/{n}")), "users", **refused
        )
        pool = urllib3.PoolManager(retries=urllib3.Retry(0))
        yield _record(
            "down:users",
            _caught(lambda: pool.request("GET", f"{down}/users/{n}")),
            "users",
            **refused,
        )
        yield _record(
            "down:users",
            _caught(lambda: asyncio.run(_aiohttp_get(f"{down}/users/{n}"))),
            "users",
            **refused,
        )
        slow = {"method": "GET", "route": "/slow/{id}"}
        yield _record(
            "timeout:slow",
            _caught(lambda: requests.get(f"{base}/slow/{n}", timeout=0.05)),
            "users",
            **slow,
        )
        yield _record(
            "timeout:slow",
            _caught(lambda: httpx.get(f"{base}/slow/{n}", timeout=0.05)),
            "users",
            **slow,
        )
        for route, status in (("users", 503), ("orders", 502)):
            where = {"method": "GET", "route": f"/{route}/{{id}}", "status": status}
            response = requests.get(f"{base}/{route}/{n}", timeout=2)
            yield _record(
                f"status:{route}:{status}", _caught(response.raise_for_status), route, **where
            )
            answer = httpx.get(f"{base}/{route}/{n}")
            yield _record(
                f"status:{route}:{status}", _caught(answer.raise_for_status), route, **where
            )
            yield _record(
                f"status:{route}:{status}",
                _caught(
                    lambda: asyncio.run(_aiohttp_get(f"{base}/{route}/{n}", raise_for_status=True))
                ),
                route,
                **where,
            )


async def _aiohttp_get(url: str, raise_for_status: bool = False) -> None:
    import aiohttp

    async with (
        aiohttp.ClientSession(raise_for_status=raise_for_status) as session,
        session.get(url) as response,
    ):
        await response.read()


def validation() -> Iterator[dict[str, Any]]:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from pydantic import BaseModel, EmailStr, ValidationError  # noqa: F401

    class User(BaseModel):
        id: int
        email: str
        name: str

    for _ in range(6):
        n = R.randint(1, 9999)
        where = {"method": "GET", "route": "/users/{id}", "status": 200}
        yield _record(
            "schema:users:email-missing",
            _caught(lambda: User.model_validate({"id": n, "name": "Ada"})),
            "users",
            **where,
        )
        yield _record(
            "schema:users:name-missing",
            _caught(lambda: User.model_validate({"id": n, "email": f"u{n}@x.io"})),
            "users",
            **where,
        )
        yield _record(
            "schema:users:id-type",
            _caught(lambda: User.model_validate({"id": f"u{n}", "email": "a@x.io", "name": "Ada"})),
            "users",
            **where,
        )
        try:
            User.model_validate({"id": n, "name": "Ada"})
        except ValidationError as exc:
            errors = exc.errors()
            yield {
                "cause": "schema:users:email-missing",
                "exception_type": "KeyError",
                "message": repr(errors[0]["loc"][0]),
                "nodeid": _nodeid("users"),
                **where,
            }

    app = FastAPI()

    @app.post("/orders")
    def create(order: dict[str, int]) -> dict[str, int]:
        return order

    client = TestClient(app)
    for _ in range(6):
        response = client.post("/orders", json={"qty": f"x{R.randint(1, 99)}"})
        message = f"unexpected status {response.status_code}: {response.text}\nassert {response.status_code} == 201\n +  where {response.status_code} = <Response [{response.status_code} Unprocessable Entity]>.status_code"
        yield {
            "cause": "status:orders-create:422",
            "exception_type": "AssertionError",
            "message": message,
            "nodeid": _nodeid("orders"),
            "method": "POST",
            "route": "/orders",
            "status": response.status_code,
        }


def database() -> Iterator[dict[str, Any]]:
    from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert

    engine = create_engine("sqlite://")
    users = Table(
        "users",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("email", String, unique=True),
        Column("name", String, nullable=False),
    )
    users.metadata.create_all(engine)
    with engine.begin() as db:
        db.execute(insert(users).values(email="taken@x.io", name="Ada"))
    for _ in range(6):
        with engine.connect() as db:
            yield _record(
                "db:users-email-unique",
                _caught(
                    lambda: db.execute(
                        insert(users).values(email="taken@x.io", name=f"N{R.randint(1, 99)}")
                    )
                ),
                "db",
            )
        with engine.connect() as db:
            yield _record(
                "db:users-name-null",
                _caught(
                    lambda: db.execute(
                        insert(users).values(email=f"u{R.randint(1, 9999)}@x.io", name=None)
                    )
                ),
                "db",
            )


def storage() -> Iterator[dict[str, Any]]:
    try:
        from botocore.exceptions import ClientError, EndpointConnectionError
    except ImportError:
        return
    for _ in range(5):
        key = f"invoices/{R.randint(1, 9999)}.pdf"
        for code, text, operation, cause in (
            ("NoSuchKey", "The specified key does not exist.", "GetObject", "s3:no-such-key"),
            ("AccessDenied", "Access Denied", "PutObject", "s3:access-denied"),
        ):
            retries = R.choice((0, 4))
            response = {
                "Error": {"Code": code, "Message": text, "Key": key},
                "ResponseMetadata": {"MaxAttemptsReached": bool(retries), "RetryAttempts": retries},
            }
            yield _record(cause, ClientError(response, operation), "storage")
        url = f"http://127.0.0.1:{R.randint(9000, 9100)}/bucket/{key}"
        yield _record("s3:endpoint-down", EndpointConnectionError(endpoint_url=url), "storage")


def rpc(down: str) -> Iterator[dict[str, Any]]:
    import grpc

    for _ in range(4):
        channel = grpc.insecure_channel(down.removeprefix("http://"))
        call = channel.unary_unary("/inventory.Stock/Get")
        yield _record("grpc:inventory-unavailable", _caught(lambda: call(b"", timeout=2)), "rpc")
        channel.close()
    server = grpc.server(__import__("concurrent.futures").futures.ThreadPoolExecutor(2))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    for _ in range(4):
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        call = channel.unary_unary("/pricing.Prices/Quote")
        yield _record("grpc:pricing-unimplemented", _caught(lambda: call(b"", timeout=2)), "rpc")
        channel.close()
    server.stop(None)


_INNER = """
import pytest

@pytest.mark.parametrize("n", range({n}))
def test_order_state(n):
    body = {{"id": 1000 + n * 7, "state": "pending", "total": 10 + n}}
    assert body == {{"id": 1000 + n * 7, "state": "paid", "total": 10 + n}}

@pytest.mark.parametrize("n", range({n}))
def test_order_currency(n):
    body = {{"id": 2000 + n, "currency": "EUR", "total": 10 + n}}
    assert body == {{"id": 2000 + n, "currency": "USD", "total": 10 + n}}

@pytest.mark.parametrize("n", range({n}))
def test_user_email_present(n):
    body = {{"id": n, "name": "user%d" % n, "roles": ["a"] * (n % 3)}}
    assert "email" in body

@pytest.mark.parametrize("n", range({n}))
def test_user_roles(n):
    roles = ["admin", "viewer", "editor"][: n % 3] + ["guest"] * (n % 4)
    assert roles == ["admin", "viewer", "editor", "guest"]

@pytest.mark.parametrize("n", range({n}))
def test_items_count(n):
    items = list(range(n % 5))
    assert len(items) == 5
"""

_CAUSES = {
    "test_order_state": "assert:orders:state",
    "test_order_currency": "assert:orders:currency",
    "test_user_email_present": "missing:users:email",
    "test_user_roles": "assert:users:roles",
    "test_items_count": "length:items",
}
_CAPTURE = """
import json, os
def pytest_runtest_logreport(report):
    if report.failed:
        crash = report.longrepr.reprcrash
        with open(os.environ["CAPTURE"], "a") as out:
            out.write(json.dumps({"nodeid": report.nodeid, "message": crash.message, "traceback": report.longreprtext}) + "\\n")
"""


def assertions() -> Iterator[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "test_inner.py").write_text(_INNER.format(n=8))
        (root / "conftest.py").write_text(_CAPTURE)
        capture = root / "capture.jsonl"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-vv",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:randomly",
                str(root),
            ],
            cwd=root,
            env={**__import__("os").environ, "CAPTURE": str(capture)},
            capture_output=True,
            check=False,
        )
        for line in capture.read_text().splitlines():
            row = json.loads(line)
            name = row["nodeid"].split("::")[1].split("[")[0]
            yield {
                "cause": _CAUSES[name],
                "exception_type": "AssertionError",
                "message": row["message"],
                "nodeid": row["nodeid"],
                "traceback": row["traceback"][-2000:],
            }


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base, down = (
        f"http://127.0.0.1:{server.server_address[1]}",
        f"http://127.0.0.1:{_closed_port()}",
    )
    rows = [
        *http_clients(base, down),
        *validation(),
        *database(),
        *storage(),
        *rpc(down),
        *assertions(),
    ]
    server.shutdown()
    R.shuffle(rows)
    with (HERE / "labelled.jsonl").open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, sort_keys=True) + "\n")
    causes = {r["cause"] for r in rows}
    print(f"{len(rows)} failures, {len(causes)} causes")


if __name__ == "__main__":
    main()
