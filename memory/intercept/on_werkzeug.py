"""werkzeug's test ``Client`` (Flask's ``app.test_client()``), patched where
it hands one environ to the app: ``Client.run_wsgi_app``, once per redirect
hop, as httpx's ``_send_single_request`` is. The route is the rule the app's
``url_map`` matches (Flask's ``request.url_rule``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any
from urllib.parse import quote

from testmem.memory.routes import url_rule_template
from testmem.memory.tap import Body, Capture, Tap, active_tap


def patch(test: ModuleType) -> Callable[[], None]:
    original = test.Client.run_wsgi_app

    def run_wsgi_app(self: Any, environ: dict[str, Any], buffered: bool = False) -> Any:
        tap = active_tap()
        if tap is None:
            return original(self, environ, buffered)
        capture = _begin(tap, environ)
        try:
            app_iter, status, headers = original(self, environ, buffered)
        except Exception as error:
            if capture:
                capture.fail(error)
            raise
        if capture:
            app_iter = _respond(capture, self.application, environ, app_iter, status, headers)
        return app_iter, status, headers

    test.Client.run_wsgi_app = run_wsgi_app

    def undo() -> None:
        test.Client.run_wsgi_app = original

    return undo


def _begin(tap: Tap, environ: dict[str, Any]) -> Capture | None:
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    try:
        query = environ.get("QUERY_STRING", "")
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "localhost")
        url = f"{environ.get('wsgi.url_scheme', 'http')}://{host}{quote(path)}"
        return tap.begin(method, url + (f"?{query}" if query else ""), path,
                         _headers(environ), _request_body(environ))  # fmt: skip
    except Exception as exc:  # recording never changes what the test sees
        tap.dropped.append(f"{method} {path}: {type(exc).__name__}: {exc}")
        return None


def _headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
    named = {"CONTENT_TYPE": "Content-Type", "CONTENT_LENGTH": "Content-Length"}
    headers = [(named[k], str(v)) for k, v in environ.items() if k in named and v]
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").title(), str(value)))
    return headers


def _request_body(environ: dict[str, Any]) -> Body | None:
    """The body as the builder left it (an in-memory stream), read and
    rewound for the app; a stream that cannot rewind is sent unrecorded."""
    stream = environ.get("wsgi.input")
    if stream is None or not stream.seekable():
        return None
    start = stream.tell()
    data = stream.read()
    stream.seek(start)
    return Body.of(data)


def _respond(
    capture: Capture, app: Any, environ: dict[str, Any], app_iter: Iterable[bytes],
    status: str, headers: Any,
) -> Iterable[bytes]:  # fmt: skip
    """The response's body is teed as the test (or werkzeug) reads it."""
    try:
        body = Body()
        capture.respond(int(status.split(" ", 1)[0]), headers.items(), body)
        method, script = environ.get("REQUEST_METHOD", "GET"), environ.get("SCRIPT_NAME", "")
        path = environ.get("PATH_INFO", "")
        capture.route = lambda: url_rule_template(app, method, path, script)
        return _Tee(app_iter, body, capture.finish)
    except Exception:
        capture.finish()  # recorded as far as it got: our trouble is not the exchange's
        return app_iter


class _Tee:
    """The app's iterable passed on chunk by chunk, each chunk also recorded;
    ``close`` reaches the app's iterable, as WSGI requires."""

    def __init__(self, chunks: Iterable[bytes], body: Body, done: Callable[[], None]) -> None:
        self._chunks, self._body, self._done = chunks, body, done

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._body.add(chunk)
            yield chunk
        self._done()

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            self._done()
