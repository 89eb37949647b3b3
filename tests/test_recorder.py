"""The recorder, specified by real inner pytest sessions against the example API.

Each test runs a small suite with ``pytest --memory`` (pytester), then reads
what was recorded back through the DuckDB views, as any user of the store would.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from testmem.examples.shop_api import ShopServer
from testmem.memory.events import RunStarted
from testmem.memory.query import History
from testmem.memory.store import Store

# Recording only: the agents' in-run retry and post-run triage are specified elsewhere.
MEMORY = ("--memory", "--memory-retries=0", "--no-memory-triage")

pytest_plugins = ["pytester"]

OUTCOMES_SUITE = """
import httpx
import pytest

from testmem.memory import RecordingTransport


@pytest.fixture
def broken_setup():
    raise RuntimeError("setup broke")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")


def test_passes(api_client):
    assert api_client.get("/users/1").status_code == 200


def test_fails(api_client):
    api_client.get("/health")
    response = api_client.get("/users/2")
    assert response.status_code == 404


def test_setup_error(broken_setup):
    pass


def test_teardown_error(broken_teardown):
    pass


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


@pytest.mark.xfail(reason="known")
def test_xfailed():
    assert False


@pytest.mark.xfail(reason="known")
def test_xpassed():
    pass


@pytest.mark.slow
@pytest.mark.parametrize("user_id", [1, 3])
def test_param(api_client, user_id):
    assert api_client.get(f"/users/{user_id}").json()["id"] == user_id


def test_refused():
    with httpx.Client(transport=RecordingTransport()) as client:
        client.get("REFUSED/users/7")
