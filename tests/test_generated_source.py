"""Generated tests are built from a syntax tree: no key, value or build label
an API or a user hands over can become code in them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile_api import serve_json
from hypothesis import given, settings
from hypothesis import strategies as st
from runs import record

from testmem.agents import generator
from testmem.agents.cli import cli
from testmem.agents.edits import edit_source
from testmem.agents.schema import RENAMED, ApiChange, Snapshot, _add_shape, leaf
from testmem.agents.source import SourceError, is_identifier, module

SUITE = """
def test_widget(api_client):
    response = api_client.get("/widgets/1")
    assert response.status_code == 200
    assert response.json()["id"] == 1
"""


def payloads(marker: Path) -> list[str]:
    command = f"getattr(__import__('os'),'system')('touch {marker}')"
    return [
        f"x\"\"\"''';{command}#",  # the issue's payload
        f'x"""+{command}+"""',  # one that closes the docstring and reopens it
    ]


def generate(root: Path) -> list[dict[str, object]]:
    result = CliRunner().invoke(
        cli,
        ["--dir", str(root / "store"), "generate", "--out", str(root / "generated"), "--json"],
    )
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))


def literals(source: str) -> set[object]:
    return {n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant)}


@pytest.mark.parametrize("which", [0, 1], ids=["issue-payload", "docstring-breakout"])
def test_a_hostile_key_never_runs_while_its_tests_are_verified(tmp_path: Path, which: int) -> None:
    marker = tmp_path / "pwned"
    key = payloads(marker)[which]
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_widgets.py").write_text(SUITE)
    with serve_json({"/widgets/1": {"id": 1, "name": "bolt"}}) as api:
        record(tmp_path, api.url, "v1")
        record(tmp_path, api.url, "v2")
        api.answers["/widgets/1"] = {"id": 1, "name": "bolt", key: None}
        record(tmp_path, api.url, "v3")
        record(tmp_path, api.url, "v4")
        results = generate(tmp_path)
    assert not marker.exists()
    written = [Path(str(r["path"])) for r in results if r["path"]]
    assert written, [
        r["reason"] for r in results
    ]  # the field got its test, its key a string literal
    assert key in literals(written[0].read_text())


def test_a_hostile_build_label_is_only_a_literal(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    label = payloads(marker)[1]
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_widgets.py").write_text(SUITE)
    with serve_json({"/widgets/1": {"id": 1}}) as api:
        record(tmp_path, api.url, "v1")
        api.answers["/widgets/1"] = {"id": 1, "size": 3}
        record(tmp_path, api.url, label)
        results = generate(tmp_path)
    assert not marker.exists()
    written = [Path(str(r["path"])) for r in results if r["path"]]
    assert written, [r["reason"] for r in results]
    docstring = ast.get_docstring(ast.parse(written[0].read_text()))
    assert docstring is not None and label in docstring


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1), json_values, min_size=1, max_size=5), st.text())
def test_any_answer_gives_a_module_that_parses_and_holds_it_only_as_literals(
    answer: dict[str, object], label: str
) -> None:
    latest = Snapshot("run", label, datetime.now(UTC), statuses={200}, urls=["http://h/x/1"])
    _add_shape(latest, answer, "")
    fields = sorted(latest.types)
    cases = generator.test_cases("/x/{id}", latest, fields) + generator.test_cases(
        "/x/{id}", latest, None
    )
    source = module(f"build {label}", cases)
    tree = ast.parse(source)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert names <= CODE_NAMES, names - CODE_NAMES
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    # Every field is checked but those the key path cannot address (a list in a
    # list, or a key that itself holds "[]"); those still give only literals.
    checked = {leaf(p) for p in fields if not p.endswith("[]") and p.count("[]") <= 1}
    checked -= {leaf(p) for p in fields if any("[]" in k.removesuffix("[]") for k in p.split("."))}
    assert checked - {""} <= strings
    assert all(is_identifier(f.name) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef))


CODE_NAMES = {
    "api_client", "httpx", "response", "body", "item", "isinstance", "datetime", "re",
    "str", "int", "float", "bool", "dict", "list", "type", "annotations", "None",
}  # fmt: skip


@pytest.mark.parametrize("fixture", ["client; import os", "class", "x-y", "", "\uff43lient"])
def test_a_client_fixture_that_is_no_identifier_is_refused(fixture: str) -> None:
    latest = Snapshot("run", "", datetime.now(UTC), statuses={200}, urls=["http://h/x"])
    _add_shape(latest, {"id": 1}, "")
    with pytest.raises(SourceError):
        module("doc", generator.test_cases("/x", latest, ["id"]), fixture)


HEALED = """
def test_widget(api_client):
    body = api_client.get("/widgets/1").json()
    assert body["name"] == "bolt"
"""


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1).filter(lambda k: "." not in k and "[]" not in k))
def test_a_heal_writes_any_renamed_key_as_a_literal_of_it(new_key: str) -> None:
    change = ApiChange(RENAMED, "/widgets/{id}", "GET", "r2", "v2", 2, "name", new_key)
    edited = edit_source(HEALED, ["test_widget"], change)
    assert edited.edits == 1
    strings = {n.value for n in ast.walk(ast.parse(edited.source)) if isinstance(n, ast.Constant)}
    assert new_key in strings and "name" not in strings
    assert {n.id for n in ast.walk(ast.parse(edited.source)) if isinstance(n, ast.Name)} == {
        "api_client", "body"
    }  # fmt: skip


# GET /repos/{owner}/{repo} as GitHub answered it, from octokit/fixtures (MIT),
# scenarios/api.github.com/get-repository (some of its URL fields left out).
GITHUB_REPOSITORY = json.loads(
    (Path(__file__).parent / "data" / "octokit_get_repository.json").read_text()
)
REPO_SUITE = """
def test_repository(api_client):
    response = api_client.get("/repos/octokit-fixture-org/hello-world")
    assert response.json()["full_name"] == "octokit-fixture-org/hello-world"
"""


def test_a_real_apis_answer_with_hostile_keys_gives_tests_that_pass_and_run_nothing(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "pwned"
    breakout, issue = payloads(marker)[1], payloads(marker)[0]
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_repository.py").write_text(REPO_SUITE)
    path = "/repos/octokit-fixture-org/hello-world"
    with serve_json({path: GITHUB_REPOSITORY}) as api:
        record(tmp_path, api.url, "v1")
        record(tmp_path, api.url, "v2")
        hostile = dict(GITHUB_REPOSITORY, **{issue: None, "topics": [breakout]})
        hostile["owner"] = dict(GITHUB_REPOSITORY["owner"], **{breakout: "{__import__}"})
        api.answers[path] = hostile
        record(tmp_path, api.url, "v3")
        record(tmp_path, api.url, "v4")
        (generated,) = generate(tmp_path)
        assert generated["path"], generated["reason"]
        source = Path(str(generated["path"])).read_text()
        written = str(generated["path"])
        done = subprocess.run(
            [sys.executable, "-m", "pytest", written, "-q", "--api-base-url", api.url],
            cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    assert not marker.exists()
    assert {issue, breakout, "topics"} <= literals(source)
    assert done.returncode == 0, done.stdout
