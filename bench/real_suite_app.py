"""Six builds of a real app, made by an ASGI middleware around it: a pytest plugin.

`bench/real_suite.py` runs the app's own suite with ``-p bench.real_suite_app``;
the plugin wraps the app the suite builds (``conduit.app.create_app``, the
RealWorld "Conduit" backend of maddenvvs/fastapi-conduit-backend) in `Faults`,
which changes its answers the way release ``REAL_SUITE_BUILD`` of `BUILDS`
says (``REAL_SUITE_CHANGE`` plays one change of it alone). Neither the app
nor its suite is edited. No testmem import here: the plugin runs in the app's
own virtualenv, inside the recorded run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, fields, replace
from typing import Any

import pytest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_PROFILE = re.compile(r"^/api/profiles/[^/]+$")
_ARTICLE = re.compile(r"^/api/articles/(?!feed$)[^/]+$")


@dataclass(frozen=True)
class Build:
    """One build of the app: its label and the changes it carries."""

    label: str = "v1.0.0"
    # Intended changes
    rename_profile_image_to: str | None = None  # GET /profiles/{username}: profile.image
    register_status: int = 201  # POST /users
    article_reading_time: bool = False  # an added field of GET /articles/{slug}
    # Transient faults
    tags_503_rate: float = 0.0  # GET /tags answers 503 now and then
    profile_rate_limit_every: int = 0  # every Nth GET /profiles/{username}: 429 + Retry-After
    # Regressions
    article_fails: bool = False  # GET /articles/{slug} answers 500
    current_user_fails: bool = False  # GET /user answers 500
    seed: int = 0

    def changes(self) -> list[str]:
        """The names of the changes this build carries, against the baseline."""
        baseline = Build()
        names = [f.name for f in fields(self) if f.name not in ("label", "seed")]
        return [n for n in names if getattr(self, n) != getattr(baseline, n)]

    def alone(self, change: str) -> Build:
        """The baseline with only ``change`` of this build; a transient fault at
        full rate, so every test it can touch shows."""
        value = getattr(self, change)
        if change == "tags_503_rate":
            value = 1.0
        elif change == "profile_rate_limit_every":
            value = 1
        return replace(Build(), label=f"{self.label}:{change}", **{change: value})


def _story() -> list[Build]:
    builds = [Build()]

    def build(label: str, **changes: Any) -> None:
        changes.setdefault("seed", len(builds))
        builds.append(replace(builds[-1], label=label, **changes))

    build("v1.1.0", tags_503_rate=0.3, profile_rate_limit_every=7)
    build("v1.2.0", rename_profile_image_to="avatar", article_fails=True)
    build("v1.3.0", register_status=200, article_reading_time=True)
    build("v1.4.0", article_fails=False, current_user_fails=True)
    build("v1.5.0")
    return builds


BUILDS: list[Build] = _story()


class Faults:
    """An ASGI middleware answering as ``build`` says, deterministic for its seed."""

    def __init__(self, app: App, build: Build) -> None:
        self.app, self.build = app, build
        self.seen: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method, path = scope["method"], scope["path"]
        if not self._touches(method, path):
            return await self.app(scope, receive, send)
        # The app answers first, so its router names the route, as a fault inside it would.
        status, headers, body = await _held(self.app, scope, receive)
        fault = self._fault(method, path, status)
        if fault is not None:
            return await _answer(send, *fault)
        status, body = self._changed(method, status, body)
        headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _fault(
        self, method: str, path: str, status: int
    ) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """The answer given instead of the app's, if any: a transient fault or a regression."""
        b = self.build
        if method == "GET" and path == "/api/tags" and self._chance("tags") < b.tags_503_rate:
            return 503, {"errors": {"body": ["upstream unavailable"]}}, {}
        every = b.profile_rate_limit_every
        if (
            method == "GET"
            and every
            and _PROFILE.match(path)
            and self._count("profiles") % every == 0
        ):
            return 429, {"errors": {"body": ["too many requests"]}}, {"retry-after": "1"}
        if method == "GET" and b.article_fails and _ARTICLE.match(path) and status == 200:
            return 500, {"errors": {"body": ["internal error", "KeyError: 'favorites'"]}}, {}
        if method == "GET" and b.current_user_fails and path == "/api/user":
            error = "sqlalchemy.exc.OperationalError: no such column: users.avatar_url"
            return 500, {"errors": {"body": ["internal error", error]}}, {}
        return None

    def _touches(self, method: str, path: str) -> bool:
        """Whether any change of the build may touch this request."""
        b = self.build
        if method == "POST":
            return path == "/api/users" and b.register_status != 201
        return method == "GET" and (
            (path == "/api/tags" and bool(b.tags_503_rate))
            or (path == "/api/user" and b.current_user_fails)
            or (
                bool(_PROFILE.match(path))
                and bool(b.rename_profile_image_to or b.profile_rate_limit_every)
            )
            or (bool(_ARTICLE.match(path)) and (b.article_fails or b.article_reading_time))
        )

    def _changed(self, method: str, status: int, body: bytes) -> tuple[int, bytes]:
        b = self.build
        if method == "POST":
            return (b.register_status if status == 201 else status), body
        try:
            document = json.loads(body)
        except ValueError:
            return status, body
        profile = document.get("profile") if isinstance(document, dict) else None
        if b.rename_profile_image_to and isinstance(profile, dict) and "image" in profile:
            profile[b.rename_profile_image_to] = profile.pop("image")
        article = document.get("article") if isinstance(document, dict) else None
        if b.article_reading_time and isinstance(article, dict):
            article["readingTimeMinutes"] = 1
        return status, json.dumps(document).encode()

    def _chance(self, key: str) -> float:
        n = self._count(key)
        digest = hashlib.sha256(f"{self.build.seed}:{key}:{n}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32

    def _count(self, key: str) -> int:
        self.seen[key] = self.seen.get(key, 0) + 1
        return self.seen[key]


async def _held(app: App, scope: Scope, receive: Receive) -> tuple[int, list[Any], bytes]:
    """Run the app and keep its answer: status, headers, body."""
    start: Message = {}
    chunks: list[bytes] = []

    async def hold(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, hold)
    return start["status"], list(start.get("headers", [])), b"".join(chunks)


async def _answer(send: Send, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    raw = json.dumps(body).encode()
    sent = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    sent += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": sent})
    await send({"type": "http.response.body", "body": raw})


def current_build() -> Build:
    """The build ``REAL_SUITE_BUILD`` names (the baseline unless set), or one
    change of it alone (``REAL_SUITE_CHANGE``)."""
    raw = os.environ.get("REAL_SUITE_BUILD", "0")
    if not raw.isdigit() or int(raw) >= len(BUILDS):
        raise pytest.UsageError(f"REAL_SUITE_BUILD must be 0 to {len(BUILDS) - 1}, not {raw!r}")
    build = BUILDS[int(raw)]
    change = os.environ.get("REAL_SUITE_CHANGE")
    if change and change not in build.changes():
        raise pytest.UsageError(f"build {build.label} has no change {change!r}")
    return build.alone(change) if change else build


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Wrap the app the suite's conftest will build, before any conftest imports it
    (a test path deep in the suite makes its conftests initial ones)."""
    import conduit.app

    build, create_app = current_build(), conduit.app.create_app

    def create_faulty_app(*args: Any, **kwargs: Any) -> Any:
        return Faults(create_app(*args, **kwargs), build)

    conduit.app.create_app = create_faulty_app  # type: ignore[assignment]
