"""Every attempt in JUnit XML, the way Maven Surefire writes reruns.

A test that failed and passed on retry keeps its failed attempts as
``<flakyFailure>`` (``<flakyError>`` for setup or teardown); one that failed
every time has them as ``<rerunFailure>`` (``<rerunError>``) beside its final
``<failure>``. Each carries ``message``, ``type`` and a ``<stackTrace>`` child
(surefire-test-report-3.0.xsd), so CI tools that read JUnit see a
pass-on-retry as flaky instead of losing it.

`SurefireAttempts` adds them to pytest's own ``--junitxml`` file during the
run; `export_junit` writes a whole run from the log.
"""

from __future__ import annotations

import platform
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from testmem.memory.query import History
    from testmem.memory.redact import Redactor

# Children of <testcase> in the schema's sequence order.
_ORDER = [
    "failure",
    "rerunFailure",
    "flakyFailure",
    "skipped",
    "error",
    "rerunError",
    "flakyError",
    "system-out",
    "system-err",
]


@dataclass(frozen=True)
class Attempt:
    """One failed attempt of a test that was run again."""

    phase: str  # setup | call | teardown
    exception_type: str
    message: str
    stack_trace: str

    def element(self, final_passed: bool) -> ET.Element:
        kind = "flaky" if final_passed else "rerun"
        what = "Failure" if self.phase == "call" else "Error"
        node = ET.Element(
            kind + what, message=_xml_text(self.message), type=self.exception_type or "failure"
        )
        ET.SubElement(node, "stackTrace").text = _xml_text(self.stack_trace)
        return node


def _xml_text(text: str) -> str:
    """XML 1.0 cannot hold most control characters (nor lone surrogates), even escaped."""
    return "".join(c if _allowed(c) else f"\\x{ord(c):02x}" for c in text)


def _allowed(c: str) -> bool:
    return c in "\t\n\r" or " " <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c > "\uffff"


class SurefireAttempts:
    """A pytest plugin object beside pytest's junitxml (its ``LogXML``). It
    keeps each retried attempt's failure, drops the testcase junitxml makes
    for that attempt, and adds the attempts to the final attempt's testcase
    (whose ``<failure>`` gets the ``type`` the schema requires)."""

    def __init__(self, redactor: Redactor) -> None:
        self.xml: Any = None
        self.redactor = redactor
        self._attempts: dict[str, list[Attempt]] = {}
        self._rerun_now: set[str] = set()  # tests whose current attempt will run again
        self._failed_now: dict[str, str] = {}  # test -> exception type of this attempt

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from _pytest.junitxml import xml_key

        # Configured after this plugin, and only with --junitxml, in the controller.
        self.xml = session.config.stash.get(xml_key, None)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Any:
        if self.xml is None or (report.when != "teardown" and report.passed):
            return (yield)
        try:
            reporter = self._note(report)
        except Exception as exc:  # never break the run over the report
            reporter = None
            _warn(exc)
        result = yield
        try:
            if reporter is not None:
                self._close(report.nodeid, reporter)
        except Exception as exc:
            _warn(exc)
        return result

    def _note(self, report: pytest.TestReport) -> Any:
        """Note a failed attempt; at teardown, the testcase junitxml is writing."""
        nodeid = report.nodeid
        if report.outcome == "rerun":
            self._attempts.setdefault(nodeid, []).append(self._attempt(report))
            self._rerun_now.add(nodeid)
        elif report.failed:
            self._failed_now.setdefault(nodeid, _exception_type(report))
        return self.xml.node_reporter(report) if report.when == "teardown" else None

    def _close(self, nodeid: str, reporter: Any) -> None:
        """After junitxml finished a test's attempt: drop it if it runs again,
        else give its testcase the earlier attempts."""
        if nodeid in self._rerun_now:
            self._rerun_now.discard(nodeid)
            if reporter in self.xml.node_reporters_ordered:
                self.xml.node_reporters_ordered.remove(reporter)
            return
        failed = self._failed_now.pop(nodeid, None)
        case = reporter.to_xml()  # the finished element junitxml will write
        for child in case:
            if child.tag in ("failure", "error") and "type" not in child.attrib:
                child.set("type", failed or "failure")
        attempts = [a.element(failed is None) for a in self._attempts.pop(nodeid, [])]
        case[:] = in_schema_order(list(case) + attempts)

    def _attempt(self, report: pytest.TestReport) -> Attempt:
        described = getattr(report, "testmem_failure", None) or {}
        crash = getattr(report.longrepr, "reprcrash", None)
        message = described.get("message") or getattr(crash, "message", "") or ""
        return Attempt(
            phase=report.when or "call",
            exception_type=described.get("exception_type") or _exception_type(report),
            message=self.redactor.text(message),
            stack_trace=self.redactor.text(report.longreprtext),
        )


