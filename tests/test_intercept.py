"""Automatic recording: a suite records as it is, whatever HTTP client it uses.

Real inner pytest sessions (pytester) against the example shop on loopback
and against in-process Starlette and WSGI apps; what was recorded is read
back through the store's views.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from testmem.memory.query import History
from testmem.memory.store import Store

pytest_plugins = ["pytester"]

MEMORY = ("--memory", "--memory-retries=0", "--no-memory-triage", "-p", "no:randomly")

APPS = """
import asyncio

import httpx
import pytest
import requests
import urllib3
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient


async def profile(request):
    return JSONResponse({"name": request.path_params["name"]})


async def upload(request):
    form = await request.form()
    data = await form["file"].read()
    return JSONResponse({"size": len(data), "filename": form["file"].filename})


app = Starlette(routes=[
    Route("/profiles/{name}", profile),
    Route("/upload", upload, methods=["POST"]),
])


def wsgi_app(environ, start_response):
    start_response("200 OK", [("content-type", "application/json")])
    return [b'{"path": "' + environ["PATH_INFO"].encode() + b'"}']
"""

CLIENTS_SUITE = (
    APPS
    + """

def test_requests_session(api_base_url):
    with requests.Session() as session:
        assert session.get(api_base_url + "/users/1").status_code == 200


def test_requests_get(api_base_url):
    assert requests.get(api_base_url + "/users/999").status_code == 404


def test_httpx_get(api_base_url):
    assert httpx.get(api_base_url + "/inventory").status_code == 200


def test_httpx_async(api_base_url):
    async def fetch():
        async with httpx.AsyncClient() as client:
            return await client.get(api_base_url + "/users/1/orders")

    assert asyncio.run(fetch()).status_code == 200


def test_asgi_transport():
    async def fetch():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://asgi") as client:
            return await client.get("/profiles/joe")

    assert asyncio.run(fetch()).json() == {"name": "joe"}


def test_wsgi_transport_on_a_mount(api_base_url):
    mounts = {"http://wsgi": httpx.WSGITransport(app=wsgi_app)}
    with httpx.Client(mounts=mounts) as client:
        assert client.get("http://wsgi/items/7").json() == {"path": "/items/7"}
        assert client.get(api_base_url + "/health").status_code == 200


def test_starlette_testclient():
    with TestClient(app) as client:
        assert client.get("/profiles/ross").json() == {"name": "ross"}


def test_multipart_upload():
    with TestClient(app) as client:
        sent = client.post("/upload", files={"file": ("photo.bin", b"\\x89PNG" + b"x" * 5000)})
    assert sent.json() == {"size": 5004, "filename": "photo.bin"}


def test_urllib3(api_base_url):
    pool = urllib3.PoolManager()
    assert pool.request("GET", api_base_url + "/users/1").json()["id"] == 1
    streamed = pool.request("GET", api_base_url + "/inventory", preload_content=False)
    assert b"".join(streamed.stream(16))
