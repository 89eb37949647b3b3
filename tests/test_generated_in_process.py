"""Generated tests run where they were generated: in a suite that serves its
Starlette app in-process through its own `client` fixture (no live server, no
API URL), they use that fixture and pass in the suite's normal run."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from runs import record

from testmem.agents.cli import cli

APP = """
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def widget(request):
    found = {"id": int(request.path_params["id"]), "name": "bolt"}
    if os.environ.get("WIDGET_BUILD") == "2":
        found["colour"] = "red"
    return JSONResponse(found)


app = Starlette(routes=[Route("/widgets/{id:int}", widget)])
"""

CONFTEST = """
import pytest
from starlette.testclient import TestClient

from app import app
from testmem.memory import RecordingTransport


@pytest.fixture
def client():
    with TestClient(app) as client:
        # Recorded the way the README shows for a client testmem does not make.
        client._transport = RecordingTransport(client._transport)
        yield client
"""

SUITE = """
def test_widget(client):
    response = client.get("/widgets/7")
    assert response.status_code == 200
    assert response.json()["name"] == "bolt"
"""


@pytest.fixture
def suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "suite").mkdir()
    for name, text in [("app.py", APP), ("conftest.py", CONFTEST), ("test_widgets.py", SUITE)]:
        (tmp_path / "suite" / name).write_text(text)
    record(tmp_path, None, "v1", {"WIDGET_BUILD": "1"})
    record(tmp_path, None, "v2", {"WIDGET_BUILD": "2"})
    monkeypatch.setenv("WIDGET_BUILD", "2")
    return tmp_path


def generate(root: Path, *options: str) -> list[dict[str, object]]:
    out = root / "suite" / "generated"
    result = CliRunner().invoke(
        cli, ["--dir", str(root / "store"), "generate", "--out", str(out), "--json", *options]
    )
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))


def normal_run(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "suite", "-q", "-p", "no:randomly", "-rA"],
        cwd=root, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "WIDGET_BUILD": "2"},
    )  # fmt: skip


def test_generated_tests_use_the_suites_client_and_pass_in_its_normal_run(suite: Path) -> None:
    (generated,) = generate(suite)
    assert generated["fields"] == "colour", generated["reason"]
    path = Path(str(generated["path"]))
    function = next(
        n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)
    )
    assert [a.arg for a in function.args.args] == ["client"]
    done = normal_run(suite)
    assert done.returncode == 0, done.stdout
    assert "PASSED suite/generated/test_get_widgets_id_colour.py::" in done.stdout
    assert "2 passed" in done.stdout


def test_a_named_client_fixture_wins_and_an_unknown_one_keeps_nothing(suite: Path) -> None:
    (generated,) = generate(suite, "--client-fixture", "no_such_fixture")
    assert generated["path"] is None
    assert "through fixture 'no_such_fixture'" in str(generated["reason"])
    assert not (suite / "suite" / "generated").exists()


def test_a_client_fixture_that_is_no_name_is_a_usage_error(suite: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--dir", str(suite / "store"), "generate", "--client-fixture", "client;x"]
    )
    assert result.exit_code == 2
    assert "not a Python identifier" in result.output
    assert "Traceback" not in result.output


def test_the_client_fixture_named_in_tool_testmem_wins(
    suite: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (suite / "pyproject.toml").write_text('[tool.testmem]\nclient_fixture = "no_such_fixture"\n')
    monkeypatch.chdir(suite)
    (generated,) = generate(suite)
    assert generated["path"] is None
    assert "through fixture 'no_such_fixture'" in str(generated["reason"])
