"""The recorder: a pytest plugin object that turns a session into events.

In every process it installs a `Tap` for the recording transports and hangs
what it captured (exchanges, failure details, test metadata) on each report.
Only the controller writes: with pytest-xdist, reports travel from workers to
the controller with those attributes, so one code path serves both cases.
The controller queues each report as it comes; its writer's thread folds them
into each test's events a batch at a time (`Recorder._events`).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from testmem.memory.blame import explaining_exchange
from testmem.memory.errors import StoreError
from testmem.memory.events import (
    Blob,
    Event,
    Fact,
    FailureObserved,
    HttpExchanged,
    RunFinished,
    RunStarted,
    TestFinished,
    utcnow,
    uuid7,
)
from testmem.memory.log import EventWriter
from testmem.memory.plugin import _number, _setting, record_http_enabled, triage_enabled
from testmem.memory.redact import Redactor
from testmem.memory.store import Store
from testmem.memory.store_process import StoreProcess, advisor_records
from testmem.memory.tap import Tap, activate, active_tap

_BUILD_VARS = (
    "GITHUB_SHA",
    "CI_COMMIT_SHA",
    "BUILDKITE_COMMIT",
    "CIRCLE_SHA1",
    "GIT_COMMIT",
    "BUILD_VCS_NUMBER",
    "TRAVIS_COMMIT",
)
_BRANCH_VARS = (
    "GITHUB_HEAD_REF",
    "GITHUB_REF_NAME",
    "CI_COMMIT_REF_NAME",
    "BUILDKITE_BRANCH",
    "CIRCLE_BRANCH",
    "BRANCH_NAME",
    "GIT_BRANCH",
)


_FAILED = ("failed", "rerun")  # a report's outcomes that failed: a retried attempt's too


@dataclass(slots=True)
class _TestState:
    """What the controller knows about a test while its phases report in."""

    outcome: str = "passed"
    phase: str = "call"
    duration_s: float = 0.0
    exchanges: list[HttpExchanged] = field(default_factory=list)
    item: dict[str, Any] | None = None  # `_describe_item`, from the setup report


@dataclass(slots=True)
class _RunEnd:
    """Queued last: made into `RunFinished` once every report before it is folded."""

    exit_status: int
    duration_s: float


class Recorder:
    def __init__(
        self,
        config: pytest.Config,
        store: Store,
        redactor: Redactor,
        cap: int,
        *,
        prefetch_history: bool = False,
    ) -> None:
        self.config = config
        self.store = store
        self.redactor = redactor
        self.cap = cap
        self.run_id = uuid7()
        self.is_worker = hasattr(config, "workerinput")
        self.tap = Tap(redactor, cap)
        self._previous_tap = active_tap()
        self._tests: dict[str, _TestState] = {}
        self._attempts: dict[str, int] = {}
        self._final: dict[str, str] = {}  # nodeid -> outcome of its last attempt
        self._collect_errors = 0
        self.failures = 0  # FailureObserved recorded (complete once the writer closed)
        self._started = time.perf_counter()
        self._errors: list[str] = []
        self._post_run_due = False  # set when the session finishes
        self.writer: EventWriter | None = None
        self.store_process: StoreProcess | None = None
        if not self.is_worker:
            # A local store's events go to its spool, as JSON, from this process:
            # no pyarrow, no deltalake, no second interpreter for a run that only
            # passes. The store process then starts only if the retry advisor
            # asks for history (at the first failure), and writes only to a
            # remote store, whose spool would be on no other machine.
            spool = store.events.spool
            self.store_process = StoreProcess(store, prefetch=prefetch_history and not spool)
            self.writer = EventWriter(
                spool or self.store_process,
                batch_size=int(_number(config, "memory_flush_events", 1000, minimum=1)),
                max_age_s=_number(config, "memory_flush_seconds", 2.0),
                on_error=self._write_failed,
                prepare=self._events,
            )
        activate(self.tap)
        self._intercepting = record_http_enabled(config)
        if self._intercepting:
            from testmem.memory import intercept

            intercept.install()

    # -- every process ------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self) -> Generator[None]:
        return (yield from self._in_phase("setup"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self) -> Generator[None]:
        return (yield from self._in_phase("call"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self) -> Generator[None]:
        return (yield from self._in_phase("teardown"))

    def _in_phase(self, phase: str) -> Generator[None]:
        """Exchanges know the phase they began in (a stream may end later)."""
        self.tap.phase, self.tap.fixture = phase, None
        try:
            return (yield)
        finally:
            self.tap.phase = None

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any]) -> Generator[None]:
        """Exchanges made while a fixture is set up or torn down name it: its
        finalizers run last in, first out, so the one added after its setup
        runs before its own teardown, the one added before, after it."""
        tap, name, outer = self.tap, fixturedef.argname, self.tap.fixture
        fixturedef.addfinalizer(lambda: setattr(tap, "fixture", outer))
        tap.fixture = name
        try:
            return (yield)
        finally:
            tap.fixture = outer
            fixturedef.addfinalizer(lambda: setattr(tap, "fixture", name))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        try:
            # Reports live until the session ends: hang on them only what
            # there is (fewer long-lived objects for the garbage collector).
            exchanges = self.tap.take(final=call.when == "teardown")
            if exchanges:
                report.testmem_exchanges = exchanges  # type: ignore[attr-defined]
            if call.when == "setup":
                report.testmem_item = _describe_item(item)  # type: ignore[attr-defined]
            if call.excinfo is not None and report.failed:
                failure = self._describe_exception(call.excinfo)
                # Redacted here, by the redactor that saw the test's exchanges
                # (an xdist worker's): it knows the secrets they carried.
                failure["traceback"] = self.redactor.text(report.longreprtext)
                report.testmem_failure = failure  # type: ignore[attr-defined]
        except Exception as exc:  # never let recording change the report
            self._errors.append(f"describing {item.nodeid}: {exc}")
        return report

    # -- controller only ------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.writer:
            self._emit(self._run_started(session))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.writer:
            self.writer.add(report)  # folded into events later, by `_events`

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if self.writer and report.failed:
            self._emit(self._failure(report, report.nodeid or "<collection>", "collect", 1, []))
            self._collect_errors += 1

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.writer:
            return
        for exchange in self.tap.take(final=True):  # made outside any test phase
            self._emit(self._exchange(exchange, None, None, 1))
        # session.exitstatus: what the process will exit with (quarantine may lower it).
        status = int(session.exitstatus)
        self.writer.add(_RunEnd(status, time.perf_counter() - self._started))
        # The last commit overlaps pytest's report of the failures; the
        # summary below (or `close`, without a terminal) waits for it.
        self.writer.finish()
        self._post_run_due = True

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.writer:
            return
        self._complete()
        for line in self.summary_lines():
            terminalreporter.write_line(line, yellow=bool(self.writer.lost or self._errors))

    def summary_lines(self) -> list[str]:
        assert self.writer is not None
        where = self.store.location
        if self.writer.lost:
            # Lost is lost: say how many, and that no triage ran on a partial record.
            total = self.writer.lost + self.writer.written
            skipped = " (post-run triage skipped)" if triage_enabled(self.config) else ""
            return [
                f"testmem: WARNING {self.writer.lost} of {total} events could not be written "
                f"to {where} and are lost{skipped}: {e}"
                for e in self._errors[:1]
            ]
        lines = [f"testmem: recorded run {self.run_id} ({self.writer.written} events) in {where}"]
        lines += self.config.hook.pytest_testmem_summary(config=self.config) or []
        problems = self._errors + self.tap.dropped
        if problems:
            lines.append(
                f"testmem: WARNING {len(problems)} things not recorded, first: {problems[0]}"
            )
        return lines

    def test_records(self) -> list[dict[str, Any]]:
        """The records of the tests that ever did anything but pass, this run
        left out (`History.test_records`), for the retry advisor: read by the
        store process where there is one (xdist's workers read it themselves)."""
        if self.store_process:
            return self.store_process.test_records(self.run_id)
        return advisor_records(self.store, self.run_id)

    def close(self) -> None:
        activate(self._previous_tap)
        if self._intercepting:
            from testmem.memory import intercept

            intercept.remove()
            self._intercepting = False
        if self.writer:
            self._complete()

    def _complete(self) -> None:
        """Wait for the last commit, then, once the whole run is in the store,
        hand it to post-run work (triage); once, whoever calls first."""
        assert self.writer is not None
        self.writer.close()
        if not self._post_run_due or self.writer.lost:
            return
        self._post_run_due = False
        try:
            self.config.hook.pytest_testmem_run_recorded(
                config=self.config, store=self.store, run_id=self.run_id
            )
        except Exception as exc:  # post-run work must not fail the run
            self._errors.append(f"post-run triage failed: {type(exc).__name__}: {exc}")

    # -- building events ------------------------------------------------------

    def _events(self, items: list[Any]) -> list[Event]:
        """The writer's ``prepare``: the events of what the hooks queued, in
        their order. Reports are folded into their tests' events here, on the
        writer's thread, a batch at a time: their code stays in the CPU's
        caches, where between two tests pytest's code would evict it."""
        events: list[Event] = []
        for item in items:
            try:
                if isinstance(item, Event):
                    events.append(item)
                elif isinstance(item, _RunEnd):
                    events.append(self._run_finished(item))
                else:
                    self._on_report(item, events)
            except Exception as exc:  # never let recording change the run
                self._errors.append(f"recording {getattr(item, 'nodeid', item)}: {exc}")
        return events

    def _on_report(self, report: pytest.TestReport, events: list[Event]) -> None:
        # Each attribute is read once: `nodeid`, `failed` and `skipped` are
        # computed on each access, and this runs three times per test.
        nodeid, when, outcome = report.nodeid, report.when, report.outcome
        state = self._tests.get(nodeid)
        if state is None:
            state = self._tests[nodeid] = _TestState()
        attempt = self._attempts.get(nodeid, 0) + 1
        if when == "setup":
            state.item = getattr(report, "testmem_item", state.item)
        state.duration_s += report.duration
        for exchange in getattr(report, "testmem_exchanges", ()):
            event = self._exchange(exchange, nodeid, exchange.get("phase") or when, attempt)
            state.exchanges.append(event)
            events.append(event)
        failed = outcome in _FAILED
        if failed:
            failure = self._failure(report, nodeid, when, attempt, state.exchanges)
            events.append(failure)
            retry = getattr(report, "testmem_retry", None)
            if retry:
                events.append(
                    Fact.of(
                        "RetryAttempted",
                        self.run_id,
                        nodeid=nodeid,
                        failure_id=failure.failure_id,
                        **retry,
                    )
                )
        _update_outcome(state, when, outcome, hasattr(report, "wasxfail"))
        if when != "setup" and when != "call":  # teardown, or a crashed worker's "???"
            events.append(self._finish_test(nodeid, report, state, attempt))

    def _finish_test(
        self, nodeid: str, report: pytest.TestReport, state: _TestState, attempt: int
    ) -> TestFinished:
        del self._tests[nodeid]
        self._attempts[nodeid] = attempt
        self._final[nodeid] = state.outcome
        item = state.item or _describe_location(report)
        return TestFinished(
            run_id=self.run_id,
            occurred_at=_ended_at(report),
            nodeid=nodeid,
            file=item["file"],
            function=item["function"],
            params=item["params"],
            markers=list(item["markers"]),
            outcome=state.outcome,
            phase=state.phase,
            duration_s=state.duration_s,
            attempt=attempt,
            worker=_worker_id(report),
        )

    def _run_finished(self, end: _RunEnd) -> RunFinished:
        counts = Counter(self._final.values())
        return RunFinished(
            run_id=self.run_id,
            exit_status=end.exit_status,
            duration_s=end.duration_s,
            passed=counts["passed"],
            failed=counts["failed"],
            errors=counts["error"] + self._collect_errors,
            skipped=counts["skipped"],
            xfailed=counts["xfailed"],
            xpassed=counts["xpassed"],
        )

    def _exchange(
        self, x: dict[str, Any], nodeid: str | None, phase: str | None, attempt: int
    ) -> HttpExchanged:
        return HttpExchanged(
            run_id=self.run_id,
            occurred_at=datetime.fromisoformat(x["occurred_at"]),
            exchange_id=x["exchange_id"],
            nodeid=nodeid,
            phase=phase,
            fixture=x.get("fixture"),
            attempt=attempt,
            method=x["method"],
            url=x["url"],
            route=x["route"],
            route_source=x.get("route_source"),
            status=x["status"],
            request_headers=x["request_headers"],
            request_body=Blob(**x["request_body"]) if x["request_body"] else Blob(None),
            response_headers=x["response_headers"],
            response_body=Blob(**x["response_body"]) if x["response_body"] else Blob(None),
            duration_s=x["duration_s"],
            error=x["error"],
        )

    def _failure(
        self,
        report: Any,
        nodeid: str,
        phase: str,
        attempt: int,
        exchanges: list[HttpExchanged],
    ) -> FailureObserved:
        self.failures += 1
        described = getattr(report, "testmem_failure", None) or self._describe_longrepr(report)
        crash = getattr(report.longrepr, "reprcrash", None)
        explained, rule = None, None
        try:  # a heuristic: whatever it meets, the failure is recorded
            if exchanges:
                explained, rule = explaining_exchange(described["message"], phase, exchanges)
        except Exception as exc:
            self._errors.append(f"explaining {nodeid}: {type(exc).__name__}: {exc}")
        return FailureObserved(
            run_id=self.run_id,
            occurred_at=_ended_at(report),
            failure_id=uuid7(),
            nodeid=nodeid,
            phase=phase,
            attempt=attempt,
            exception_type=described["exception_type"],
            message=described["message"],
            assertion=described.get("assertion"),
            crash_path=getattr(crash, "path", None),
            crash_line=getattr(crash, "lineno", None),
            traceback=Blob.of(
                described.get("traceback") or self.redactor.text(report.longreprtext), self.cap
            ),
            exchange_ids=[x.exchange_id for x in exchanges],
            exchange_id=explained,
            exchange_rule=rule,
        )

    def _describe_exception(self, excinfo: pytest.ExceptionInfo[BaseException]) -> dict[str, Any]:
        cls = excinfo.type
        module = cls.__module__
        name = (
            cls.__qualname__
            if module in ("builtins", "__main__")
            else f"{module}.{cls.__qualname__}"
        )
        message = self.redactor.text(str(excinfo.value))[: self.cap]
        first = message.splitlines()[0] if message else ""
        return {
            "exception_type": name,
            "message": message,
            "assertion": first if first.startswith("assert ") else None,
        }

    def _describe_longrepr(self, report: Any) -> dict[str, Any]:
        """Failure details when no exception was at hand (collection errors, xdist crashes)."""
        crash = getattr(report.longrepr, "reprcrash", None)
        message = self.redactor.text(getattr(crash, "message", None) or str(report.longrepr or ""))
        head, _, rest = message.partition(": ")
        is_type = bool(rest) and head.replace(".", "").replace("_", "").isalnum()
        return {"exception_type": head if is_type else "", "message": message[: self.cap]}

    def _run_started(self, session: pytest.Session) -> RunStarted:
        config = session.config
        build = _setting(config, "memory_build") or _ci_value(_BUILD_VARS)
        branch = _ci_value(_BRANCH_VARS)
        if not (build and branch):
            head, head_branch = _git_head(config.rootpath)
            build, branch = build or head, branch or head_branch
        return RunStarted(
            run_id=self.run_id,
            build=build,
            branch=branch,
            host=socket.gethostname(),
            rootdir=str(config.rootpath),
            python_version=platform.python_version(),
            pytest_version=pytest.__version__,
            args=self.redactor.args(config.invocation_params.args),
        )

    def _emit(self, event: Event) -> None:
        assert self.writer is not None
        self.writer.add(event)

    def _write_failed(self, error: StoreError, count: int) -> None:
        self._errors.append(str(error))


def _update_outcome(state: _TestState, when: str, outcome: str, xfail: bool) -> None:
    """Fold one phase's report into the test's outcome. ``outcome`` is the
    report's: passed, failed, skipped, or rerun (a retried attempt failed).
    Besides setup, call and teardown, ``when`` may be "???": pytest-xdist's
    one report of a test whose worker crashed, which ends the test."""
    failed = outcome in _FAILED
    if when == "setup":
        if failed:
            state.outcome, state.phase = "error", "setup"
        elif outcome == "skipped":
            state.outcome, state.phase = ("xfailed" if xfail else "skipped"), "setup"
    elif when == "teardown":
        if failed and state.outcome in ("passed", "skipped", "xfailed", "xpassed"):
            state.outcome, state.phase = "error", "teardown"
    else:
        if failed:
            state.outcome = "failed"
        elif outcome == "skipped":
            state.outcome = "xfailed" if xfail else "skipped"
        else:
            state.outcome = "xpassed" if xfail else "passed"
        state.phase = when


def _describe_item(item: pytest.Item) -> dict[str, Any]:
    callspec = getattr(item, "callspec", None)
    params = {k: _short_repr(v) for k, v in callspec.params.items()} if callspec else None
    function = getattr(item, "originalname", None) or item.name
    return {
        "file": item.location[0],
        "function": function,
        "params": json.dumps(params, ensure_ascii=False) if params else None,
        "markers": tuple(sorted({m.name for m in item.iter_markers()})),
    }


def _describe_location(report: pytest.TestReport) -> dict[str, Any]:
    """What `_describe_item` says, as far as a report tells it (when no setup
    report carried the item's description, e.g. a crashed xdist worker)."""
    file, _, domain = report.location
    return {"file": file, "function": domain, "params": None, "markers": ()}


def _short_repr(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _ci_value(names: tuple[str, ...]) -> str:
    return next((os.environ[n] for n in names if os.environ.get(n)), "")


def _git_head(cwd: Path) -> tuple[str, str]:
    """The commit and branch checked out at ``cwd`` ("" for what git cannot say)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD", "--abbrev-ref", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=3,
        )
    except (OSError, subprocess.SubprocessError):
        return "", ""
    lines = done.stdout.split() if done.returncode == 0 else []
    if len(lines) != 2:
        return "", ""
    commit, branch = lines
    return commit, "" if branch == "HEAD" else branch  # a detached HEAD has no branch


def _ended_at(report: pytest.TestReport | pytest.CollectReport) -> datetime:
    """When the report's phase ended: the recorder makes events of it later."""
    stop = getattr(report, "stop", 0)  # a CollectReport, or xdist's crash report, has none
    return datetime.fromtimestamp(stop, UTC) if stop else utcnow()


def _worker_id(report: pytest.TestReport) -> str | None:
    """xdist's worker id ("gw0") on the controller, None without xdist."""
    gateway = getattr(getattr(report, "node", None), "gateway", None)
    return getattr(gateway, "id", None)
