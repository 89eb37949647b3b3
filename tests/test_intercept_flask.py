"""Flask suites record as they are: ``app.test_client()`` (werkzeug's test
client) and httpx's ``WSGITransport`` over a Flask app, with the route the
app's ``url_map`` matched. Real inner pytest sessions, a real Flask app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from testmem.memory.query import History
from testmem.memory.store import Store

pytest_plugins = ["pytester"]

MEMORY = ("--memory", "--memory-retries=0", "--no-memory-triage", "-p", "no:randomly")

SUITE = """
import httpx
import pytest
from flask import Flask, Response, jsonify, redirect, request

app = Flask(__name__)


@app.get("/users/<int:user_id>")
def user(user_id):
    return jsonify(id=user_id, name="joe")


@app.post("/profiles/<name>/notes")
def note(name):
    return jsonify(name=name, note=request.get_json()["note"]), 201


@app.get("/old/<slug>")
def old(slug):
    return redirect(f"/profiles/{slug}")


@app.get("/profiles/<slug>")
def profile(slug):
    return jsonify(slug=slug)


@app.get("/lines")
def lines():
    return Response((f"line {i}\\n" for i in range(3)), mimetype="text/plain")


@pytest.fixture
def client():
    return app.test_client()


def test_get(client):
    assert client.get("/users/7").get_json() == {"id": 7, "name": "joe"}


def test_post_json(client):
    answer = client.post("/profiles/ross/notes", json={"note": "hi"})
    assert answer.status_code == 201 and answer.get_json()["note"] == "hi"


def test_redirect_followed(client):
    assert client.get("/old/ross", follow_redirects=True).get_json() == {"slug": "ross"}


def test_streamed(client):
    assert client.get("/lines").get_data() == b"line 0\\nline 1\\nline 2\\n"


def test_not_found(client):
    assert client.get("/nowhere/3").status_code == 404


def test_wsgi_transport():
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://app") as c:
        assert c.get("/users/12").json()["id"] == 12
"""


def _recorded(store: Path) -> dict[str, list[dict[str, Any]]]:
    rows = History(Store.open(store)).sql("SELECT * FROM exchanges ORDER BY occurred_at").dicts()
    by_test: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_test.setdefault(row["nodeid"].rpartition("::")[2], []).append(row)
    return by_test


def test_a_flask_suite_is_recorded_with_the_apps_url_rules(pytester, store_dir):
    pytester.makepyfile(test_flask=SUITE)
    result = pytester.runpytest(*MEMORY, f"--memory-dir={store_dir}")
    result.assert_outcomes(passed=6)
    recorded = _recorded(store_dir)

    seen = {t: [(x["method"], x["route"], x["status"]) for x in xs] for t, xs in recorded.items()}
    assert seen == {
        "test_get": [("GET", "/users/{user_id}", 200)],
        "test_post_json": [("POST", "/profiles/{name}/notes", 201)],
        "test_redirect_followed": [("GET", "/old/{slug}", 302), ("GET", "/profiles/{slug}", 200)],
        "test_streamed": [("GET", "/lines", 200)],
        "test_not_found": [("GET", "/nowhere/{id}", 404)],  # no rule: the pattern's guess
        "test_wsgi_transport": [("GET", "/users/{user_id}", 200)],
    }
    routed = [x for t in ("test_get", "test_wsgi_transport") for x in recorded[t]]
    assert {x["route_source"] for x in routed} == {"framework"}
    [post] = recorded["test_post_json"]
    assert json.loads(post["request_body"]) == {"note": "hi"}
    assert json.loads(post["response_body"]) == {"name": "ross", "note": "hi"}
    assert post["url"] == "http://localhost/profiles/ross/notes"
    [streamed] = recorded["test_streamed"]
    assert streamed["response_body"] == "line 0\nline 1\nline 2\n"


def test_without_memory_the_flask_suite_runs_the_same(pytester):
    pytester.makepyfile(test_flask=SUITE)
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=6)
