"""In-run contextual retry: the mechanics, not the judgment.

When ``--memory-retries`` > 0, a failed test is run again in the same session
only if an agent (the `pytest_testmem_retry_advice` hook) says so. The wait
honours ``Retry-After`` (capped), else backs off exponentially with full
jitter, and all waits share a per-session time budget. Intermediate attempts
are reported with outcome "rerun", as pytest-rerunfailures does.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from _pytest.runner import runtestprotocol


@dataclass(frozen=True)
class RetryAdvice:
    retry: bool
    reason: str
    category: str = "unknown"
    retry_after_s: float | None = None  # what the server asked for, if it did


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime  # the email package: ~20 ms at start-up

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RetryBudget:
    """How long to wait before attempt ``n``, within a session-wide budget."""

    def __init__(
        self,
        budget_s: float,
        max_wait_s: float = 30.0,
        base_s: float = 0.2,
        seed: int | None = None,
    ) -> None:
        self.remaining_s = budget_s
        self.max_wait_s = max_wait_s
        self.base_s = base_s
        self._random = random.Random(seed)

    def wait_for(self, advice: RetryAdvice, attempt: int) -> float:
        if advice.retry_after_s is not None:
            return min(advice.retry_after_s, self.max_wait_s)
        ceiling = min(self.max_wait_s, self.base_s * 2 ** (attempt - 1))
        return self._random.uniform(0, ceiling)  # "full jitter"

    def spend(self, wait_s: float) -> bool:
        """Take ``wait_s`` from the budget; False (and nothing taken) if it doesn't fit."""
        if wait_s > self.remaining_s:
            return False
        self.remaining_s -= wait_s
        return True


class Retrier:
    """A pytest plugin object that runs each test's protocol with retries."""

    def __init__(self, max_retries: int, budget: RetryBudget) -> None:
        self.max_retries = max_retries
        self.budget = budget

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool:
        attempt = 1
        ihook = item.ihook  # a lookup by path each time: once per test, as pytest does
        while True:
            ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
            reports = runtestprotocol(item, nextitem=nextitem, log=False)
            retry = self._retry(item, reports, attempt)
            for report in reports:
                if retry and report.failed:
                    report.outcome = "rerun"  # type: ignore[assignment]
                    report.testmem_retry = retry  # type: ignore[attr-defined]
                ihook.pytest_runtest_logreport(report=report)
            ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
            if not retry:
                return True
            time.sleep(retry["wait_s"])
            _reset_for_rerun(item)
            attempt += 1

    def _retry(
        self, item: pytest.Item, reports: list[pytest.TestReport], attempt: int
    ) -> dict[str, Any] | None:
        failed = [r for r in reports if r.failed]
        if not failed or attempt > self.max_retries:
            return None
        exchanges = [x for r in reports for x in getattr(r, "testmem_exchanges", ())]
        advice = item.config.hook.pytest_testmem_retry_advice(
            item=item, reports=reports, exchanges=exchanges, attempt=attempt
        )
        if advice is None or not advice.retry:
            return None
        wait_s = self.budget.wait_for(advice, attempt)
        if not self.budget.spend(wait_s):
            return None
        return {
            "attempt": attempt,
            "wait_s": round(wait_s, 3),
            "reason": advice.reason,
            "category": advice.category,
        }

    def pytest_report_teststatus(
        self, report: pytest.TestReport
    ) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
        if report.outcome == "rerun":
            return "rerun", "R", ("RERUN", {"yellow": True})
        return None


def _reset_for_rerun(item: pytest.Item) -> None:
    """Forget failed fixture results so the next attempt sets them up afresh
    (the same clean-up pytest-rerunfailures does)."""
    for definitions in getattr(
        getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}
    ).values():
        for definition in definitions:
            cached = getattr(definition, "cached_result", None)
            if cached is not None and cached[2] is not None:
                definition.cached_result = None
                getattr(definition, "_finalizers", []).clear()
    stack = item.session._setupstate.stack
    if item in stack:
        del stack[item]
    if hasattr(item, "_initrequest"):
        item._initrequest()