def _warn(exc: Exception) -> None:
    warnings.warn(pytest.PytestWarning(f"testmem: JUnit attempts not written: {exc}"), stacklevel=1)


def _exception_type(report: pytest.TestReport) -> str:
    """``AssertionError`` from pytest's crash line ``AssertionError: assert 1 == 2``."""
    described = getattr(report, "testmem_failure", None) or {}
    if described.get("exception_type"):
        return str(described["exception_type"])
    crash = getattr(getattr(report.longrepr, "reprcrash", None), "message", "") or ""
    head, colon, _ = crash.partition(":")
    return head if colon and head.replace(".", "").replace("_", "").isalnum() else "failure"


def in_schema_order(children: list[ET.Element]) -> list[ET.Element]:
    """``properties`` (pytest's) first, then the schema's sequence order."""
    rank = {tag: i for i, tag in enumerate(_ORDER)}
    return sorted(children, key=lambda node: rank.get(node.tag, -1))


# -- a run from the log -------------------------------------------------------

_FINAL = {"failed": "failure", "error": "error"}
_COUNTED = {"failed": "failures", "error": "errors", "skipped": "skipped", "xfailed": "skipped"}


def export_junit(history: History, run: str | None) -> str:
    """Run ``run`` (id, prefix or "latest") as a Surefire-style JUnit XML document."""
    run_id = history.resolve_run(run)
    summary = history.sql("SELECT * FROM runs WHERE run_id = ?", [run_id]).dicts()[0]
    results = history.sql(
        """SELECT nodeid, file, outcome, attempt, duration_s FROM results
           WHERE run_id = ? ORDER BY occurred_at""",
        [run_id],
    ).dicts()
    failures = history.sql(
        """SELECT nodeid, attempt, phase, exception_type, message, traceback FROM failures
           WHERE run_id = ? ORDER BY occurred_at""",
        [run_id],
    ).dicts()
    by_attempt = {(f["nodeid"], f["attempt"]): f for f in failures}
    finals = {r["nodeid"]: r for r in results}  # the last attempt wins
    suite = ET.Element("testsuite", name="testmem", time=f"{summary['duration_s'] or 0:.3f}")
    counts = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for final in finals.values():
        counts["tests"] += 1
        if final["outcome"] in _COUNTED:
            counts[_COUNTED[final["outcome"]]] += 1
        suite.append(_testcase(final, by_attempt))
    for name, count in counts.items():
        suite.set(name, str(count))
    suite.set("timestamp", summary["started_at"].isoformat() if summary["started_at"] else "")
    suite.set("hostname", summary.get("host") or platform.node())
    suites = ET.Element("testsuites", name=f"testmem run {run_id}")
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def _testcase(final: dict[str, Any], failures: dict[tuple[str, int], dict[str, Any]]) -> ET.Element:
    classname, name = junit_names(final["nodeid"])
    case = ET.Element(
        "testcase",
        classname=classname,
        name=_xml_text(name),
        file=final["file"] or "",
        time=f"{final['duration_s'] or 0:.3f}",
    )
    nodeid, last = final["nodeid"], final["attempt"]
    own = failures.get((nodeid, last))
    if final["outcome"] in _FINAL and own:
        node = ET.SubElement(
            case,
            _FINAL[final["outcome"]],
            message=_xml_text(own["message"] or ""),
            type=own["exception_type"] or "failure",
        )
        node.text = _xml_text(own["traceback"] or "")
    elif final["outcome"] in ("skipped", "xfailed"):
        ET.SubElement(case, "skipped", message=final["outcome"])
    passed = final["outcome"] in ("passed", "xpassed")
    earlier = [failures[(nodeid, n)] for n in range(1, last) if (nodeid, n) in failures]
    case.extend(_attempt_of(f).element(passed) for f in earlier)
    case[:] = in_schema_order(list(case))
    return case


def _attempt_of(failure: dict[str, Any]) -> Attempt:
    return Attempt(
        failure["phase"] or "call",
        failure["exception_type"] or "",
        failure["message"] or "",
        failure["traceback"] or "",
    )


def junit_names(nodeid: str) -> tuple[str, str]:
    """``classname`` and ``name`` of a node id, as pytest's junitxml makes them:
    ``tests/test_a.py::TestB::test_c[1]`` is ``tests.test_a.TestB`` and ``test_c[1]``."""
    address, bracket, params = nodeid.partition("[")
    names = address.split("::")
    names[0] = names[0].replace("/", ".").removesuffix(".py")
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]
