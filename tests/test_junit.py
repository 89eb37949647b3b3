"""JUnit XML import, specified with reports from real runners' formats:
pytest's own (written by a real inner session), Maven Surefire, Jest and
gotestsum. What was imported is read back through the DuckDB views."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from testmem.agents.cli import cli
from testmem.memory.junit import JunitError, import_junit, parse_junit
from testmem.memory.query import History
from testmem.memory.store import Store

SUREFIRE = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="com.shop.OrdersIT" time="1.234" tests="3" errors="0" skipped="1" failures="1"
           timestamp="2026-11-20T09:15:00" hostname="build-7">
  <properties><property name="java.version" value="21"/></properties>
  <testcase name="createsOrder" classname="com.shop.OrdersIT" time="0.5"/>
  <testcase name="rejectsEmptyCart" classname="com.shop.OrdersIT" time="0.7">
    <failure message="expected: &lt;400&gt; but was: &lt;500&gt;"
             type="org.opentest4j.AssertionFailedError">
org.opentest4j.AssertionFailedError: expected: &lt;400&gt; but was: &lt;500&gt;
	at com.shop.OrdersIT.rejectsEmptyCart(OrdersIT.java:42)</failure>
  </testcase>
  <testcase name="refunds" classname="com.shop.OrdersIT" time="0"><skipped/></testcase>
</testsuite>
"""

JEST = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="jest tests" tests="2" failures="1" errors="0" time="0.9">
  <testsuite name="users api" errors="0" failures="1" skipped="0"
             timestamp="2026-11-21T10:00:00" time="0.9" tests="2">
    <testcase classname="users api returns a user" name="users api returns a user"
              time="0.4"></testcase>
    <testcase classname="users api logs in" name="users api logs in" time="0.5">
      <failure>Error: expect(received).toBe(expected) token=supersecretvalue123</failure>
    </testcase>
  </testsuite>
