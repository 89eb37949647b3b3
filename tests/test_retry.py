"""In-run contextual retry: the mechanics and a real session against a real server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from testmem.memory.query import History
from testmem.memory.retry import RetryAdvice, RetryBudget, parse_retry_after
from testmem.memory.store import Store


class SequenceApi:
    """Answers every request with the next (status, headers) of a script, then 200."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]]] = []
        self.requests = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.requests += 1
                status, headers = api.script.pop(0) if api.script else (200, {})
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def api() -> Iterator[SequenceApi]:
    server = SequenceApi()
    yield server
    server.httpd.shutdown()


SUITE = """
def test_ping(api_client):
    response = api_client.get("/ping")
    assert response.status_code == 200
"""


def run(pytester: pytest.Pytester, api: SequenceApi, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_ping=SUITE)
    store = pytester.path / "store"
    return pytester.runpytest_subprocess(
        "--memory",
        f"--memory-dir={store}",
        f"--api-base-url={api.url}",
        "--no-memory-triage",
        *args,
    )


def history(pytester: pytest.Pytester) -> History:
    return History(Store.open(pytester.path / "store"))


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after("3") == 3.0


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    when = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(when, now) == pytest.approx(7.0)


def test_retry_after_garbage_is_ignored() -> None:
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None


def test_wait_honours_retry_after_up_to_the_cap() -> None:
    budget = RetryBudget(budget_s=60, max_wait_s=5)
    assert budget.wait_for(RetryAdvice(True, "429", retry_after_s=2), attempt=1) == 2
    assert budget.wait_for(RetryAdvice(True, "429", retry_after_s=90), attempt=1) == 5


def test_backoff_grows_with_attempts_and_has_jitter() -> None:
    budget = RetryBudget(budget_s=60, max_wait_s=30, base_s=1, seed=7)
    waits = [budget.wait_for(RetryAdvice(True, "503"), attempt=3) for _ in range(50)]
    assert all(0 <= w <= 4 for w in waits)
    assert len(set(waits)) > 40


def test_budget_refuses_a_wait_that_does_not_fit() -> None:
    budget = RetryBudget(budget_s=1.5)
    assert budget.spend(1.0)
    assert not budget.spend(1.0)
    assert budget.remaining_s == pytest.approx(0.5)


def test_rate_limited_test_is_retried_after_retry_after_and_passes(
    pytester: pytest.Pytester, api: SequenceApi
) -> None:
    api.script = [(429, {"Retry-After": "1"})]
    result = run(pytester, api)
    facts = (
        "SELECT detail->>'$.wait_s', detail->>'$.category' FROM facts WHERE type = 'RetryAttempted'"
    )
    assert result.parseoutcomes() == {"passed": 1, "rerun": 1}
    assert result.ret == 0
    assert api.requests == 2
    retry = history(pytester).sql(facts).rows
    assert [(float(w), c) for w, c in retry] == [(1.0, "transient")]
    outcomes = history(pytester).sql("SELECT attempt, outcome FROM results ORDER BY attempt").rows
    assert outcomes == [(1, "failed"), (2, "passed")]


def test_plain_assertion_failure_is_not_retried(
    pytester: pytest.Pytester, api: SequenceApi
) -> None:
    api.script = [(404, {})]
    result = run(pytester, api)
    result.assert_outcomes(failed=1)
    assert api.requests == 1


def test_retries_stop_after_the_configured_number(
    pytester: pytest.Pytester, api: SequenceApi
) -> None:
    api.script = [(503, {"Retry-After": "0"})] * 5
    result = run(pytester, api, "--memory-retries=2")
    assert result.parseoutcomes() == {"failed": 1, "rerun": 2}
    assert result.ret == 1
    assert api.requests == 3


def test_zero_retries_disables_retrying(pytester: pytest.Pytester, api: SequenceApi) -> None:
    api.script = [(503, {"Retry-After": "0"})]
    result = run(pytester, api, "--memory-retries=0")
    result.assert_outcomes(failed=1)
    assert api.requests == 1


def test_exhausted_budget_stops_retrying(pytester: pytest.Pytester, api: SequenceApi) -> None:
    api.script = [(429, {"Retry-After": "5"})]
    result = run(pytester, api, "--memory-retry-budget=1")
    result.assert_outcomes(failed=1)
    assert api.requests == 1


def test_bad_retry_option_is_a_usage_error(pytester: pytest.Pytester, api: SequenceApi) -> None:
    result = run(pytester, api, "--memory-retries=many")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--memory-retries must be a number*"])