"""

EXPECTED_OUTCOMES = {
    "test_passes": ("passed", "call"),
    "test_fails": ("failed", "call"),
    "test_setup_error": ("error", "setup"),
    "test_teardown_error": ("error", "teardown"),
    "test_skipped": ("skipped", "setup"),
    "test_xfailed": ("xfailed", "call"),
    "test_xpassed": ("xpassed", "call"),
    "test_param[1]": ("passed", "call"),
    "test_param[3]": ("passed", "call"),
    "test_refused": ("failed", "call"),
}


def run_inner(suite_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """An inner pytest session in its own process (isolated, as a CI job is)."""
    command = [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, *args], cwd=suite_dir, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def outcomes_dir(tmp_path_factory, refused_url: str) -> Path:
    suite_dir = tmp_path_factory.mktemp("outcomes")
    (suite_dir / "test_outcomes.py").write_text(OUTCOMES_SUITE.replace("REFUSED", refused_url))
    return suite_dir


@pytest.fixture(scope="module")
def recorded(
    outcomes_dir: Path, shop: ShopServer
) -> tuple[subprocess.CompletedProcess[str], History]:
    """The outcomes suite, recorded once: (the inner run, history of its store)."""
    store = outcomes_dir / "store"
    done = run_inner(
        outcomes_dir, "-rA", *MEMORY, f"--memory-dir={store}", f"--api-base-url={shop.url}"
    )
    return done, History(Store.open(store))


def by_test(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["nodeid"].split("::")[-1]: row for row in rows}


def test_results_record_every_outcome_and_the_phase_that_decided_it(recorded):
    _, history = recorded
    results = by_test(history.sql("SELECT * FROM results").dicts())
    assert {name: (r["outcome"], r["phase"]) for name, r in results.items()} == EXPECTED_OUTCOMES


def test_results_record_file_function_params_and_markers(recorded):
    _, history = recorded
    param = by_test(history.sql("SELECT * FROM results").dicts())["test_param[3]"]
    assert param["file"] == "test_outcomes.py"
    assert param["function"] == "test_param"
    assert json.loads(param["params"]) == {"user_id": "3"}
    assert {"slow", "parametrize"} <= set(param["markers"])


def test_exchanges_record_route_status_headers_bodies_and_the_test(recorded, shop):
    _, history = recorded
    rows = history.sql("SELECT * FROM exchanges WHERE nodeid LIKE '%test_param[3]'").dicts()
    assert len(rows) == 1
    exchange = rows[0]
    assert exchange["method"] == "GET"
    assert exchange["url"] == f"{shop.url}/users/3"
    assert exchange["route"] == "/users/{id}"
    assert exchange["status"] == 200
    assert exchange["phase"] == "call"
    assert json.loads(exchange["response_headers"])["content-type"] == "application/json"
    assert json.loads(exchange["request_headers"])["host"] == shop.url.removeprefix("http://")
    assert json.loads(exchange["response_body"])["id"] == 3
    assert exchange["error"] is None


def test_a_refused_connection_is_an_exchange_with_a_transport_error(recorded):
    _, history = recorded
    rows = history.sql("SELECT * FROM exchanges WHERE nodeid LIKE '%test_refused'").dicts()
    assert len(rows) == 1
    assert rows[0]["status"] is None
    assert rows[0]["route"] == "/users/{id}"
    assert rows[0]["error"].startswith("ConnectError: ")


def test_failures_record_type_message_assertion_location_and_exchanges(recorded):
    _, history = recorded
    failure = by_test(history.sql("SELECT * FROM failures").dicts())["test_fails"]
    made = history.sql(
        "SELECT exchange_id FROM exchanges WHERE nodeid LIKE '%::test_fails' ORDER BY occurred_at"
    ).rows
    assert failure["exception_type"] == "AssertionError"
    assert failure["assertion"] == "assert 200 == 404"
    assert "where 200 = <Response [200 OK]>.status_code" in failure["message"]
    assert failure["crash_path"].endswith("test_outcomes.py")
    lines = OUTCOMES_SUITE.splitlines()
    assert failure["crash_line"] == lines.index("    assert response.status_code == 404") + 1
    assert failure["exchange_ids"] == [row[0] for row in made]
    assert len(made) == 2


def test_failures_record_setup_and_teardown_errors_with_their_phase(recorded):
    _, history = recorded
    failures = by_test(history.sql("SELECT * FROM failures").dicts())
    assert failures["test_setup_error"]["phase"] == "setup"
    assert failures["test_teardown_error"]["phase"] == "teardown"
    assert failures["test_teardown_error"]["exception_type"] == "RuntimeError"
    assert failures["test_teardown_error"]["message"] == "teardown broke"


def test_run_finished_counts_outcomes_and_keeps_the_exit_status(recorded):
    result, history = recorded
    run = history.sql("SELECT * FROM runs").dicts()
    assert len(run) == 1
    counted = Counter(o for o, _ in EXPECTED_OUTCOMES.values())
    assert {k: run[0][k] for k in ("passed", "failed", "skipped", "xfailed", "xpassed")} == {
        k: counted[k] for k in ("passed", "failed", "skipped", "xfailed", "xpassed")
    }
    assert run[0]["errors"] == counted["error"]
    assert run[0]["tests"] == len(EXPECTED_OUTCOMES)
    assert run[0]["exit_status"] == result.returncode == pytest.ExitCode.TESTS_FAILED


def test_run_started_records_build_label_versions_and_args(pytester, store_dir, read_store):
    pytester.makepyfile("def test_ok(): pass")
    pytester.runpytest(*MEMORY, f"--memory-dir={store_dir}", "--memory-build=v9-label")
    run = read_store(store_dir).sql("SELECT * FROM runs").dicts()[0]
    assert run["build"] == "v9-label"
    assert run["pytest_version"] == pytest.__version__
    assert f"--memory-dir={store_dir}" in run["args"]


def test_without_a_label_a_run_is_labelled_with_gits_commit_and_branch(
    pytester, store_dir, read_store, monkeypatch
):
    from testmem.memory.recorder import _BRANCH_VARS, _BUILD_VARS

    for name in (*_BUILD_VARS, *_BRANCH_VARS):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile("def test_ok(): pass")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for command in (["init", "-q", "-b", "feature-x"], ["add", "."], ["commit", "-qm", "one"]):
        subprocess.run([*git, *command], cwd=pytester.path, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=pytester.path, capture_output=True, text=True
    ).stdout.strip()
    pytester.runpytest_subprocess(*MEMORY, f"--memory-dir={store_dir}")
    subprocess.run(["git", "checkout", "-q", "--detach"], cwd=pytester.path, check=True)
    pytester.runpytest_subprocess(*MEMORY, f"--memory-dir={store_dir}")
    runs = read_store(store_dir).sql("SELECT build, branch FROM runs ORDER BY started_at").rows
    assert runs == [(commit, "feature-x"), (commit, "")]  # a detached HEAD has no branch


def test_the_test_process_never_loads_the_store_libraries(pytester, store_dir):
    """The store process writes and reads history: the run's own process
    imports neither pyarrow, deltalake nor DuckDB, even to advise a retry."""
    pytester.makepyfile("def test_ok(): pass\ndef test_fails(): assert 1 == 2\n")
    pytester.makeconftest(
        """
        import sys, pytest

        @pytest.hookimpl(trylast=True)
        def pytest_unconfigure(config):
            loaded = [m for m in ("pyarrow", "deltalake", "duckdb") if m in sys.modules]
            print("LOADED:", ",".join(loaded) or "none")
            print("ADVISED:", "testmem.agents.analyzer" in sys.modules)
        """
    )
    args = ("--memory", "--no-memory-triage", f"--memory-dir={store_dir}", "-s")
    first = pytester.runpytest_subprocess(*args)  # the second run has history to read
    second = pytester.runpytest_subprocess(*args)
    for result in (first, second):
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["LOADED: none", "ADVISED: True"])


def test_without_a_terminal_the_run_is_still_recorded_whole_and_triaged(
    pytester, store_dir, read_store
):
    """The last commit is awaited by the terminal summary, or, with no
    terminal to print one, when pytest unconfigures: either way post-run
    triage then sees the whole run."""
    pytester.makepyfile("def test_ok(): pass\ndef test_fails(): assert 1 == 2\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:terminal", "--memory", "--memory-retries=0", f"--memory-dir={store_dir}"
    )
    assert result.ret == 1
    history = read_store(store_dir)
    assert history.sql("SELECT passed, failed FROM runs").rows == [(1, 1)]
    decided = history.sql("SELECT nodeid FROM facts WHERE type = 'DecisionMade'").rows
    assert decided == [
        ("test_without_a_terminal_the_run_is_still_recorded_whole_and_triaged.py::test_fails",)
    ]


def test_recording_changes_no_outcome_and_no_exit_status(recorded, outcomes_dir, shop):
    with_memory, _ = recorded
    plain = run_inner(outcomes_dir, "-rA", f"--api-base-url={shop.url}")
    assert with_memory.returncode == plain.returncode == pytest.ExitCode.TESTS_FAILED
    assert _outcome_lines(with_memory.stdout) == _outcome_lines(plain.stdout)


def _outcome_lines(stdout: str) -> list[str]:
    """The -rA summary (one outcome per test) and the final counts line, timing stripped."""
    lines = stdout.splitlines()
    summary = [
        line.split(" - ")[0]
        for line in lines
        if line.split(" ")[0] in ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")
    ]
    counts = lines[-1].rsplit(" in ", 1)[0]
    return [*sorted(summary), counts]


def test_an_unwritable_store_gives_one_warning_and_the_runs_own_exit_status(pytester, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    pytester.makepyfile("def test_ok(): pass\ndef test_bad(): assert False")
    result = pytester.runpytest(*MEMORY, f"--memory-dir={blocker / 'store'}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    warnings = [line for line in result.outlines + result.errlines if line.startswith("testmem")]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("testmem: WARNING")
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_an_unwritable_store_does_not_change_the_exit_status_of_a_green_run(pytester, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest(*MEMORY, f"--memory-dir={blocker / 'store'}")
    assert result.ret == pytest.ExitCode.OK


XDIST_SUITE = """
import pytest

