"""Recording httpx transports: they see request and response in one call.

Wrap any transport (``RecordingTransport(httpx.HTTPTransport())``) and every
exchange is captured — redacted and capped before it exists as data — into
the active `Tap`, which the pytest plugin installs for the session. With no
tap active the transports simply pass requests through.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx

from memory.tap import Exchange, Tap, activate, active_tap

__all__ = [
    "AsyncRecordingTransport",
    "Exchange",
    "RecordingTransport",
    "Tap",
    "activate",
    "active_tap",
]


class RecordingTransport(httpx.BaseTransport):
    """A sync transport that records every exchange it carries."""

    def __init__(self, transport: httpx.BaseTransport | None = None, *, tap: Tap | None = None):
        self._transport = transport or httpx.HTTPTransport()
        self._tap = tap

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        tap = self._tap or active_tap()
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
        tap = self._tap or active_tap()
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
