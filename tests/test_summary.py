"""The one-run Markdown summary (memory/summary.py): `testmem summary` and
$GITHUB_STEP_SUMMARY, read back through a real CommonMark parser."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import StubApi
from markdown_it import MarkdownIt

from testmem.agents.cli import cli
from testmem.memory.summary import MAX_ROWS, md

SUITE = """
import pathlib
import pytest

def test_flaky(api_client):
    first = not pathlib.Path("attempted").exists()
    pathlib.Path("attempted").touch()
    assert api_client.get("/down" if first else "/up").status_code == 200

def test_broken(api_client):
    assert api_client.get("/down").status_code == 200, "| <script>x</script> **b** [l](http://e)"

def test_fine():
    pass

def test_total():
    assert 2 + 2 == 5, "the cart total is off"
"""


def html(markdown: str) -> ET.Element:
    """As GitHub would render it: CommonMark with tables, raw HTML allowed."""
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    return ET.fromstring(f"<body>{rendered}</body>")


def table_after(document: ET.Element, heading: str) -> list[list[str]]:
    children = list(document)
    texts = ["".join(e.itertext()).strip() for e in children]
    at = next(i for i, text in enumerate(texts) if text.startswith(heading))
    table = next(e for e in children[at:] if e.tag == "table")
    return [["".join(c.itertext()) for c in row] for row in table.iter("tr")]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Iterator[Path]:
    """Two recorded runs with triage (the second meets its incident again),
    each appending to $GITHUB_STEP_SUMMARY; recorded once for this module."""
    root = tmp_path_factory.mktemp("summary")
    (root / "test_api.py").write_text(SUITE)
    stub = StubApi()
    stub.answer("/down", 503, b"busy", Retry_After="0")
    stub.answer("/up", 200, b"{}")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(root / "step-summary.md")}
    args = ["--memory", "--memory-retries=1", "-p", "no:randomly", "-p", "no:cacheprovider"]
    args += [f"--memory-dir={root / 'store'}", f"--api-base-url={stub.url}"]
    try:
        for _ in range(2):
            (root / "attempted").unlink(missing_ok=True)
            subprocess.run([sys.executable, "-m", "pytest", *args], cwd=root, env=env, check=False)
    finally:
        stub.stop()
    yield root


@pytest.fixture
def step_summary(project, monkeypatch) -> Path:
    monkeypatch.chdir(project)
    return project / "step-summary.md"


def test_the_step_summary_gets_each_runs_summary(step_summary):
    text = step_summary.read_text()

    assert text.count("### testmem: run") == 2
    assert len(text) < 65_536


def test_the_summary_names_the_failure_and_its_incident(step_summary):
    last = step_summary.read_text().split("### testmem: run")[-1]

    [header, failed, *_] = table_after(html("### " + last), "Failed")

    assert header == ["test", "outcome", "message", "incident"]
    assert failed[0] == "test_api.py::test_broken"
    assert failed[1] == "failed"
    assert "<script>x</script> **b** [l](http://e)" in failed[2]
    assert failed[3].endswith("(recurring)")


def test_the_summary_shows_the_rescued_retry(step_summary):
    last = step_summary.read_text().split("### testmem: run")[-1]

    rows = table_after(html("### " + last), "Retried")

    assert ["test_api.py::test_flaky", "2", "rescued"] in rows
    assert ["test_api.py::test_broken", "2", "still failed"] in rows


def test_hostile_values_stay_text(step_summary):
    document = html(step_summary.read_text())

    assert not list(document.iter("script"))
    assert not list(document.iter("a"))
    assert not list(document.iter("strong"))
    assert all(len(row) == 4 for row in table_after(document, "Failed"))


def test_the_cli_prints_the_same_summary(step_summary):
    result = CliRunner().invoke(cli, ["--dir", "store", "summary", "--run", "latest"])

    assert result.exit_code == 0, result.output
    assert (
        result.output == "### testmem: run" + step_summary.read_text().split("### testmem: run")[-1]
    )


def test_a_long_list_is_cut_to_fit_a_comment(pytester, monkeypatch):
    pytester.makepyfile(
        "import pytest\n"
        "@pytest.mark.parametrize('n', range(40))\n"
        "def test_many(n):\n    assert n < 0, 'x' * 5000\n"
    )
    store = pytester.path / "store"
    pytester.runpytest("--memory", "--no-memory-triage", f"--memory-dir={store}")

    result = CliRunner().invoke(cli, ["--dir", str(store), "summary"])

    assert result.exit_code == 0, result.output
    rows = table_after(html(result.output), "Failed")
    assert len(rows) == 1 + MAX_ROWS
    assert f"and {40 - MAX_ROWS} more" in result.output
    assert len(result.output) < 65_536


def test_summary_without_a_store_is_one_clean_error(tmp_path):
    result = CliRunner().invoke(cli, ["--dir", str(tmp_path), "summary"])

    assert result.exit_code == 2
    assert "no testmem store" in result.output


@pytest.mark.parametrize(
    "text",
    ["a|b", "`code`", "<img src=x onerror=alert(1)>", "*em* _u_", "line\nbreak", "\\|", "&amp;"],
)
def test_escaped_text_renders_as_itself(text):
    rendered = html(f"| h |\n| --- |\n| {md(text)} |\n")

    [_, [cell]] = [[c for c in row] for row in table_after(rendered, "h")]
    assert cell == text.replace("\n", " ")


def test_the_summary_lists_the_defect_triage_filed(step_summary):
    document = html(step_summary.read_text())

    rows = table_after(document, "Defects filed or updated")

    assert rows[0] == ["defect", "", "incident", "reference", "title"]
    assert any(row[1] in ("filed", "updated") and row[2].startswith("INC-") for row in rows[1:])
