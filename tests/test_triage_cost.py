"""Triage costs what it decides: recurring failures load no model and no index,
and the terminal summary takes one line per incident however many tests failed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from testmem.memory.store import Store
from testmem.memory.store_process import advisor_records, kept_advisor_records

HEAVY = ("chromadb", "sentence_transformers", "onnxruntime", "torch", "transformers")

# Installed in every Python process of the inner session (pytest's, the store
# process, the triage process) through $PYTHONPATH: notes each first import
# of a heavy library, by process, in $TESTMEM_TEST_IMPORTS.
WATCH = f"""
import os
import sys

HEAVY = {HEAVY!r}


class Watch:
    def find_spec(self, name, path=None, target=None):
        if path is None and name in HEAVY and os.environ.get("TESTMEM_TEST_IMPORTS"):
            with open(os.environ["TESTMEM_TEST_IMPORTS"], "a") as log:
                log.write(f"{{os.getpid()}} {{name}}\\n")
        return None


sys.meta_path.insert(0, Watch())
"""

TESTS = ("test_order_has_a_status", "test_user_has_an_email")
RECURRING = """
def test_order_has_a_status():
    order = {"id": 7, "total": 12.5}
    assert order.get("status") == "paid", f"order {order['id']} has no status"


def test_user_has_an_email():
    user = {"id": 3}
    assert "email" in user, f"user {user['id']} has no email"
"""


@pytest.fixture
def watched(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The inner session's processes, watched for heavy imports; the log's path."""
    site = pytester.mkdir("watch")
    (site / "sitecustomize.py").write_text(textwrap.dedent(WATCH))
    monkeypatch.setenv("PYTHONPATH", f"{site}:{__import__('os').environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")
    return pytester.path / "imports.log"


def test_a_run_whose_failures_all_recur_loads_no_model_and_no_index(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, watched: Path
) -> None:
    pytester.makepyfile(test_recurring=RECURRING)
    args = ("-p", "no:cacheprovider", "--memory", f"--memory-dir={pytester.path / 'store'}")
    first = pytester.runpytest_subprocess(*args)  # new signatures: embedded and indexed
    first.assert_outcomes(failed=2)
    monkeypatch.setenv("TESTMEM_TEST_IMPORTS", str(watched))

    second = pytester.runpytest_subprocess(*args)

    second.assert_outcomes(failed=2)
    second.stdout.fnmatch_lines(["testmem triage: 2 failed tests *"])
    assert "triage failed" not in second.stdout.str()
    assert not watched.exists() or watched.read_text() == ""


MANY = """
import pytest


@pytest.mark.parametrize("n", range(30))
def test_order(n):
    assert {"id": n}.get("status") == "paid", f"order {n} has no status"


def test_user():
    assert {"id": 4}.get("email"), "user 4 has no email"
"""


def test_the_summary_gives_one_line_per_incident_with_its_count_and_first_tests(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_many=MANY)

    result = pytester.runpytest("-p", "no:cacheprovider", "--memory", "--memory-dir=store")

    result.assert_outcomes(failed=31)
    result.stdout.fnmatch_lines(
        [
            "testmem triage: 31 failed tests *",
            "  * 30 tests: test_many.py::test_order[[]*], *, * +27 more  [[]INC-*",
            "  * test_many.py::test_user  [[]INC-*",
        ]
    )
    triage = result.stdout.str().split("testmem triage:", 1)[1].split("short test summary", 1)[0]
    assert triage.count("test_many.py::test_order[") == 3


STARTS = """
import os
import sys

if os.environ.get("TESTMEM_TEST_STARTS"):
    with open(os.environ["TESTMEM_TEST_STARTS"], "a") as log:
        log.write(" ".join(sys.orig_argv) + "\\n")
"""


def test_a_failing_run_reads_its_history_and_triages_in_one_child(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry advisor's question for the tests' history goes to the triage
    child, which loads DuckDB anyway: no store process starts beside it."""
    args = recorded_once(pytester, monkeypatch)
    (pytester.path / "store" / "answers" / "answers.sqlite").unlink()  # nothing kept: read it
    starts = pytester.path / "starts.log"
    monkeypatch.setenv("TESTMEM_TEST_STARTS", str(starts))

    second = pytester.runpytest_subprocess(*args, "--memory-retries=1")

    second.assert_outcomes(failed=2)
    second.stdout.fnmatch_lines(["testmem triage: 2 failed tests *"])
    assert children(starts) == ["testmem.agents.triage_process"]


def test_the_next_run_takes_the_advisors_history_as_the_last_triage_kept_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A triage keeps the tests' records for the next run's retry advisor: read
    with the standard library, so a run without triage starts no child at all."""
    args = recorded_once(pytester, monkeypatch)  # triaged: records kept
    store = Store(pytester.path / "store")
    kept = kept_advisor_records(store)
    assert kept is not None
    by_test = {r["nodeid"]: r for r in kept}
    assert by_test == {r["nodeid"]: r for r in advisor_records(store)}  # as computed now
    assert set(by_test) == {"test_recurring.py::" + t for t in TESTS}
    starts = pytester.path / "starts.log"
    monkeypatch.setenv("TESTMEM_TEST_STARTS", str(starts))

    second = pytester.runpytest_subprocess(*args, "--memory-retries=1", "--no-memory-triage")

    second.assert_outcomes(failed=2)
    assert children(starts) == []


def recorded_once(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    """The recurring suite, recorded and triaged once, its processes' starts
    watched from now on (`STARTS`); the arguments of its runs."""
    site = pytester.mkdir("starts")
    (site / "sitecustomize.py").write_text(textwrap.dedent(STARTS))
    monkeypatch.setenv("PYTHONPATH", f"{site}:{__import__('os').environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makepyfile(test_recurring=RECURRING)
    args = ("-p", "no:cacheprovider", "--memory", f"--memory-dir={pytester.path / 'store'}")
    pytester.runpytest_subprocess(*args).assert_outcomes(failed=2)
    return args


def children(starts: Path) -> list[str]:
    """The testmem modules run as processes of their own, in the order they started."""
    lines = starts.read_text().splitlines() if starts.exists() else []
    return [line.split("-m ")[1].split()[0] for line in lines if "-m testmem." in line]
