"""A failure names the one exchange that explains it, and says by which rule."""

from __future__ import annotations

from urllib.parse import urlsplit

pytest_plugins = ["pytester"]

MEMORY = ("--memory", "--memory-retries=0", "--no-memory-triage", "-p", "no:randomly")

SUITE = """
import httpx
import pytest


@pytest.fixture
def login(api_base_url):
    httpx.get(api_base_url + "/users/1")


@pytest.fixture
def broken_login(api_base_url):
    httpx.get(api_base_url + "/users/999")
    httpx.get(api_base_url + "/health")
    raise RuntimeError("could not log in")


def test_named(api_base_url, login):
    missing = httpx.get(api_base_url + "/users/999")
    httpx.get(api_base_url + "/users/1/orders")
    assert missing.status_code == 200


def test_error(api_base_url, login):
    httpx.get(api_base_url + "/users/999")
    httpx.get(api_base_url + "/users/1/orders")
    assert False, "the order list is wrong"


def test_last(api_base_url, login):
    httpx.get(api_base_url + "/users/1/orders")
    httpx.get(api_base_url + "/inventory")
    assert False, "stock is off"


def test_setup(broken_login):
    pass


@pytest.fixture
def orders(api_base_url, login):
    return httpx.get(api_base_url + "/users/1/orders")


def test_fixture(orders):
    assert orders.json() == {"orders": "none of these"}
"""


def test_each_failure_links_the_exchange_that_explains_it(pytester, shop, store_dir, read_store):
    pytester.makepyfile(SUITE)
    args = (*MEMORY, f"--memory-dir={store_dir}", f"--api-base-url={shop.url}")
    pytester.runpytest(*args).assert_outcomes(failed=4, errors=1)
    history = read_store(store_dir)
    rows = history.sql(
        "SELECT f.nodeid, f.exchange_rule, x.url, x.phase FROM failures f"
        " JOIN exchanges x ON x.exchange_id = f.exchange_id"
    ).rows
    linked = {n.rpartition("::")[2]: (rule, urlsplit(u).path, p) for n, rule, u, p in rows}
    assert linked == {
        "test_named": ("named", "/users/999", "call"),
        "test_error": ("error", "/users/999", "call"),
        "test_last": ("last", "/inventory", "call"),
        "test_setup": ("setup", "/users/999", "setup"),
        # the body made no request: what its nearest fixture fetched, not the login
        "test_fixture": ("fixture", "/users/1/orders", "setup"),
    }