@pytest.mark.parametrize("user_id", range(1, 7))
def test_user(api_client, user_id):
    assert api_client.get(f"/users/{user_id}").status_code == 200
    assert api_client.get(f"/users/{user_id}/orders").status_code == 200
    assert user_id != 6
"""


def test_xdist_workers_exchanges_reach_the_store_written_by_the_controller_only(
    pytester, shop, store_dir, read_store
):
    pytester.makepyfile(test_users=XDIST_SUITE)
    result = pytester.runpytest_subprocess(
        "-n", "2", *MEMORY, f"--memory-dir={store_dir}", f"--api-base-url={shop.url}"
    )
    result.assert_outcomes(passed=5, failed=1)
    history = read_store(store_dir)
    assert history.sql("SELECT count(DISTINCT run_id), count(*) FROM events").rows == [(1, 21)]
    counts = dict(history.sql("SELECT type, count(*) FROM events GROUP BY type").rows)
    assert counts == {
        "RunStarted": 1,
        "TestFinished": 6,
        "HttpExchanged": 12,
        "FailureObserved": 1,
        "RunFinished": 1,
    }
    workers = history.sql("SELECT DISTINCT worker FROM results ORDER BY worker").rows
    assert workers == [("gw0",), ("gw1",)]
    # Every exchange is attributed to the test (and so the worker) that made it.
    orphans = history.sql("SELECT count(*) FROM exchanges WHERE nodeid IS NULL").rows
    assert orphans == [(0,)]
    run = history.sql("SELECT passed, failed, exit_status FROM runs").rows
    assert run == [(5, 1, 1)]


def test_a_test_whose_xdist_worker_crashed_is_recorded_as_failed(pytester, store_dir, read_store):
    """pytest-xdist reports such a test once, in phase "???", with no
    teardown report to end it; the worker is replaced and the run goes on."""
    pytester.makepyfile(
        test_crash="""
