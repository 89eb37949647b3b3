"""Which fixture a suite's tests make their requests through.

Generated tests must reach the API the way the suite's own tests do: through
testmem's ``api_client`` for a live server, or through the suite's client
fixture (a Starlette ``TestClient``, an httpx client over ``ASGITransport``).
The recorded exchanges tell: when every exchange of a route was made by one
fixture (``HttpExchanged.fixture``), or every test that made them called
``NAME.get(...)`` on the same parameter ``NAME``, that fixture is the client.
"""

from __future__ import annotations

import ast
from pathlib import Path

from testmem.agents.source import DEFAULT_FIXTURE, is_identifier
from testmem.memory.query import History

_REQUESTS = frozenset({"get", "post", "put", "patch", "delete", "head", "options", "request"})


def client_fixture(history: History, route: str, method: str) -> str:
    """The client fixture of the tests that called ``method route``; ``api_client``
    when they disagree or nothing says."""
    # `*`, not a column list: logs older than HttpExchanged.fixture lack it
    exchanges = history.sql(
        """SELECT * EXCLUDE (request_headers, request_body, response_headers, response_body)
           FROM exchanges WHERE route = ? AND method = ?""",
        [route, method],
    ).dicts()
    named = {x.get("fixture") for x in exchanges}  # absent in logs older than the field
    if len(named) == 1 and (name := named.pop()) and is_identifier(str(name)):
        return str(name)
    tests = {(x["run_id"], x["nodeid"]) for x in exchanges if x.get("phase") in (None, "call")}
    found = {_client_parameter(history, run_id, nodeid) for run_id, nodeid in tests}
    if len(found) == 1 and (name := found.pop()):
        return name
    return DEFAULT_FIXTURE


def _client_parameter(history: History, run_id: str, nodeid: str | None) -> str | None:
    """The parameter of the recorded test that it calls ``.get(...)`` and the like on."""
    relpath, _, rest = str(nodeid or "").partition("::")
    source = _test_source(history, run_id, relpath)
    if source is None:
        return None
    name = rest.split("::")[-1].split("[", 1)[0]
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return _called_parameter(node)
    return None


def _called_parameter(function: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    parameters = {a.arg for a in function.args.args}
    receivers = {
        node.func.value.id
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _REQUESTS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in parameters
    }
    return receivers.pop() if len(receivers) == 1 else None


def _test_source(history: History, run_id: str, relpath: str) -> str | None:
    rows = history.sql(
        "SELECT rootdir FROM events WHERE type = 'RunStarted' AND run_id = ?", [run_id]
    ).rows
    if not rows or not rows[0][0] or not relpath:
        return None
    try:
        return (Path(rows[0][0]) / relpath).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
