"""httpx, patched where a client sends each request (each redirect hop).

``Client._send_single_request`` (and the async twin) is where every httpx
client, whatever its transport (the network, ``ASGITransport``,
``WSGITransport``, mounts, a user's own), hands one request to its transport
and gets the response back: the point vcrpy patches too. Patching the
transports instead would miss every transport testmem does not know.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any

import httpx

from memory.tap import Body, Capture, Tap, active_tap

# Set while an exchange is being recorded, so a `RecordingTransport` inside a
# patched client does not record it a second time.
recording: ContextVar[bool] = ContextVar("testmem_recording", default=False)


def patch() -> Callable[[], None]:
    sync, asynchronous = httpx.Client._send_single_request, httpx.AsyncClient._send_single_request

    def _send_single_request(self: httpx.Client, request: httpx.Request) -> httpx.Response:
        tap = active_tap()
        if tap is None:
            return sync(self, request)
        return send(tap, request, lambda r: sync(self, r))

    async def _async_send_single_request(
        self: httpx.AsyncClient, request: httpx.Request
    ) -> httpx.Response:
        tap = active_tap()
        if tap is None:
            return await asynchronous(self, request)
        return await send_async(tap, request, lambda r: asynchronous(self, r))

    httpx.Client._send_single_request = _send_single_request  # type: ignore[method-assign]
    httpx.AsyncClient._send_single_request = _async_send_single_request  # type: ignore[method-assign]

    def undo() -> None:
        httpx.Client._send_single_request = sync  # type: ignore[method-assign]
        httpx.AsyncClient._send_single_request = asynchronous  # type: ignore[method-assign]

    return undo


def send(
    tap: Tap, request: httpx.Request, deliver: Callable[[httpx.Request], httpx.Response]
) -> httpx.Response:
    capture = begin(tap, request, httpx.SyncByteStream)
    token = recording.set(True)
    try:
        response = deliver(request)
    except Exception as error:
        if capture:
            capture.fail(error)
        raise
    finally:
        recording.reset(token)
    if capture:
        respond(tap, capture, response)
    return response


async def send_async(
    tap: Tap,
    request: httpx.Request,
    deliver: Callable[[httpx.Request], Awaitable[httpx.Response]],
) -> httpx.Response:
    capture = begin(tap, request, httpx.AsyncByteStream)
    token = recording.set(True)
    try:
        response = await deliver(request)
    except Exception as error:
        if capture:
            capture.fail(error)
        raise
    finally:
        recording.reset(token)
    if capture:
        respond(tap, capture, response)
    return response


def begin(tap: Tap, request: httpx.Request, kind: type) -> Capture | None:
    """Start capturing; a streamed request body is teed as it is sent."""
    try:
        body: Body | None = None
        if hasattr(request, "_content"):
            body = Body.of(request.content)
        elif isinstance(request.stream, kind):  # a stream, or multipart: sent intact
            body = Body()
            request.stream = Tee(request.stream, body)
        url = request.url
        return tap.begin(request.method, str(url), url.path, request.headers.multi_items(), body)
    except Exception as exc:  # recording never changes what the test sees
        tap.dropped.append(f"{request.method} {request.url.path}: {type(exc).__name__}: {exc}")
        return None


def respond(tap: Tap, capture: Capture, response: httpx.Response) -> None:
    """The response's body is teed as the test reads it: streams stay streams."""
    try:
        body = Body()
        capture.respond(response.status_code, response.headers.multi_items(), body)
        capture.content = lambda: response.__dict__.get("_content")
        response.stream = Tee(response.stream, body, capture.finish)
    except Exception as exc:
        capture.fail(exc)


class Tee(httpx.SyncByteStream, httpx.AsyncByteStream):
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
