"""A small blogging API in the RealWorld ("Conduit") style, served in-process.

The second example, unlike the shop's live HTTP server: a FastAPI app that
the suite (`examples/blog_suite`) drives through Starlette's `TestClient`,
with a login before every test, slugs and usernames in paths, and answers
compared as whole dicts. A `Release` says which changes a build carries;
each change is one field, so a change can also be played alone
(`Release.alone`), which is how the scenario learns what each change breaks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields, replace
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

PASSWORD = "correct horse battery staple"
USERS = {
    "jake": {"email": "jake@example.com", "bio": "I work at statefarm", "image": "/img/jake.png"},
    "ada-lovelace": {"email": "ada@example.com", "bio": "Analyst", "image": "/img/ada.png"},
    "linus_t": {"email": "linus@example.com", "bio": None, "image": "/img/linus.png"},
}
ARTICLES = {
    "how-to-train-your-dragon": ("jake", "How to train your dragon", ["dragons", "training"]),
    "dragons-of-the-rust-belt": ("ada-lovelace", "Dragons of the rust belt", ["dragons", "rust"]),
    "welcome-to-rust": ("ada-lovelace", "Welcome to Rust", ["rust"]),
    "why-fastapi": ("linus_t", "Why FastAPI", ["python", "fastapi"]),
}
TAGS = ["dragons", "fastapi", "python", "rust", "training"]


@dataclass(frozen=True)
class Release:
    """One build of the API: its label and the changes it carries."""

    label: str = "v1.0.0"
    # Deliberate changes
    rename_profile_image_to: str | None = None
    register_status: int = 201
    article_reading_time: bool = False  # an added field
    # Transient faults
    article_503_rate: float = 0.0
    tags_rate_limit_every: int = 0  # every Nth GET /api/tags answers 429 + Retry-After
    # Regressions
    dragon_articles_fail: bool = False  # GET /api/articles/{slug} answers 500 for tag dragons
    author_filter_fails: bool = False  # GET /api/articles?author= answers 500
    seed: int = 0

    def changes(self) -> list[str]:
        """The names of the changes this release carries, against the baseline."""
        baseline = Release()
        names = [f.name for f in fields(self) if f.name not in ("label", "seed")]
        return [n for n in names if getattr(self, n) != getattr(baseline, n)]

    def alone(self, change: str) -> Release:
        """The baseline with only ``change`` of this release; a transient fault
        at full rate, so every test it can touch shows."""
        value = getattr(self, change)
        if change == "article_503_rate":
            value = 1.0
        elif change == "tags_rate_limit_every":
            value = 1
        return replace(Release(), label=f"{self.label}:{change}", **{change: value})


class Credentials(BaseModel):
    email: str
    password: str


class Login(BaseModel):
    user: Credentials


class NewUser(BaseModel):
    username: str
    email: str
    password: str


class Registration(BaseModel):
    user: NewUser


def create_app(release: Release = Release()) -> FastAPI:
    app = FastAPI(title="blog", version=release.label)
    faults = _Faults(release)

    @app.post("/api/users/login")
    def login(body: Login) -> dict[str, Any]:
        name = next((n for n, u in USERS.items() if u["email"] == body.user.email), None)
        if name is None or body.user.password != PASSWORD:
            raise HTTPException(401, "email or password is invalid")
        return {"user": {**_user(name), "token": _token(name)}}

    @app.post("/api/users")
    def register(body: Registration, response: Response) -> dict[str, Any]:
        response.status_code = release.register_status
        user = body.user
        return {"user": {"username": user.username, "email": user.email, "bio": None}}

    @app.get("/api/user")
    def current_user(authorization: str = Header("")) -> dict[str, Any]:
        return {"user": _user(_authenticated(authorization))}

    @app.get("/api/profiles/{username}")
    def profile(username: str) -> dict[str, Any]:
        if username not in USERS:
            raise HTTPException(404, f"profile {username} not found")
        return {"profile": _profile(username, release)}

    @app.get("/api/articles/{slug}", response_model=None)
    def article(slug: str) -> dict[str, Any] | JSONResponse:
        if faults.unavailable(f"/api/articles/{slug}"):
            return JSONResponse({"errors": {"body": ["upstream unavailable"]}}, status_code=503)
        if slug not in ARTICLES:
            raise HTTPException(404, f"article {slug} not found")
        if release.dragon_articles_fail and "dragons" in ARTICLES[slug][2]:
            return _server_error("TypeError: 'NoneType' object is not subscriptable")
        return {"article": _article(slug, release)}

    @app.get("/api/articles", response_model=None)
    def articles(author: str | None = None, tag: str | None = None) -> Any:
        if author is not None and release.author_filter_fails:
            return _server_error("column articles.author_id does not exist")
        found = [
            _article(slug, release)
            for slug, (by, _, tags) in ARTICLES.items()
            if author in (None, by) and tag in (None, *tags)
        ]
        return {"articles": found, "articlesCount": len(found)}

    @app.get("/api/articles/{slug}/comments")
    def comments(slug: str) -> dict[str, Any]:
        if slug not in ARTICLES:
            raise HTTPException(404, f"article {slug} not found")
        return {"comments": [{"id": 1, "body": "Great read!", "author": "jake"}]}

    @app.get("/api/tags", response_model=None)
    def tags() -> dict[str, Any] | JSONResponse:
        if faults.rate_limited():
            body = {"errors": {"body": ["too many requests"]}}
            return JSONResponse(body, status_code=429, headers={"Retry-After": "1"})
        return {"tags": TAGS}

    return app


class _Faults:
    """The transient faults of a release, deterministic for its seed."""

    def __init__(self, release: Release) -> None:
        self.release = release
        self.seen: dict[str, int] = {}

    def unavailable(self, path: str) -> bool:
        n = self._count(path)
        digest = hashlib.sha256(f"{self.release.seed}:{path}:{n}".encode()).digest()
        return int.from_bytes(digest[:4]) / 2**32 < self.release.article_503_rate

    def rate_limited(self) -> bool:
        every = self.release.tags_rate_limit_every
        return bool(every) and self._count("/api/tags") % every == 0

    def _count(self, key: str) -> int:
        self.seen[key] = self.seen.get(key, 0) + 1
        return self.seen[key]


def _user(name: str) -> dict[str, Any]:
    user = USERS[name]
    return {"username": name, "email": user["email"], "bio": user["bio"], "image": user["image"]}


def _profile(name: str, release: Release) -> dict[str, Any]:
    image = release.rename_profile_image_to or "image"
    return {"username": name, "bio": USERS[name]["bio"], image: USERS[name]["image"]}


def _article(slug: str, release: Release) -> dict[str, Any]:
    author, title, tags = ARTICLES[slug]
    article = {
        "slug": slug,
        "title": title,
        "description": f"All about {title.lower()}",
        "tagList": tags,
        "author": author,
    }
    if release.article_reading_time:
        article["readingTimeMinutes"] = 4
    return article


def _token(name: str) -> str:
    return "tok-" + hashlib.sha256(name.encode()).hexdigest()[:24]


def _authenticated(authorization: str) -> str:
    scheme, _, token = authorization.partition(" ")
    name = next((n for n in USERS if _token(n) == token), None)
    if scheme != "Token" or name is None:
        raise HTTPException(401, "missing or invalid token")
    return name


def _server_error(detail: str) -> JSONResponse:
    return JSONResponse({"errors": {"body": ["internal error", detail]}}, status_code=500)