</testsuites>
"""

GOTESTSUM = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="3" failures="0" errors="1">
  <testsuite tests="3" failures="0" time="0.020" name="example.com/shop/api"
             timestamp="2026-11-22T08:00:00Z">
    <properties><property name="go.version" value="go1.23.1 linux/amd64"></property></properties>
    <testcase classname="example.com/shop/api" name="TestHealth" time="0.000"></testcase>
    <testcase classname="example.com/shop/api" name="TestSkipMe" time="0.000">
      <skipped message="api_test.go:20: not on CI"></skipped>
    </testcase>
    <testcase classname="example.com/shop/api" name="TestMain" time="0.000">
      <error message="panic: runtime error" type="panic"></error>
    </testcase>
  </testsuite>
</testsuites>
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def outcomes(store: Store) -> dict[str, str]:
    rows = History(store).sql("SELECT nodeid, outcome FROM results").rows
    return dict(rows)


def test_pytest_report_from_a_real_session_becomes_a_run(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        test_shop="""
        import pytest

        def test_ok(): pass
        def test_bad(): assert 404 == 200
        @pytest.mark.skip(reason="later")
        def test_later(): pass
        @pytest.mark.xfail
        def test_known(): assert False
        """
    )
    xml = tmp_path / "pytest.xml"
    pytester.runpytest(f"--junitxml={xml}").assert_outcomes(
        passed=1, failed=1, skipped=1, xfailed=1
    )
    store = Store(tmp_path / "store")
    result = import_junit(store, [xml])
    assert (result.runs, result.tests, result.failures) == (1, 4, 1)
    assert outcomes(store) == {
        "test_shop::test_ok": "passed",
        "test_shop::test_bad": "failed",
        "test_shop::test_later": "skipped",
        "test_shop::test_known": "xfailed",
    }
    (run,) = History(store).sql("SELECT passed, failed, skipped, xfailed FROM runs").rows
    assert run == (1, 1, 1, 1)


def test_surefire_failure_keeps_type_message_and_trace(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    import_junit(store, [write(tmp_path, "TEST-OrdersIT.xml", SUREFIRE)])
    (failure,) = (
        History(store).sql("SELECT nodeid, exception_type, message, traceback FROM failures").rows
    )
    assert failure[:3] == (
        "com.shop.OrdersIT::rejectsEmptyCart",
        "org.opentest4j.AssertionFailedError",
        "expected: <400> but was: <500>",
    )
    assert "OrdersIT.java:42" in failure[3]


def test_suite_timestamp_and_case_times_place_the_results(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    import_junit(store, [write(tmp_path, "TEST-OrdersIT.xml", SUREFIRE)])
    times = (
        History(store)
        .sql("SELECT strftime(occurred_at, '%H:%M:%S.%f') FROM results ORDER BY occurred_at")
        .rows
    )
    assert [t for (t,) in times] == ["09:15:00.000000", "09:15:00.500000", "09:15:01.200000"]


def test_jest_and_gotestsum_outcomes(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    import_junit(store, [write(tmp_path, "jest.xml", JEST), write(tmp_path, "go.xml", GOTESTSUM)])
    assert outcomes(store) == {
        "users api returns a user::users api returns a user": "passed",
        "users api logs in::users api logs in": "failed",
        "example.com/shop/api::TestHealth": "passed",
        "example.com/shop/api::TestSkipMe": "skipped",
        "example.com/shop/api::TestMain": "error",
    }
    assert History(store).sql("SELECT count(*) FROM runs").rows == [(2,)]


def test_failure_text_is_redacted_before_it_is_stored(tmp_path: Path) -> None:
    run = parse_junit(write(tmp_path, "jest.xml", JEST))
    assert "supersecretvalue123" not in str(run.failure_rows)
    store = Store(tmp_path / "store")
    import_junit(store, [tmp_path / "jest.xml"])
    stored = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*.parquet"))
    assert b"supersecretvalue123" not in stored


def test_importing_the_same_file_twice_adds_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    path = write(tmp_path, "go.xml", GOTESTSUM)
    first = import_junit(store, [path])
    version = store.events.version()
    second = import_junit(store, [path, write(tmp_path, "copy.xml", GOTESTSUM)])
    assert (first.runs, second.runs, second.skipped) == (1, 0, 2)
    assert store.events.version() == version
    # 3 results, 1 failure, the run's start and finish
    assert History(store).sql("SELECT count(*) FROM events").rows == [(6,)]


def test_malformed_xml_names_file_and_line_and_writes_nothing(tmp_path: Path) -> None:
    good = write(tmp_path, "go.xml", GOTESTSUM)
    bad = write(tmp_path, "bad.xml", "<testsuite>\n  <testcase name='x'>\n</testsuite>\n")
    store = Store(tmp_path / "store")
    with pytest.raises(JunitError, match=r"bad\.xml: malformed XML at line 3"):
        import_junit(store, [good, bad])
    assert not store.events.exists()


def test_a_file_that_is_not_junit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(JunitError, match="not a JUnit report"):
        parse_junit(write(tmp_path, "pom.xml", "<project><testcase/></project>"))


def test_import_command_reports_counts_and_is_idempotent(tmp_path: Path) -> None:
    path = write(tmp_path, "TEST-OrdersIT.xml", SUREFIRE)
    args = ["--dir", str(tmp_path / "store"), "import", "junit", str(path)]
    first, second = CliRunner().invoke(cli, args), CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "imported 1 runs (3 test cases, 1 failures)" in first.output
    assert "skipped 1 already imported" in second.output


def test_import_command_error_is_one_line_with_exit_2(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.xml", "<testsuites><testsuite>")
    result = CliRunner().invoke(cli, ["--dir", str(tmp_path / "s"), "import", "junit", str(bad)])
    assert result.exit_code == 2
    assert result.output.startswith("testmem: error: ")
    assert "bad.xml: malformed XML at line 1" in result.output
    assert len(result.output.strip().splitlines()) == 1
