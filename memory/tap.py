"""The tap: where recording transports put what they capture.

Kept apart from the transports, which need httpx, so that the recorder (and
so pytest's start-up with ``--memory``) does not import httpx for a suite
that never makes a request.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memory.events import DEFAULT_CAP, Blob, uuid7
from memory.redact import DEFAULT_REDACTOR, Redactor
from memory.routes import route_template

if TYPE_CHECKING:
    import httpx

# Bodies above this are redacted only in the head that is kept, to bound memory.
_WHOLE_REDACTION_LIMIT = 4 * 1024 * 1024

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
        if not self._exchanges:  # most reports: nothing to hand over, nothing to allocate
            return []
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
        if len(content) > _WHOLE_REDACTION_LIMIT:
            return self._large_body(content, headers)
        redacted = self.redactor.body(content, headers.get("content-type", ""))
        return asdict(Blob.of(redacted, self.cap))

    def _large_body(self, content: bytes, headers: httpx.Headers) -> dict[str, Any]:
        """Only the kept head is redacted (as text: a cut JSON document does not
        parse): decoding a 100 MB body to redact it all would take gigabytes."""
        whole = Blob.of(content, self.cap)  # size and sha256 of the body as sent
        head = Blob.of(self.redactor.body(content[: self.cap], "text/plain"), self.cap)
        return asdict(replace(whole, text=head.text, encoding=head.encoding, truncated=True))


_active: Tap | None = None


def activate(tap: Tap | None) -> None:
    """Install (or with None, remove) the tap that transports record into."""
    global _active
    _active = tap


def active_tap() -> Tap | None:
    return _active
