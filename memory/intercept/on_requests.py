"""requests, patched where a session sends each request.

``Session.send`` carries every requests call: module-level ``requests.get``
(a session of its own), sessions, Starlette's old ``TestClient`` (a session
with its own adapter, which is why the adapters are not the place) and SDKs
built on requests. Redirects re-enter ``send`` once per hop (with
``allow_redirects=False``), so the outer call records only the first hop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import requests

from testmem.memory.tap import Body, Capture, Tap, active_tap, recording


def patch(_: ModuleType) -> Callable[[], None]:
    original = requests.Session.send

    def send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        tap = active_tap()
        if tap is None:
            return original(self, request, **kwargs)
        capture, token = _begin(tap, request), recording.set(True)
        try:
            response = original(self, request, **kwargs)
        except Exception as error:
            if capture:
                capture.fail(error)
            raise
        finally:
            recording.reset(token)
        if capture:
            _respond(capture, response.history[0] if response.history else response)
        return response

    requests.Session.send = send  # type: ignore[method-assign]

    def undo() -> None:
        requests.Session.send = original  # type: ignore[method-assign]

    return undo


def _begin(tap: Tap, request: requests.PreparedRequest) -> Capture | None:
    url = request.url or ""
    try:
        body = request.body
        if isinstance(body, str):
            kept: Body | None = Body.of(body.encode("utf-8", "surrogateescape"))
        elif isinstance(body, bytes | bytearray):
            kept = Body.of(bytes(body))
        elif body is not None and not hasattr(body, "read") and isinstance(body, Iterable):
            kept = Body()  # a generator: chunks recorded as they are sent
            request.body = _teed(body, kept)
        else:
            kept = None  # a file object is sent as it is, unrecorded
        path = urlsplit(url).path
        headers = [
            (k, v if isinstance(v, str) else v.decode("latin-1"))
            for k, v in request.headers.items()
        ]
        return tap.begin(request.method or "GET", url, path, headers, kept)
    except Exception as exc:  # recording never changes what the test sees
        tap.dropped.append(f"{request.method} {url}: {type(exc).__name__}: {exc}")
        return None


def _respond(capture: Capture, response: requests.Response) -> None:
    try:
        body = Body()
        capture.respond(response.status_code, response.headers.items(), body)
        if response._content_consumed and isinstance(response._content, bytes):
            content = response._content
            capture.content = lambda: content
            return
        # stream=True: the body is teed as the test iterates it
        stream = response.raw.stream

        def teeing(*args: Any, **kwargs: Any) -> Iterator[bytes]:
            try:
                for chunk in stream(*args, **kwargs):
                    body.add(chunk)
                    yield chunk
            finally:
                capture.finish()

        response.raw.stream = teeing
    except Exception:
        capture.finish()  # recorded as far as it got: our trouble is not the exchange's


def _teed(chunks: Iterable[Any], body: Body) -> Iterator[Any]:
    for chunk in chunks:
        body.add(chunk.encode() if isinstance(chunk, str) else bytes(chunk))
        yield chunk
