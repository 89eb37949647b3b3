"""The spool: a run's events written by the test process as JSON segments,
committed to the Delta log by whoever reads or appends next, exactly once."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from testmem.memory.errors import DamagedFileWarning
from testmem.memory.events import Blob, FailureObserved, RunStarted, TestFinished
from testmem.memory.query import History
from testmem.memory.store import Store

pytest_plugins = ["pytester"]

RECORD = ("--memory", "--memory-retries=0", "--no-memory-triage", "-p", "no:randomly")

SUITE = """
import pytest

@pytest.mark.parametrize("n", range(30))
def test_passes(n):
    assert n >= 0

def test_fails():
    assert 1 == 2
"""


def test_spooled_events_read_back_as_they_were_written(store_dir: Path) -> None:
    store = Store(store_dir)
    assert store.events.spool is not None
    started = RunStarted(run_id="r", args=["-k", "caf\u00e9"])
    failed = FailureObserved(
        run_id="r", failure_id="f", nodeid="t", message="boom", traceback=Blob.of("x" * 10, 4)
    )
    store.events.spool.append([started, failed])
    assert not (store_dir / "events").exists()  # not converted yet
    rows = (
        History(Store.open(store_dir))
        .sql(
            "SELECT type, occurred_at, args, message, traceback, traceback_size, "
            "traceback_truncated FROM events ORDER BY type"
        )
        .rows
    )
    assert rows == [
        ("FailureObserved", failed.occurred_at, None, "boom", "xxxx", 10, True),
        ("RunStarted", started.occurred_at, ["-k", "caf\u00e9"], None, None, None, None),
    ]
    assert store.events.spool.segments() == []


def test_a_settle_killed_before_deleting_its_segments_commits_nothing_twice(
    store_dir: Path, tmp_path: Path
) -> None:
    store = Store(store_dir)
    assert store.events.spool is not None
    store.events.spool.append([TestFinished(run_id="r", nodeid=f"t{i}") for i in range(5)])
    kept = tmp_path / "kept"
    shutil.copytree(store_dir / "spool", kept)
    assert Store(store_dir).events.version() == 0  # settled: one commit
    shutil.copytree(kept, store_dir / "spool", dirs_exist_ok=True)  # as if never deleted
    history = History(Store.open(store_dir))
    assert history.sql("SELECT count(*), count(DISTINCT event_id) FROM events").rows == [(5, 5)]
    assert Store(store_dir).events.version() == 0  # nothing committed again
    assert not list((store_dir / "spool").glob("*.jsonl"))


def test_a_damaged_segment_is_set_aside_and_the_others_commit(store_dir: Path) -> None:
    store = Store(store_dir)
    assert store.events.spool is not None
    store.events.spool.append([TestFinished(run_id="r", nodeid="good")])
    (store_dir / "spool" / "0-00000001.jsonl").write_text('["TestFinished", {"run_id": ')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = History(Store.open(store_dir)).sql("SELECT nodeid FROM events").rows
    assert rows == [("good",)]
    assert [w.category for w in caught] == [DamagedFileWarning]
    assert [p.name for p in (store_dir / "spool").iterdir() if not p.name.startswith(".")] == [
        "0-00000001.damaged"
    ]


def test_every_event_of_a_session_is_in_the_log_after_it(pytester, store_dir, read_store):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(*RECORD, f"--memory-dir={store_dir}")
    result.assert_outcomes(passed=30, failed=1)
    history = read_store(store_dir)
    assert history.sql("SELECT passed, failed FROM runs").rows == [(30, 1)]
    assert history.sql("SELECT count(*) FROM failures").rows == [(1,)]
    counts = history.sql("SELECT count(*), count(DISTINCT event_id) FROM events").rows
    assert counts == [(34, 34)]  # RunStarted, 31 TestFinished, FailureObserved, RunFinished


def test_every_event_of_an_xdist_session_is_in_the_log_after_it(pytester, store_dir, read_store):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(*RECORD, "-n", "2", f"--memory-dir={store_dir}")
    result.assert_outcomes(passed=30, failed=1)
    history = read_store(store_dir)
    assert history.sql("SELECT passed, failed FROM runs").rows == [(30, 1)]
    workers = history.sql("SELECT DISTINCT worker FROM results ORDER BY worker").rows
    assert workers == [("gw0",), ("gw1",)]


def test_a_passing_session_starts_no_store_process_and_loads_no_store_library(pytester, store_dir):
    """Events go to the spool from the test process: no second interpreter
    (its imports of pyarrow and deltalake were most of a short run's cost);
    and with nothing to decide, pytest's default post-run triage reads no
    history either (it used to settle the spool and open DuckDB)."""
    pytester.makepyfile("def test_ok(): pass\n")
    pytester.makeconftest(
        """
        import os, sys, pytest

        def children():
            me, found = str(os.getpid()), 0
            for stat in os.listdir("/proc"):
                if stat.isdigit():
                    try:
                        with open(f"/proc/{stat}/stat") as f:
                            found += f.read().rsplit(")", 1)[1].split()[1] == me
                    except OSError:
                        pass
            return found

        @pytest.hookimpl(trylast=True)
        def pytest_unconfigure(config):  # after the terminal summary, where triage runs
            loaded = [m for m in ("pyarrow", "deltalake", "duckdb") if m in sys.modules]
            print("LOADED:", ",".join(loaded) or "none", "CHILDREN:", children())
        """
    )
    args = ("--memory", f"--memory-dir={store_dir}", "-s")  # retries and triage on
    for _ in range(2):  # the second run has a store to find
        result = pytester.runpytest_subprocess(*args)
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*LOADED: none CHILDREN: 0"])
    history = History(Store.open(store_dir))
    assert history.sql("SELECT count(*) FROM runs").rows == [(2,)]
