"""httpx, patched where a client sends each request (each redirect hop).

``Client._send_single_request`` (and the async twin) is where every httpx
client, whatever its transport (the network, ``ASGITransport``,
``WSGITransport``, mounts, a user's own), hands one request to its transport
and gets the response back: the point vcrpy patches too. Patching the
transports instead would miss every transport testmem does not know.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from types import ModuleType
from typing import Any
from urllib.parse import unquote

import httpx

from testmem.memory.routes import scope_template, url_rule_template
from testmem.memory.tap import Body, Capture, Tap, active_tap, recording

# The request being sent, for an in-process app to say which route it matched.
sending: ContextVar[httpx.Request | None] = ContextVar("testmem_sending", default=None)
# An in-process request's route, once its app has routed it (never holding the request).
_routes: weakref.WeakKeyDictionary[httpx.Request, Callable[[], str | None]] = (
    weakref.WeakKeyDictionary()
)


def patch(lib: ModuleType) -> Callable[[], None]:
    """Patch ``lib``: httpx, or httpx2 (its successor, the same API)."""
    sync, asynchronous = lib.Client._send_single_request, lib.AsyncClient._send_single_request

    def _send_single_request(self: httpx.Client, request: httpx.Request) -> httpx.Response:
        tap = active_tap()
        if tap is None:
            return sync(self, request)
        return send(tap, request, lambda r: sync(self, r), lib)

    async def _async_send_single_request(
        self: httpx.AsyncClient, request: httpx.Request
    ) -> httpx.Response:
        tap = active_tap()
        if tap is None:
            return await asynchronous(self, request)
        return await send_async(tap, request, lambda r: asynchronous(self, r), lib)

    asgi, wsgi = lib.ASGITransport.handle_async_request, lib.WSGITransport.handle_request

    async def handle_async_request(self: Any, request: httpx.Request) -> httpx.Response:
        observe(self)
        return await asgi(self, request)

    def handle_request(self: Any, request: httpx.Request) -> httpx.Response:
        # The app matches PATH_INFO, which httpx sets to the whole path.
        app, method, path = self.app, request.method, unquote(request.url.path)
        _routes[request] = lambda: url_rule_template(app, method, path)  # Flask's rule
        return wsgi(self, request)

    lib.Client._send_single_request = _send_single_request
    lib.AsyncClient._send_single_request = _async_send_single_request
    lib.ASGITransport.handle_async_request = handle_async_request
    lib.WSGITransport.handle_request = handle_request

    def undo() -> None:
        lib.Client._send_single_request = sync
        lib.AsyncClient._send_single_request = asynchronous
        lib.ASGITransport.handle_async_request = asgi
        lib.WSGITransport.handle_request = wsgi

    return undo


def send(
    tap: Tap,
    request: httpx.Request,
    deliver: Callable[[httpx.Request], httpx.Response],
    lib: ModuleType = httpx,
) -> httpx.Response:
    capture = begin(tap, request, lib, asynchronous=False)
    with _delivering(request, capture):
        response = deliver(request)
    if capture:
        respond(capture, response, lib)
    return response


async def send_async(
    tap: Tap,
    request: httpx.Request,
    deliver: Callable[[httpx.Request], Awaitable[httpx.Response]],
    lib: ModuleType = httpx,
) -> httpx.Response:
    capture = begin(tap, request, lib, asynchronous=True)
    with _delivering(request, capture):
        response = await deliver(request)
    if capture:
        respond(capture, response, lib)
    return response


@contextlib.contextmanager
def _delivering(request: httpx.Request, capture: Capture | None) -> Iterator[None]:
    """While the transport has the request: a failure is recorded, and
    inner recording transports and in-process apps know it is being sent."""
    token, sent = recording.set(True), sending.set(request)
    try:
        yield
    except Exception as error:
        if capture:
            capture.fail(error)
        raise
    finally:
        recording.reset(token)
        sending.reset(sent)


def begin(
    tap: Tap, request: httpx.Request, lib: ModuleType, *, asynchronous: bool
) -> Capture | None:
    """Start capturing; a streamed request body is teed as it is sent."""
    try:
        body: Body | None = None
        kind = lib.AsyncByteStream if asynchronous else lib.SyncByteStream
        if hasattr(request, "_content"):
            body = Body.of(request.content)
        elif isinstance(request.stream, kind):  # a stream, or multipart: sent intact
            body = Body()
            request.stream = tee_class(lib)(request.stream, body)
        url = request.url
        return tap.begin(request.method, str(url), url.path, request.headers.multi_items(), body)
    except Exception as exc:  # recording never changes what the test sees
        tap.dropped.append(f"{request.method} {request.url.path}: {type(exc).__name__}: {exc}")
        return None


def respond(capture: Capture, response: httpx.Response, lib: ModuleType) -> None:
    """The response's body is teed as the test reads it: streams stay streams."""
    try:
        body = Body()
        capture.respond(response.status_code, response.headers.multi_items(), body)
        capture.content = lambda: response.__dict__.get("_content")
        capture.route = lambda: _route_of(response.request)
        response.stream = tee_class(lib)(response.stream, body, capture.finish)
    except Exception:
        capture.finish()  # recorded as far as it got: our trouble is not the exchange's


def observe(transport: Any) -> None:
    """Give an in-process transport's app a look-out for its scope, once: the
    scope of a request the tap is sending is kept, for the route the app's
    router puts in it (Starlette and FastAPI do)."""
    app = transport.app
    if getattr(app, "testmem_observed", False):
        return

    async def observed(scope: dict[str, Any], receive: Any, send: Any) -> None:
        request = sending.get()
        if request is not None and scope.get("type") == "http":
            _routes[request] = lambda: scope_template(scope)
        await app(scope, receive, send)

    observed.testmem_observed = True  # type: ignore[attr-defined]
    transport.app = observed


def _route_of(request: httpx.Request) -> str | None:
    route = _routes.get(request)
    return route() if route is not None else None


@functools.cache
def tee_class(lib: ModuleType) -> type:
    """`Tee` as a byte stream of ``lib`` (transports check the stream's class)."""
    return type("Tee", (Tee, lib.SyncByteStream, lib.AsyncByteStream), {})


class Tee:
    """A byte stream passed on chunk by chunk, each chunk also added to a `Body`."""

    def __init__(self, stream: Any, body: Body, closed: Callable[[], None] | None = None):
        self._stream, self._body, self._closed = stream, body, closed

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            self._body.add(chunk)
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            self._body.add(chunk)
            yield chunk

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            if self._closed:
                self._closed()

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._closed:
                self._closed()
