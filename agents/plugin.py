"""The agents' side of the pytest plugin (entry point ``pytest11: testmem_agents``).

Implements the hooks `memory` declares: in-run retry advice, post-run triage
and the "testmem" lines of the terminal summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # kept off pytest's start-up path: imported when first needed
    from testmem.memory.recorder import Recorder
    from testmem.memory.retry import RetryAdvice
    from testmem.memory.store import Store

_advisor_key = pytest.StashKey["RetryAdvisor"]()
_summary_key = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    # Read by `testmem generate`; declared so that pytest knows the key.
    parser.addini(
        "memory_client_fixture", "Client fixture of generated tests [the one the suite uses]."
    )


class RetryAdvisor:
    """Answers "retry this attempt?" from the attempt's own evidence plus the
    test's history: the recorder's store process reads it while the first
    tests run (this process never loads DuckDB for it), and the advisor takes
    it at the first failure and keeps it for the session."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._records: dict[str, Any] | None = None

    def advise(
        self, item: pytest.Item, reports: list[pytest.TestReport], exchanges: list[dict[str, Any]]
    ) -> RetryAdvice:
        from testmem.agents.analyzer import FailureContext, classify
        from testmem.agents.context import exchange_from_capture
        from testmem.memory.retry import RetryAdvice, parse_retry_after

        failed = next(r for r in reports if r.failed)
        described = getattr(failed, "testmem_failure", None) or {}
        context = FailureContext(
            nodeid=item.nodeid,
            phase=failed.when,
            exception_type=described.get("exception_type", ""),
            message=described.get("message", ""),
            exchanges=[exchange_from_capture(x) for x in exchanges],
            history=self._record(item.nodeid),
        )
        verdict = classify(context)
        waits = [parse_retry_after(x.retry_after) for x in context.exchanges]
        asked = max((w for w in waits if w is not None), default=None)
        return RetryAdvice(verdict.action == "retry", verdict.reason, verdict.category, asked)

    def _record(self, nodeid: str) -> Any:
        from testmem.agents.analyzer import TestRecord

        if self._records is None:
            self._records = _load_records(self.recorder)
        return self._records.get(nodeid, TestRecord())


def _load_records(recorder: Recorder) -> dict[str, Any]:
    """The records that can make a difference, in one query (a test that only
    ever passed has a clean `TestRecord()`); history must never break a run."""
    from testmem.agents.analyzer import TestRecord

    try:
        rows = recorder.test_records()
    except Exception:
        return {}
    return {r["nodeid"]: TestRecord.of(r) for r in rows}


@pytest.hookimpl(optionalhook=True)  # optional: `-p no:testmem` drops the specs
def pytest_testmem_retry_advice(
    item: pytest.Item,
    reports: list[pytest.TestReport],
    exchanges: list[dict[str, Any]],
    attempt: int,
) -> RetryAdvice | None:
    from testmem.memory.plugin import recorder_key

    recorder = item.config.stash.get(recorder_key, None)
    if recorder is None:
        return None
    if _advisor_key not in item.config.stash:
        item.config.stash[_advisor_key] = RetryAdvisor(recorder)
    return item.config.stash[_advisor_key].advise(item, reports, exchanges)


@pytest.hookimpl(optionalhook=True)
def pytest_testmem_run_recorded(config: pytest.Config, store: Store, run_id: str) -> None:
    from testmem.memory.plugin import triage_enabled

    if not triage_enabled(config):
        return
    from testmem.agents.triage import Triage

    result = Triage(store).run(run_id)
    config.stash[_summary_key] = result.summary_lines()


@pytest.hookimpl(optionalhook=True)
def pytest_testmem_summary(config: pytest.Config) -> list[str] | None:
    return config.stash.get(_summary_key, None)
