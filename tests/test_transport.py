"""The recording transports, on users' own sync and async httpx clients."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from testmem.memory import AsyncRecordingTransport, RecordingTransport, Tap
from testmem.memory.redact import Redactor
from testmem.memory.routes import route_template
from testmem.memory.transport import activate, active_tap


def test_a_sync_client_records_each_exchange_into_its_tap(shop):
    tap = Tap()
    with httpx.Client(base_url=shop.url, transport=RecordingTransport(tap=tap)) as client:
        created = client.post("/users", json={"name": "Grace Hopper", "email": "grace@example.com"})
        client.get("/users/1/orders")
    posted, listed = tap.take()
    assert (posted["method"], posted["route"], posted["status"]) == (
        "POST",
        "/users",
        created.status_code,
    )
    assert json.loads(posted["request_body"]["text"])["name"] == "Grace Hopper"
    assert json.loads(posted["response_body"]["text"]) == created.json()
    assert listed["route"] == "/users/{id}/orders"
    assert tap.take() == []  # taking empties the tap


def test_an_async_client_records_like_a_sync_one(shop):
    tap = Tap()

    async def fetch() -> httpx.Response:
        transport = AsyncRecordingTransport(tap=tap)
        async with httpx.AsyncClient(base_url=shop.url, transport=transport) as client:
            return await client.get("/inventory")

    response = asyncio.run(fetch())
    [exchange] = tap.take()
    assert exchange["status"] == response.status_code == 200
    assert exchange["response_body"]["size"] == len(response.content)


def test_a_refused_connection_is_recorded_and_still_raised(refused_url):
    tap = Tap()
    with (
        httpx.Client(transport=RecordingTransport(tap=tap)) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get(refused_url + "/users/1")
    [exchange] = tap.take()
    assert exchange["status"] is None
    assert exchange["error"].startswith("ConnectError:")


def test_without_an_active_tap_requests_pass_through_unrecorded(shop):
    previous = active_tap()
    activate(None)
    try:
        with httpx.Client(transport=RecordingTransport()) as client:
            assert client.get(shop.url + "/health").status_code == 200
    finally:
        activate(previous)


def test_the_active_tap_receives_exchanges_of_transports_without_their_own(shop):
    tap, previous = Tap(), active_tap()
    activate(tap)
    try:
        with httpx.Client(transport=RecordingTransport()) as client:
            client.get(shop.url + "/health")
    finally:
        activate(previous)
    assert [x["route"] for x in tap.take()] == ["/health"]


class _BrokenRedactor(Redactor):
    def body(self, content: bytes, content_type: str) -> bytes:
        raise ValueError("redactor bug")


def test_trouble_while_recording_never_changes_the_response(shop):
    tap = Tap(redactor=_BrokenRedactor())
    with httpx.Client(transport=RecordingTransport(tap=tap)) as client:
        response = client.get(shop.url + "/users/2")
    assert response.status_code == 200 and response.json()["id"] == 2
    assert tap.take() == []
    assert tap.dropped == ["GET /users/2: ValueError: redactor bug"]


def test_secrets_are_redacted_before_the_exchange_exists(shop):
    tap = Tap()
    with httpx.Client(transport=RecordingTransport(tap=tap)) as client:
        client.get(
            shop.url + "/health?token=t0ps3cr3t", headers={"Authorization": "Bearer abcdefgh123"}
        )
    [exchange] = tap.take()
    assert "t0ps3cr3t" not in json.dumps(exchange) and "abcdefgh123" not in json.dumps(exchange)


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/users/42", "/users/{id}"),
        ("/users/42/orders", "/users/{id}/orders"),
        ("/orders/0b6f9a2e-8c1d-4e5f-9a0b-1c2d3e4f5a6b", "/orders/{id}"),
        ("/inventory/sku-123", "/inventory/{id}"),
        ("/inventory", "/inventory"),
        ("/users/42?expand=orders", "/users/{id}"),
        ("/", "/"),
        ("", "/"),
    ],
)
def test_route_templates_replace_id_like_segments(path, template):
    assert route_template(path) == template
