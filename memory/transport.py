"""Recording httpx transports: they see request and response in one call.

Wrap any transport (``RecordingTransport(httpx.HTTPTransport())``) and every
exchange is captured — redacted and capped before it exists as data — into
the active `Tap`, which the pytest plugin installs for the session. With no
tap active the transports simply pass requests through. With ``--memory``,
every httpx client is recorded anyway (`testmem.memory.intercept`): inside such a
client a recording transport passes its exchanges through, recorded once.
"""

from __future__ import annotations

import httpx

from testmem.memory.intercept.on_httpx import recording, send, send_async
from testmem.memory.tap import Exchange, Tap, activate, active_tap

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
        if tap is None or (recording.get() and tap is active_tap()):
            return self._transport.handle_request(request)
        return send(tap, request, self._transport.handle_request)

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
        if tap is None or (recording.get() and tap is active_tap()):
            return await self._transport.handle_async_request(request)
        return await send_async(tap, request, self._transport.handle_async_request)

    async def aclose(self) -> None:
        await self._transport.aclose()