"""
)

# (method, path, status) each test's exchanges must be, in order.
EXPECTED = {
    "test_requests_session": [("GET", "/users/1", 200)],
    "test_requests_get": [("GET", "/users/999", 404)],
    "test_httpx_get": [("GET", "/inventory", 200)],
    "test_httpx_async": [("GET", "/users/1/orders", 200)],
    "test_asgi_transport": [("GET", "/profiles/joe", 200)],
    "test_wsgi_transport_on_a_mount": [("GET", "/items/7", 200), ("GET", "/health", 200)],
    "test_starlette_testclient": [("GET", "/profiles/ross", 200)],
    "test_multipart_upload": [("POST", "/upload", 200)],
    "test_urllib3": [("GET", "/users/1", 200), ("GET", "/inventory", 200)],
}


def _exchanges(store: Path) -> dict[str, list[dict[str, Any]]]:
    rows = History(Store.open(store)).sql("SELECT * FROM exchanges ORDER BY occurred_at").dicts()
    by_test: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_test[row["nodeid"].rpartition("::")[2]].append(row)
    return by_test


@pytest.fixture
def clients_run(pytester, shop, store_dir):
    pytester.makepyfile(test_clients=CLIENTS_SUITE)
    result = pytester.runpytest(*MEMORY, f"--memory-dir={store_dir}", f"--api-base-url={shop.url}")
    return result, _exchanges(store_dir)


def test_every_client_and_transport_is_recorded_without_code_changes(clients_run):
    result, recorded = clients_run
    result.assert_outcomes(passed=len(EXPECTED))
    seen = {
        test: [(x["method"], urlsplit(x["url"]).path, x["status"]) for x in xs]
        for test, xs in recorded.items()
    }
    assert seen == EXPECTED


def test_urllib3_bodies_are_recorded_preloaded_and_streamed(clients_run):
    _, recorded = clients_run
    user, inventory = recorded["test_urllib3"]
    assert json.loads(user["response_body"])["id"] == 1
    assert inventory["response_body"] and json.loads(inventory["response_body"])


def test_a_multipart_upload_is_recorded_and_sent_intact(clients_run):
    result, recorded = clients_run
    [upload] = recorded["test_multipart_upload"]
    assert upload["request_body_size"] > 5004  # the whole multipart document
    assert upload["request_body_encoding"] == "base64"  # a PNG's first byte is not UTF-8
    assert b'filename="photo.bin"' in base64.b64decode(upload["request_body"])
    assert json.loads(upload["response_body"]) == {"size": 5004, "filename": "photo.bin"}
    assert "RequestNotRead" not in result.stdout.str()


def test_with_recording_off_only_recording_transports_record(pytester, shop, store_dir):
    pytester.makepyfile(
        """
        import httpx
        from testmem.memory import RecordingTransport

        def test_both(api_base_url, api_client):
            httpx.get(api_base_url + "/health")
            api_client.get("/users/1")
            with httpx.Client(transport=RecordingTransport()) as client:
                client.get(api_base_url + "/inventory")
        """
    )
    pytester.runpytest(
        *MEMORY, "-o", "memory_record_http=false", f"--memory-dir={store_dir}",
        f"--api-base-url={shop.url}",
    ).assert_outcomes(passed=1)  # fmt: skip
    [both] = _exchanges(store_dir).values()
    assert [urlsplit(x["url"]).path for x in both] == ["/users/1", "/inventory"]


DEDUPE_AND_FIXTURES = """
import httpx
import pytest
from testmem.memory import RecordingTransport


@pytest.fixture
def login(api_base_url):
    httpx.get(api_base_url + "/users/1")
    yield "token"
    httpx.get(api_base_url + "/users/2")


def test_wrapped_and_attributed(api_base_url, login):
    with httpx.Client(transport=RecordingTransport(httpx.HTTPTransport())) as client:
        client.get(api_base_url + "/inventory")
"""


def test_an_exchange_is_recorded_once_and_names_the_fixture_that_made_it(pytester, shop, store_dir):
    pytester.makepyfile(DEDUPE_AND_FIXTURES)
    pytester.runpytest(
        *MEMORY, f"--memory-dir={store_dir}", f"--api-base-url={shop.url}"
    ).assert_outcomes(passed=1)
    [made] = _exchanges(store_dir).values()
    assert [(x["url"].removeprefix(shop.url), x["phase"], x["fixture"]) for x in made] == [
        ("/users/1", "setup", "login"),
        ("/inventory", "call", None),
        ("/users/2", "teardown", "login"),
    ]


SSE_SUITE = """
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import requests

release = threading.Event()  # set by the test once it has read the first event


class Events(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b"data: first\\n\\n")
        self.wfile.flush()
        # Only a client that saw "first" before the stream ended can release it.
        self.wfile.write(b"data: second\\n\\n" if release.wait(5) else b"data: too-late\\n\\n")
        release.clear()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def events_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Events)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/events"
    server.shutdown()


def test_httpx_stream(events_url):
    with httpx.stream("GET", events_url) as response:
        lines = response.iter_lines()
        assert next(lines) == "data: first"
        release.set()
        assert [line for line in lines if line] == ["data: second"]


def test_requests_stream(events_url):
    with requests.get(events_url, stream=True) as response:
        lines = response.iter_lines(chunk_size=1)
        assert next(lines) == b"data: first"
        release.set()
        assert [line for line in lines if line] == [b"data: second"]
"""


@pytest.mark.parametrize("recording", [True, False])
def test_a_stream_reaches_the_test_as_it_arrives(pytester, store_dir, recording):
    pytester.makepyfile(SSE_SUITE)
    args = (*MEMORY, f"--memory-dir={store_dir}") if recording else ("-p", "no:randomly")
    pytester.runpytest(*args).assert_outcomes(passed=2)
    if recording:  # and the whole stream is recorded once it closed
        bodies = [x[0]["response_body"] for x in _exchanges(store_dir).values()]
        assert bodies == ["data: first\n\ndata: second\n\n"] * 2
