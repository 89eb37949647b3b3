"""The evidence triage gathers for a failed test: which attempt, which exchange."""

from __future__ import annotations

from pathlib import Path

from testmem.agents.context import failed_tests
from testmem.memory.events import FailureObserved, HttpExchanged, TestFinished, uuid7
from testmem.memory.log import EventLog
from testmem.memory.query import History
from testmem.memory.store import Store

NODEID = "test_articles.py::test_article"


def _attempt(attempt: int, status: int, message: str, outcome: str = "failed") -> list:
    login = HttpExchanged(
        run_id="run-1", exchange_id=uuid7(), nodeid=NODEID, phase="setup", attempt=attempt,
        method="POST", url="http://testserver/api/users/login", route="/api/users/login",
        status=200,
    )  # fmt: skip
    call = HttpExchanged(
        run_id="run-1", exchange_id=uuid7(), nodeid=NODEID, phase="call", attempt=attempt,
        method="GET", url="http://testserver/api/articles/a", route="/api/articles/a",
        status=status,
    )  # fmt: skip
    failure = FailureObserved(
        run_id="run-1", failure_id=uuid7(), nodeid=NODEID, phase="call", attempt=attempt,
        exception_type="AssertionError", message=message,
        exchange_ids=[login.exchange_id, call.exchange_id],
    )  # fmt: skip
    done = TestFinished(run_id="run-1", nodeid=NODEID, outcome=outcome, attempt=attempt)
    return [login, call, failure, done]


def _decided(store_dir: Path, *attempts: list) -> dict:
    EventLog(store_dir / "events").append([e for a in attempts for e in a])
    [test] = failed_tests(History(Store.open(store_dir)), "run-1")
    return test


def test_a_transient_first_attempt_does_not_decide_for_the_regression_after_it(
    store_dir: Path,
) -> None:
    test = _decided(
        store_dir, _attempt(1, 503, "assert 503 == 200"), _attempt(2, 500, "assert 500 == 200")
    )
    assert (test["message"], test["exchange_rule"], test["attempts"]) == (
        "assert 500 == 200", "named", 2,
    )  # fmt: skip


def test_a_503_on_a_retry_does_not_explain_a_test_that_was_failing_already(
    store_dir: Path,
) -> None:
    equality = "assert {'article': {...}} == {'article': {...}}"
    test = _decided(store_dir, _attempt(1, 200, equality), _attempt(2, 503, "assert 503 == 200"))
    assert test["message"] == equality and test["exchange_rule"] == "last"
