"""Every attempt in JUnit XML, as Maven Surefire writes reruns (memory/surefire.py):
pytest's --junitxml during the run, and `testmem export junit` from the log."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from testmem.agents.cli import cli
from testmem.memory.junit import parse_junit
from testmem.memory.surefire import junit_names

SUITE = """
import pathlib

def test_flaky(api_client):
    first = not pathlib.Path("attempted").exists()
    pathlib.Path("attempted").touch()
    assert api_client.get("/down" if first else "/up").status_code == 200

def test_broken(api_client):
    assert api_client.get("/down").status_code == 200

def test_fine():
    pass
"""

# The shape of surefire-test-report-3.0.xsd: <testcase>'s children in their
# sequence order, with how many of each, and the attributes each must have.
TESTCASE_CHILDREN = [
    ("failure", None),
    ("rerunFailure", None),
    ("flakyFailure", None),
    ("skipped", 1),
    ("error", 1),
    ("rerunError", None),
    ("flakyError", None),
    ("system-out", 1),
    ("system-err", 1),
]
ATTEMPTS = {"rerunFailure", "flakyFailure", "rerunError", "flakyError"}
TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]{0,3})?")


def assert_surefire_shape(document: ET.Element) -> None:
    suites = [document] if document.tag == "testsuite" else list(document)
    for suite in suites:
        assert suite.tag == "testsuite"
        assert {"name", "tests", "errors", "skipped", "failures"} <= set(suite.attrib)
        assert TIME.fullmatch(suite.get("time", ""))
        for case in suite.iter("testcase"):
            assert_testcase_shape(case)


def assert_testcase_shape(case: ET.Element) -> None:
    assert "name" in case.attrib and TIME.fullmatch(case.attrib["time"])
    order = [tag for tag, _ in TESTCASE_CHILDREN]
    tags = [child.tag for child in case if child.tag != "properties"]  # pytest's addition
    assert all(tag in order for tag in tags), tags
    assert tags == sorted(tags, key=order.index), f"out of schema order: {tags}"
    for tag, most in TESTCASE_CHILDREN:
        assert most is None or tags.count(tag) <= most, tags
    for child in case:
        if child.tag in ATTEMPTS | {"failure", "error"}:
            assert "type" in child.attrib, child.tag
        if child.tag in ATTEMPTS:
            assert child[0].tag == "stackTrace"
            assert {c.tag for c in child} <= {"stackTrace", "system-out", "system-err"}


@pytest.fixture
def recorded(pytester: pytest.Pytester, stub_api, monkeypatch) -> tuple[pytest.RunResult, Path]:
    stub_api.answer("/down", 503, b"busy", Retry_After="0")
    stub_api.answer("/up", 200, b"{}")
    pytester.makepyfile(test_api=SUITE)
    result = pytester.runpytest_subprocess(
        "--memory",
        f"--memory-dir={pytester.path / 'store'}",
        f"--api-base-url={stub_api.url}",
        "--no-memory-triage",
        "--memory-retries=2",
        "--junitxml=junit.xml",
        "-p",
        "no:randomly",
    )
    monkeypatch.chdir(pytester.path)
    return result, pytester.path / "junit.xml"


def cases(document: ET.Element) -> dict[str, ET.Element]:
    return {case.attrib["name"]: case for case in document.iter("testcase")}


def test_junitxml_keeps_the_failed_attempt_of_a_test_rescued_by_retry(recorded):
    result, path = recorded
    assert result.parseoutcomes() == {"passed": 2, "failed": 1, "rerun": 3}
    document = ET.parse(path).getroot()

    flaky = cases(document)["test_flaky"]

    [attempt] = flaky.findall("flakyFailure")
    assert attempt.get("type") == "AssertionError"
    assert "503" in attempt.get("message", "")
    assert "api_client.get" in attempt.findtext("stackTrace", "")
    assert flaky.find("failure") is None


def test_junitxml_keeps_every_attempt_of_a_test_that_always_failed(recorded):
    document = ET.parse(recorded[1]).getroot()

    broken = cases(document)["test_broken"]

    assert [c.tag for c in broken][:3] == ["failure", "rerunFailure", "rerunFailure"]
    assert all("503" in c.get("message", "") for c in broken.findall("rerunFailure"))


def test_junitxml_has_one_testcase_per_test_in_the_surefire_shape(recorded):
    document = ET.parse(recorded[1]).getroot()

    assert sorted(c.attrib["name"] for c in document.iter("testcase")) == [
        "test_broken",
        "test_fine",
        "test_flaky",
    ]
    [suite] = document
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    assert_surefire_shape(document)


def test_junitxml_with_attempts_still_reads_as_pytest_junit(recorded):
    run = parse_junit(recorded[1])

    assert run.tests == 3
    assert run.failures == 1


def test_export_writes_the_same_attempts_from_the_log(recorded, tmp_path):
    out = tmp_path / "reports" / "exported.xml"
    result = CliRunner().invoke(cli, ["--dir", "store", "export", "junit", "--out", str(out)])
    assert result.exit_code == 0, result.output

    exported, written = ET.parse(out).getroot(), ET.parse(recorded[1]).getroot()

    assert_surefire_shape(exported)
    for name, case in cases(written).items():
        mine = cases(exported)[name]
        assert [c.tag for c in mine] == [c.tag for c in case if c.tag.startswith(("f", "r"))]
        assert mine.get("classname") == case.get("classname")
    assert parse_junit(out).failures == 1


def test_export_without_a_store_is_one_clean_error(tmp_path):
    result = CliRunner().invoke(cli, ["--dir", str(tmp_path), "export", "junit"])

    assert result.exit_code == 2
    assert "no testmem store" in result.output


@pytest.mark.parametrize(
    ("nodeid", "names"),
    [
        ("tests/test_a.py::test_b", ("tests.test_a", "test_b")),
        ("test_a.py::TestB::test_c[1-x::y]", ("test_a.TestB", "test_c[1-x::y]")),
    ],
)
def test_junit_names_are_pytests(nodeid, names):
    from _pytest.junitxml import mangle_test_address

    mangled = mangle_test_address(nodeid)
    assert junit_names(nodeid) == names == (".".join(mangled[:-1]), mangled[-1])
