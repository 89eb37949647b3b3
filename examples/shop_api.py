"""A small JSON shop API (users, orders, inventory) for example test suites.

Stdlib only, served for real on loopback. What it does is set by a `Build`,
so a demo can replay successive releases of the API (see `testmem.examples.builds`):
rate limiting, a flaky upstream, deliberate API changes, regressions.

    with serve(Build(rate_limit_every=3)) as shop:
        httpx.get(shop.url + "/inventory")
        shop.set_build(Build(regression_order_total=True))

Routes: GET /health; GET, POST /users; GET /users/{id}; GET /users/{id}/orders;
POST /orders; GET /orders/{id}; GET /inventory; GET, PATCH /inventory/{sku}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast

from testmem.examples._shop import Build, Shop

__all__ = ["Build", "ShopServer", "main", "serve"]


class _ShopHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], shop: Shop) -> None:
        self.shop = shop
        super().__init__(address, _ShopRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup
        # that can stall for seconds in sandboxes; loopback needs no name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _ShopRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect of an API
    server_version = "ShopAPI/1.0"
    timeout = 60  # drop idle keep-alive connections instead of pinning threads
    # Headers and body leave in two writes; with Nagle on, the second waits
    # for a delayed ACK and each request takes ~40 ms instead of ~1 ms.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._answer()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _answer(self) -> None:
        length = self.headers.get("Content-Length", "0")
        body = self.rfile.read(int(length)) if length.isdigit() else b""
        reply = cast(_ShopHTTPServer, self.server).shop.handle(self.command, self.path, body)
        payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the output of the tests that use this API is what matters."""


class ShopServer:
    """A running shop API; stop it with `stop()` or by leaving a `with` block."""

    def __init__(self, build: Build, host: str, port: int) -> None:
        self._shop = Shop(build)
        self._httpd = _ShopHTTPServer((host, port), self._shop)
        self._thread = threading.Thread(target=self._serve, name="shop-api", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # stop() waits for the next poll: the default 0.5 s would slow every
        # test that starts its own server.
        self._httpd.serve_forever(poll_interval=0.02)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def build(self) -> Build:
        return self._shop.build

    def set_build(self, build: Build) -> None:
        """Switch behaviour live; data stays, as it would across a deploy."""
        self._shop.set_build(build)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> ShopServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


_BASELINE = Build()


def serve(build: Build = _BASELINE, host: str = "127.0.0.1", port: int = 0) -> ShopServer:
    """Start the shop API in a daemon thread; port 0 picks a free port."""
    return ShopServer(build, host, port)


def main(argv: list[str] | None = None) -> None:
    """Serve in the foreground: python -m testmem.examples.shop_api --port 8000 --build 6"""
    from testmem.examples.builds import BUILDS  # builds imports this module

    parser = argparse.ArgumentParser(
        prog="python -m testmem.examples.shop_api", description=main.__doc__
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on [127.0.0.1]")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port [8000]")
    parser.add_argument(
        "--build",
        type=int,
        default=0,
        choices=range(len(BUILDS)),
        metavar="N",
        help=f"play BUILDS[N] of testmem.examples.builds, 0 to {len(BUILDS) - 1} [0]",
    )
    args = parser.parse_args(argv)
    build = BUILDS[args.build]
    with serve(build, args.host, args.port) as server:
        print(f"shop API {build.label} on {server.url} (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
