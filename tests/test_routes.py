"""Route templates beyond numbers: from the app's router, an OpenAPI
document and history, listed by ``testmem routes``."""

from __future__ import annotations

import json

from click.testing import CliRunner

from testmem.agents.cli import cli
from testmem.memory.routes import MIN_VALUES, infer_templates

pytest_plugins = ["pytester"]

MEMORY = ("--memory", "--memory-retries=0", "--no-memory-triage", "-p", "no:randomly")

SUITE = """
import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient


async def profile(request):
    return JSONResponse({"name": request.path_params["name"]})


app = Starlette(routes=[Route("/profiles/{name}", profile)])


def wsgi_app(environ, start_response):
    start_response("200 OK", [("content-type", "text/plain")])
    return [b"ok"]


def test_profiles():
    with TestClient(app) as client:
        for name in ("joe", "ross"):
            assert client.get(f"/profiles/{name}").json() == {"name": name}


def test_tags_and_orders():
    with httpx.Client(transport=httpx.WSGITransport(app=wsgi_app), base_url="http://w") as c:
        for slug in ("python", "rust", "go", "zig", "ocaml"):
            c.get(f"/tags/{slug}")
        c.get("/orders/abc-x")
"""

OPENAPI = {"openapi": "3.1.0", "paths": {"/orders/{code}": {"get": {}}}}


def test_routes_are_templated_from_the_router_openapi_and_history(pytester, store_dir):
    pytester.makepyfile(SUITE)
    (pytester.path / "openapi.json").write_text(json.dumps(OPENAPI))
    pytester.makeini("[pytest]\nmemory_openapi = openapi.json\n")
    pytester.runpytest(*MEMORY, f"--memory-dir={store_dir}").assert_outcomes(passed=2)
    result = CliRunner().invoke(cli, ["--dir", str(store_dir), "routes", "--json"])
    assert result.exit_code == 0, result.output
    listed = {(r["template"], r["source"], r["values"]) for r in json.loads(result.output)}
    assert listed == {
        ("/profiles/{name}", "framework", 2),
        ("/tags/{param}", "history", 5),
        ("/orders/{code}", "openapi", 1),
    }


def test_a_template_from_history_stays_as_more_values_come():
    seen = [("GET", f"/profiles/{n}") for n in ("ann", "bob", "cy", "dee", "eve")]
    more = [*seen, ("GET", "/profiles/fay"), ("GET", "/profiles/gus/posts")]
    assert set(infer_templates(seen).values()) == {"/profiles/{param}"}
    assert set(infer_templates(more).values()) == {"/profiles/{param}", "/profiles/{param}/posts"}


def test_too_few_values_or_unlike_resources_stay_literal():
    few = [("GET", f"/profiles/{n}") for n in ("ann", "bob", "cy", "dee")][: MIN_VALUES - 1]
    assert infer_templates(few) == {k: k[1] for k in few}
    api = [("GET", "/api/users"), ("GET", "/api/orders/{id}"), ("GET", "/api/health"),
           ("GET", "/api/stock/{id}/moves"), ("GET", "/api/carts/{id}")]  # fmt: skip
    assert infer_templates(api) == {k: k[1] for k in api}
