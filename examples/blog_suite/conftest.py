"""Fixtures for the blog API suite: the app in-process, and a login before every test.

The app is release ``BLOG_RELEASE`` of `testmem.examples.blog_builds.RELEASES` (the
baseline unless set); ``BLOG_CHANGE`` plays one change of that release alone.

    pytest examples/blog_suite
    BLOG_RELEASE=2 pytest examples/blog_suite
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from testmem.examples.blog_api import PASSWORD, Release, create_app
from testmem.examples.blog_builds import RELEASES


@pytest.fixture(scope="session")
def app() -> FastAPI:
    return create_app(_release())


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client logged in as jake, as most of the suite needs."""
    with TestClient(app, raise_server_exceptions=False) as client:
        login = {"user": {"email": "jake@example.com", "password": PASSWORD}}
        response = client.post("/api/users/login", json=login)
        response.raise_for_status()
        client.headers["Authorization"] = f"Token {response.json()['user']['token']}"
        yield client


def _release() -> Release:
    raw = os.environ.get("BLOG_RELEASE", "0")
    if not raw.isdigit() or int(raw) >= len(RELEASES):
        raise pytest.UsageError(f"BLOG_RELEASE must be 0 to {len(RELEASES) - 1}, not {raw!r}")
    release = RELEASES[int(raw)]
    change = os.environ.get("BLOG_CHANGE")
    if change and change not in release.changes():
        raise pytest.UsageError(f"release {release.label} has no change {change!r}")
    return release.alone(change) if change else release