import os

def test_before():
    pass

def test_crash():
    os._exit(3)

def test_after():
    pass
"""
    )
    result = pytester.runpytest_subprocess("-n", "1", *MEMORY, f"--memory-dir={store_dir}")
    result.assert_outcomes(passed=2, failed=1)
    history = read_store(store_dir)
    rows = history.sql("SELECT nodeid, outcome, phase, file, function FROM results ORDER BY nodeid")
    assert rows.rows == [
        ("test_crash.py::test_after", "passed", "call", "test_crash.py", "test_after"),
        ("test_crash.py::test_before", "passed", "call", "test_crash.py", "test_before"),
        ("test_crash.py::test_crash", "failed", "???", "test_crash.py", "test_crash"),
    ]
    failures = history.sql("SELECT nodeid, phase FROM failures").rows
    assert failures == [("test_crash.py::test_crash", "???")]
    assert history.sql("SELECT passed, failed FROM runs").rows == [(2, 1)]


CAPPING_SUITE = """
def test_big(api_client):
    assert len(api_client.get("/big").content) == 1_000_000

def test_binary(api_client):
    assert api_client.get("/binary").content[:2] == b"\\x89P"
"""
BIG = b"".join(b"line %07d of a big text body\n" % i for i in range(31_250))
BINARY = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


@pytest.fixture
def capped_bodies(pytester, stub_api, store_dir, read_store):
    """Runs the capping suite with the given extra options; returns the exchanges."""
    assert len(BIG) == 1_000_000
    stub_api.answer("/big", body=BIG, content_type="text/plain")
    stub_api.answer("/binary", body=BINARY, content_type="application/octet-stream")
    pytester.makepyfile(test_bodies=CAPPING_SUITE)

    def run(*options: str) -> dict[str, dict[str, Any]]:
        args = (*MEMORY, f"--memory-dir={store_dir}", f"--api-base-url={stub_api.url}")
        pytester.runpytest(*args, *options).assert_outcomes(passed=2)
        rows = read_store(store_dir).sql("SELECT * FROM exchanges").dicts()
        return {row["route"]: row for row in rows}

    return run


def test_a_large_body_is_capped_at_64_kib_keeping_size_and_sha256_of_the_whole(capped_bodies):
    big = capped_bodies()["/big"]
    assert big["response_body"] == BIG[: 64 * 1024].decode()
    assert big["response_body_truncated"] is True
    assert big["response_body_size"] == 1_000_000
    assert big["response_body_sha256"] == hashlib.sha256(BIG).hexdigest()


def test_the_body_cap_is_configurable(capped_bodies):
    big = capped_bodies("--memory-body-cap=1000")["/big"]
    assert big["response_body"] == BIG[:1000].decode()
    assert big["response_body_size"] == 1_000_000


def test_a_binary_body_round_trips_through_base64(capped_bodies):
    import base64

    binary = capped_bodies()["/binary"]
    assert binary["response_body_encoding"] == "base64"
    assert base64.b64decode(binary["response_body"]) == BINARY
    assert binary["response_body_truncated"] is False
    assert binary["response_body_sha256"] == hashlib.sha256(BINARY).hexdigest()


SLOW_SUITE = """
import time
import pytest

