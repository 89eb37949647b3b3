"""Recording httpx transports: they see request and response in one call.

Wrap any transport (``RecordingTransport(httpx.HTTPTransport())``) and every
exchange is captured — redacted and capped before it exists as data — into
the active `Tap`, which the pytest plugin installs for the session. With no
tap active the transports simply pass requests through.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import httpx

from memory.events import DEFAULT_CAP, Blob, uuid7
from memory.redact import DEFAULT_REDACTOR, Redactor
from memory.routes import route_template

Exchange = dict[str, Any]  # plain data, so xdist can ship it to the controller


class Tap:
    """Collects captured exchanges until the recorder takes them."""

    def __init__(self, redactor: Redactor = DEFAULT_REDACTOR, cap: int = DEFAULT_CAP) -> None:
        self.redactor = redactor
        self.cap = cap
        self.dropped: list[str] = []  # why an exchange could not be captured
        self._exchanges: list[Exchange] = []
        self._lock = threading.Lock()

    def take(self) -> list[Exchange]:
        with self._lock:
            taken, self._exchanges = self._exchanges, []
        return taken

    def capture(
        self,
        request: httpx.Request,
        response: httpx.Response | None,
        error: BaseException | None,
        started: datetime,
        duration_s: float,
    ) -> None:
        # Recording must never change what the test sees: trouble is noted, not raised.
        try:
            exchange = self._describe(request, response, error, started, duration_s)
        except Exception as exc:
            self.dropped.append(f"{request.method} {request.url.path}: {type(exc).__name__}: {exc}")
            return
        with self._lock:
            self._exchanges.append(exchange)

    def _describe(
        self,
        request: httpx.Request,
        response: httpx.Response | None,
        error: BaseException | None,
        started: datetime,
        duration_s: float,
    ) -> Exchange:
        r = self.redactor
        return {
            "exchange_id": uuid7(),
            "occurred_at": started.isoformat(),
            "method": request.method,
            "url": r.url(str(request.url)),
            "route": route_template(request.url.path),
            "status": response.status_code if response is not None else None,
            "request_headers": r.headers_json(request.headers.multi_items()),
            "request_body": self._body(request.content, request.headers),
            "response_headers": r.headers_json(response.headers.multi_items())
            if response
            else "{}",
            "response_body": self._body(response.content, response.headers) if response else None,
            "duration_s": duration_s,
            "error": r.text(f"{type(error).__name__}: {error}") if error else None,
        }

    def _body(self, content: bytes, headers: httpx.Headers) -> dict[str, Any] | None:
        if not content:
            return None
        redacted = self.redactor.body(content, headers.get("content-type", ""))
        return asdict(Blob.of(redacted, self.cap))


_active: Tap | None = None


def activate(tap: Tap | None) -> None:
    """Install (or with None, remove) the tap that transports record into."""
    global _active
    _active = tap


def active_tap() -> Tap | None:
    return _active


class RecordingTransport(httpx.BaseTransport):
    """A sync transport that records every exchange it carries."""

    def __init__(self, transport: httpx.BaseTransport | None = None, *, tap: Tap | None = None):
        self._transport = transport or httpx.HTTPTransport()
        self._tap = tap

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        tap = self._tap or _active
        if tap is None:
            return self._transport.handle_request(request)
        started, t0 = datetime.now(UTC), time.perf_counter()
        try:
            response = self._transport.handle_request(request)
            response.read()
        except Exception as error:
            tap.capture(request, None, error, started, time.perf_counter() - t0)
            raise
        tap.capture(request, response, None, started, time.perf_counter() - t0)
        return response

    def close(self) -> None:
        self._transport.close()


class AsyncRecordingTransport(httpx.AsyncBaseTransport):
    """The async twin of `RecordingTransport`."""

    def __init__(
        self, transport: httpx.AsyncBaseTransport | None = None, *, tap: Tap | None = None
    ):
        self._transport = transport or httpx.AsyncHTTPTransport()
        self._tap = tap

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        tap = self._tap or _active
        if tap is None:
            return await self._transport.handle_async_request(request)
        started, t0 = datetime.now(UTC), time.perf_counter()
        try:
            response = await self._transport.handle_async_request(request)
            await response.aread()
        except Exception as error:
            tap.capture(request, None, error, started, time.perf_counter() - t0)
            raise
        tap.capture(request, response, None, started, time.perf_counter() - t0)
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()
