"""The tap: where interceptions put the exchanges they capture.

An interception (a patched HTTP library, or a recording transport) calls
`Tap.begin` as a request leaves, then tells the `Capture` what came back; the
bodies are teed as they stream (`Body`), so a capture completes when its
response is closed, read or, at the latest, when the test ends. Each capture
knows the phase and fixture it began in (the recorder sets `Tap.phase` and
`Tap.fixture`). Kept apart from httpx and requests, so that the recorder (and
so pytest's start-up with ``--memory``) imports neither for a suite that never
makes a request.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from testmem.memory.events import DEFAULT_CAP, Blob, uuid7
from testmem.memory.redact import DEFAULT_REDACTOR, Redactor
from testmem.memory.routes import OpenApiRoutes, route_template

if TYPE_CHECKING:
    import httpx

# Bodies above this are redacted only in the head that is kept, to bound memory.
_WHOLE_REDACTION_LIMIT = 4 * 1024 * 1024

Exchange = dict[str, Any]  # plain data, so xdist can ship it to the controller
Headers = Iterable[tuple[str, str]]


class Body:
    """A body as it passes: its head (up to a limit) kept, its size and sha256
    taken over the whole, so teeing a stream never holds more than the limit.
    The hash runs only once the body outgrows its head (a whole body is
    hashed where it is described, redacted)."""

    __slots__ = ("_hash", "head", "limit", "size")

    def __init__(self, limit: int = _WHOLE_REDACTION_LIMIT) -> None:
        self.head = bytearray()
        self.size = 0
        self.limit = limit
        self._hash: Any = None  # hashlib's sha256, from the first byte past the head

    @classmethod
    def of(cls, content: bytes) -> Body:
        body = cls(max(len(content), 1))
        body.add(content)
        return body

    def add(self, chunk: bytes) -> None:
        if self._hash is None and self.size + len(chunk) > self.limit:
            self._hash = hashlib.sha256(self.head)
        if len(self.head) < self.limit:
            self.head += chunk[: self.limit - len(self.head)]
        self.size += len(chunk)
        if self._hash is not None:
            self._hash.update(chunk)

    @property
    def whole(self) -> bool:
        return self.size == len(self.head)

    def sha256(self) -> str:
        hashed = self._hash or hashlib.sha256(self.head)
        return str(hashed.hexdigest())


@dataclass(slots=True, eq=False)
class Capture:
    """One exchange while it happens."""

    method: str
    url: str
    path: str
    request_headers: list[tuple[str, str]]
    request_body: Body | None
    phase: str | None
    fixture: str | None
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    t0: float = field(default_factory=time.perf_counter)
    status: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: Body | None = None
    content: Callable[[], bytes | None] | None = None  # the decoded body, once read
    route: Callable[[], str | None] | None = None  # the app's matched route, once routed
    error: BaseException | None = None
    duration_s: float = 0.0
    done: bool = False

    def respond(self, status: int, headers: Headers, body: Body | None = None) -> None:
        self.status, self.response_headers = status, list(headers)
        self.response_body = body
        self.duration_s = time.perf_counter() - self.t0

    def fail(self, error: BaseException) -> None:
        self.error, self.done = error, True
        self.duration_s = time.perf_counter() - self.t0

    def finish(self) -> None:
        self.done = True


class Tap:
    """Collects captures until the recorder takes them as exchanges."""

    def __init__(self, redactor: Redactor = DEFAULT_REDACTOR, cap: int = DEFAULT_CAP) -> None:
        self.redactor = redactor
        self.cap = cap
        self.dropped: list[str] = []  # why an exchange could not be captured
        self.phase: str | None = None  # set by the recorder around each phase
        self.fixture: str | None = None  # the fixture being set up or torn down
        self.openapi: OpenApiRoutes | None = None  # ini memory_openapi
        self._captures: list[Capture] = []
        self._lock = threading.Lock()

    def begin(
        self, method: str, url: str, path: str, headers: Headers, body: Body | None
    ) -> Capture:
        capture = Capture(method, url, path, list(headers), body, self.phase, self.fixture)
        with self._lock:
            self._captures.append(capture)
        return capture

    def take(self, final: bool = False) -> list[Exchange]:
        """The exchanges completed so far (all of them when ``final``: a
        stream still open when its test ends is kept as far as it was read)."""
        if not self._captures:  # most reports: nothing to hand over, nothing to allocate
            return []
        with self._lock:
            ready = [c for c in self._captures if final or c.done or _read(c)]
            if len(ready) == len(self._captures):
                self._captures = []
            else:
                self._captures = [c for c in self._captures if c not in ready]
        return [x for x in map(self._exchange, ready) if x is not None]

    def capture(
        self,
        request: httpx.Request,
        response: httpx.Response | None,
        error: BaseException | None,
        started: datetime,
        duration_s: float,
    ) -> None:
        """Record a whole httpx exchange at once (its bodies already read)."""
        try:
            capture = self.begin(
                request.method,
                str(request.url),
                request.url.path,
                request.headers.multi_items(),
                Body.of(request.content),
            )
            capture.started = started
            if response is not None:
                capture.respond(response.status_code, response.headers.multi_items())
                capture.content = lambda: response.content
            if error is not None:
                capture.fail(error)
            capture.duration_s, capture.done = duration_s, True
        except Exception as exc:
            self.dropped.append(f"{request.method} {request.url.path}: {type(exc).__name__}: {exc}")

    def _exchange(self, c: Capture) -> Exchange | None:
        # Recording must never change what the test sees: trouble is noted, not raised.
        try:
            return self._describe(c)
        except Exception as exc:
            self.dropped.append(f"{c.method} {c.path}: {type(exc).__name__}: {exc}")
            return None

    def _describe(self, c: Capture) -> Exchange:
        r = self.redactor
        responded = c.status is not None
        framework = c.route() if c.route is not None else None
        route, source = (framework, "framework") if framework else self._route(c.path)
        return {
            "exchange_id": uuid7(),
            "occurred_at": c.started.isoformat(),
            "method": c.method,
            "url": r.url(c.url),
            "route": route,
            "route_source": source,
            "phase": c.phase,
            "fixture": c.fixture,
            "status": c.status,
            "request_headers": r.headers_json(c.request_headers),
            "request_body": self._body(c.request_body, _content_type(c.request_headers)),
            "response_headers": r.headers_json(c.response_headers) if responded else "{}",
            "response_body": self._body(_response_body(c), _content_type(c.response_headers))
            if responded
            else None,
            "duration_s": c.duration_s,
            "error": r.text(f"{type(c.error).__name__}: {c.error}") if c.error else None,
        }

    def _route(self, path: str) -> tuple[str, str]:
        documented = self.openapi.match(path) if self.openapi else None
        return (documented, "openapi") if documented else (route_template(path), "pattern")

    def _body(self, body: Body | None, content_type: str) -> dict[str, Any] | None:
        if body is None or not body.size:
            return None
        if body.whole:
            redacted = self.redactor.body(bytes(body.head), content_type)
            return Blob.of(redacted, self.cap).to_dict()
        return self._large_body(body)

    def _large_body(self, body: Body) -> dict[str, Any]:
        """Only the kept head is redacted (as text: a cut JSON document does not
        parse): decoding a 100 MB body to redact it all would take gigabytes."""
        head = Blob.of(self.redactor.body(bytes(body.head[: self.cap]), "text/plain"), self.cap)
        return Blob(head.text, body.size, body.sha256(), head.encoding, truncated=True).to_dict()


def _read(c: Capture) -> bool:
    """Whether the library has read the whole body (it may never close it)."""
    return c.content is not None and c.content() is not None


def _response_body(c: Capture) -> Body | None:
    content = c.content() if c.content is not None else None
    if content is not None:
        return Body.of(content) if len(content) <= _WHOLE_REDACTION_LIMIT else _teed(content)
    return c.response_body


def _teed(content: bytes) -> Body:
    body = Body()
    body.add(content)
    return body


def _content_type(headers: list[tuple[str, str]]) -> str:
    return next((v for k, v in headers if k.lower() == "content-type"), "")


_active: Tap | None = None


def activate(tap: Tap | None) -> None:
    """Install (or with None, remove) the tap that transports record into."""
    global _active
    _active = tap


def active_tap() -> Tap | None:
    return _active


# Set while an exchange is being recorded, so what it is sent through (requests
# through urllib3, an httpx client through a `RecordingTransport`) does not
# record it a second time.
recording: ContextVar[bool] = ContextVar("testmem_recording", default=False)