@pytest.mark.parametrize("n", range(40))
def test_user(api_client, n):
    assert api_client.get(f"/users/{n % 5 + 1}").status_code == 200

def test_hangs():
    time.sleep(120)
"""


def test_a_run_killed_mid_way_keeps_every_committed_batch_whole(
    pytester, shop, store_dir, read_store
):

    pytester.makeini("[pytest]\nmemory_flush_events = 10\nmemory_flush_seconds = 600\n")
    pytester.makepyfile(test_slow=SLOW_SUITE)
    inner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:randomly",
            *MEMORY,
            f"--memory-dir={store_dir}",
            f"--api-base-url={shop.url}",
        ],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    spool = store_dir / "spool"
    try:
        _wait_for_segments(spool, at_least=4)
    finally:
        inner.send_signal(signal.SIGKILL)
        inner.wait()
    flushed = sum(len(p.read_text().splitlines()) for p in spool.glob("*.jsonl"))
    history = read_store(store_dir)  # reading commits the killed run's segments
    events, unique = history.sql("SELECT count(*), count(DISTINCT event_id) FROM events").rows[0]
    assert events == unique == flushed == _committed_records(store_dir / "events" / "_delta_log")
    assert events > 0 and events % 10 == 0  # whole batches only
    assert not list(spool.glob("*.jsonl"))
    assert history.sql("SELECT count(*) FROM runs WHERE finished_at IS NULL").rows == [(1,)]
    Store.open(store_dir).events.append([RunStarted(run_id="after-the-kill")])
    assert read_store(store_dir).sql("SELECT count(*) FROM events").rows == [(events + 1,)]


def _wait_for_segments(spool: Path, at_least: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while len(list(spool.glob("*.jsonl"))) < at_least:
        assert time.monotonic() < deadline, "the inner run flushed too few batches"
        time.sleep(0.05)


def _committed_records(delta_log: Path) -> int:
    """Records the commit files say were added (what a reader must see)."""
    total = 0
    for commit in delta_log.glob("*.json"):
        for line in commit.read_text().splitlines():
            add = json.loads(line).get("add")
            if add:
                total += json.loads(add["stats"])["numRecords"]
    return total


def test_the_plugin_can_be_disabled(pytester):
    assert "--memory-dir" in pytester.runpytest("--help").stdout.str()
    assert "--memory-dir" not in pytester.runpytest("-p", "no:testmem", "--help").stdout.str()


def test_the_store_comes_from_testmem_dir_when_no_option_is_given(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("TESTMEM_DIR", str(tmp_path / "from-env"))
    pytester.makepyfile("def test_ok(): pass")
    pytester.runpytest(*MEMORY).assert_outcomes(passed=1)
    assert Store.open(tmp_path / "from-env").events.files()


def test_an_ini_memory_dir_is_relative_to_the_rootdir(pytester, monkeypatch):
    monkeypatch.delenv("TESTMEM_DIR", raising=False)
    pytester.makeini("[pytest]\nmemory_dir = recorded\n")
    pytester.makepyfile("def test_ok(): pass")
    pytester.mkdir("elsewhere")
    monkeypatch.chdir(pytester.path / "elsewhere")
    pytester.runpytest(*MEMORY, "--rootdir", str(pytester.path), str(pytester.path))
    assert Store.open(pytester.path / "recorded").events.files()
