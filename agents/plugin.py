"""The agents' side of the pytest plugin (entry point ``pytest11: testmem_agents``).

Implements the hooks `memory` declares: in-run retry advice, post-run triage
(in a child process started at the run's first failure) and the "testmem"
lines of the terminal summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # kept off pytest's start-up path: imported when first needed
    from testmem.agents.decision import TriageResult
    from testmem.agents.triage_process import TriageProcess
    from testmem.memory.recorder import Recorder
    from testmem.memory.retry import RetryAdvice
    from testmem.memory.store import Store

_advisor_key = pytest.StashKey["RetryAdvisor"]()
_summary_key = pytest.StashKey[list[str]]()
_launcher_key = pytest.StashKey["TriageLauncher"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    # Read by `testmem generate`; declared so that pytest knows the key.
    parser.addini(
        "memory_client_fixture", "Client fixture of generated tests [the one the suite uses]."
    )


class RetryAdvisor:
    """Answers "retry this attempt?" from the attempt's own evidence plus the
    test's history, taken at the first failure (`_load_records`: as the last
    triage kept it, else from the session's triage child or the recorder's
    store process; this process never loads DuckDB for it) and kept for the
    session."""

    def __init__(self, recorder: Recorder, launcher: TriageLauncher | None) -> None:
        self.recorder = recorder
        self.launcher = launcher
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
            self._records = _load_records(self.recorder, self.launcher)
        return self._records.get(nodeid, TestRecord())


def _load_records(recorder: Recorder, launcher: TriageLauncher | None) -> dict[str, Any]:
    """The records that can make a difference (a test that only ever passed has
    a clean `TestRecord()`): as the last triage kept them, else read by the
    triage child, else by the recorder; history must never break a run."""
    from testmem.agents.analyzer import TestRecord
    from testmem.memory.store_process import kept_advisor_records

    try:
        rows = kept_advisor_records(recorder.store)  # kept by the last triage
        if rows is None and launcher is not None:
            rows = launcher.test_records(recorder.run_id)
        if rows is None:
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
        launcher = item.config.stash.get(_launcher_key, None)
        item.config.stash[_advisor_key] = RetryAdvisor(recorder, launcher)
    return item.config.stash[_advisor_key].advise(item, reports, exchanges)


class TriageLauncher:
    """Starts the run's triage process at its first failed test, so that the
    child gets ready while the other tests run (`testmem.agents.triage_process`);
    a run without failures starts nothing."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.process: TriageProcess | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        failed = report.failed or report.outcome == "rerun"  # a retried attempt failed
        if failed and self.process is None:
            self.start()

    def test_records(self, run_id: str) -> list[dict[str, Any]] | None:
        """The tests' history, from the triage child (started now if the run's
        first failure has not started it yet); None without a child."""
        if self.process is None:
            self.start()
        return self.process.test_records(run_id) if self.process else None

    def start(self) -> None:
        from testmem.agents.triage_process import TriageProcess
        from testmem.memory.plugin import recorder_key, triage_enabled

        recorder = self.config.stash.get(recorder_key, None)
        if recorder is not None and triage_enabled(self.config):
            self.process = TriageProcess(recorder.store.location)

    def triage(self, store: Store, run_id: str) -> TriageResult:
        """The child's triage if there is one to ask, else this process's; a
        run that recorded no failure has nothing to decide, and skips triage
        (and the history it would read) unless defects wait in the outbox."""
        from testmem.agents.decision import TriageResult
        from testmem.memory.plugin import recorder_key

        process, self.process = self.process, None
        recorder = self.config.stash.get(recorder_key, None)
        failed = recorder is None or recorder.failures > 0
        if process is None and not failed and not _outbox_waits(store):
            return TriageResult(run_id, [])
        result = process.triage(run_id) if process else None
        if result is None:
            from testmem.agents.triage import Triage

            result = Triage(store).run(run_id)
        return result

    def close(self) -> None:
        if self.process is not None:
            self.process.close()


def _outbox_waits(store: Store) -> bool:
    """Defect actions a sink could not take yet: any triage delivers them."""
    outbox = store.root / "defects" / "outbox"
    return outbox.is_dir() and any(outbox.glob("*.json"))


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("memory", False) and not hasattr(config, "workerinput"):
        launcher = TriageLauncher(config)
        config.stash[_launcher_key] = launcher
        config.pluginmanager.register(launcher, "testmem-triage-launcher")


@pytest.hookimpl(trylast=True)  # after the recorder's post-run work, which may ask it
def pytest_unconfigure(config: pytest.Config) -> None:
    launcher = config.stash.get(_launcher_key, None)
    if launcher is not None:
        launcher.close()
        config.pluginmanager.unregister(launcher)
        del config.stash[_launcher_key]


@pytest.hookimpl(optionalhook=True)
def pytest_testmem_run_recorded(config: pytest.Config, store: Store, run_id: str) -> None:
    from testmem.memory.plugin import triage_enabled

    if not triage_enabled(config):
        return
    launcher = config.stash.get(_launcher_key, None) or TriageLauncher(config)
    config.stash[_summary_key] = launcher.triage(store, run_id).summary_lines()


@pytest.hookimpl(optionalhook=True)
def pytest_testmem_summary(config: pytest.Config) -> list[str] | None:
    return config.stash.get(_summary_key, None)
