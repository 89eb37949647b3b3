"""Fixtures for the shop API example suite.

testmem's pytest plugin provides `api_client`, an httpx.Client bound to the
`api_base_url` fixture. This conftest overrides `api_base_url` so the suite
runs on its own: unless a URL is given, it serves the example shop API on
loopback for the session, as build `SHOP_BUILD` of `testmem.examples.builds.BUILDS`.

    pytest examples/suite
    SHOP_BUILD=6 pytest examples/suite
    pytest examples/suite --api-base-url http://127.0.0.1:8000
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from testmem.examples.builds import BUILDS
from testmem.examples.shop_api import Build, serve


@pytest.fixture(scope="session")
def api_base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    given = _given_base_url(request.config)
    if given:
        yield given
        return
    with serve(_chosen_build()) as server:
        yield server.url


def _given_base_url(config: pytest.Config) -> str | None:
    """Command line beats the environment, which beats the ini file."""
    # The option and the ini key belong to testmem's plugin: without it they
    # do not exist, and the suite must still run.
    option = config.getoption("api_base_url", default=None)
    try:
        ini = config.getini("api_base_url")
    except ValueError:
        ini = None
    return option or os.environ.get("API_BASE_URL") or ini or None


def _chosen_build() -> Build:
    raw = os.environ.get("SHOP_BUILD")
    if raw is None:
        return Build()
    if not raw.isdigit() or int(raw) >= len(BUILDS):
        last = len(BUILDS) - 1
        raise pytest.UsageError(f"SHOP_BUILD must be a build number from 0 to {last}, not {raw!r}")
    return BUILDS[int(raw)]
