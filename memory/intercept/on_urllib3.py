"""urllib3, patched where a pool sends one request on a connection:
``HTTPConnectionPool._make_request``, once per retry and redirect hop (its
public ``urlopen`` loops over them). requests sends through urllib3 and is
recorded where it sends, so an exchange requests is recording is not
recorded again here.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from testmem.memory.tap import Body, Capture, Tap, active_tap, recording

_DEFAULT_PORTS = {"http": 80, "https": 443}


def patch(connectionpool: ModuleType) -> Callable[[], None]:
    pool = connectionpool.HTTPConnectionPool
    original = pool._make_request

    def _make_request(
        self: Any, conn: Any, method: str, url: str, *args: Any, **kwargs: Any
    ) -> Any:
        tap = active_tap()
        if tap is None or recording.get():
            return original(self, conn, method, url, *args, **kwargs)
        body = kwargs.get("body", args[0] if args else None)
        headers = kwargs.get("headers", args[1] if len(args) > 1 else None)
        capture = _begin(tap, self, method, url, body, headers)
        try:
            response = original(self, conn, method, url, *args, **kwargs)
        except Exception as error:
            if capture:
                capture.fail(error)
            raise
        if capture:
            _respond(capture, response)
        return response

    pool._make_request = _make_request

    def undo() -> None:
        pool._make_request = original

    return undo


def _begin(
    tap: Tap, pool: Any, method: str, target: str, body: Any, headers: Any
) -> Capture | None:
    try:
        if target.startswith(("http://", "https://")):  # through a proxy: the whole URL
            url = target
        else:
            port = "" if pool.port in (None, _DEFAULT_PORTS.get(pool.scheme)) else f":{pool.port}"
            url = f"{pool.scheme}://{pool.host}{port}{target}"
        return tap.begin(method, url, urlsplit(url).path, _pairs(headers), _body(body))
    except Exception as exc:  # recording never changes what the test sees
        tap.dropped.append(f"{method} {target}: {type(exc).__name__}: {exc}")
        return None


def _pairs(headers: Any) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in (headers or {}).items()]


def _body(body: Any) -> Body | None:
    """Bytes and text are recorded; a file or an iterable is sent unrecorded."""
    if isinstance(body, str):
        return Body.of(body.encode("utf-8", "surrogateescape"))
    if isinstance(body, bytes | bytearray | memoryview):
        return Body.of(bytes(body))
    return None if body is not None else Body.of(b"")


def _respond(capture: Capture, response: Any) -> None:
    """A preloaded body is recorded whole; a streamed one as the test reads it."""
    try:
        body = Body()
        capture.respond(response.status, response.headers.items(), body)
        if response._body is not None:  # preload_content: already read
            content = response._body
            capture.content = lambda: content
            capture.finish()
            return
        read = response.read

        def teed(*args: Any, **kwargs: Any) -> Any:
            chunk = read(*args, **kwargs)
            if isinstance(chunk, bytes):
                body.add(chunk)
            return chunk

        response.read = teed
    except Exception:
        capture.finish()  # recorded as far as it got: our trouble is not the exchange's
