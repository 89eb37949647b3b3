"""A JSON API on 127.0.0.1 whose answers the test chooses: for feeding the
generator and the healer shapes a hostile or careless API serves."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class JsonApi:
    """``answers`` maps a path to the JSON it answers (404 for any other path)."""

    url: str = ""
    answers: dict[str, Any] = field(default_factory=dict)


@contextmanager
def serve_json(answers: dict[str, Any]) -> Iterator[JsonApi]:
    api = JsonApi(answers=answers)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path in api.answers
            body = json.dumps(api.answers[self.path] if found else {"detail": "not found"})
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body.encode())))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
