"""Quarantine: tests that still run and are recorded, but whose failure does
not fail the session.

A quarantine is an event: a ``TestQuarantined`` fact (the node id; ``reason``,
``until`` and ``by`` in its detail) and a ``TestUnquarantined`` fact to end
it. ``DIR/quarantine.json`` is their projection, rebuilt from the log by
every change, so a session reads one small file when it starts (a store
without it has no quarantines until `testmem quarantine --list` rebuilds it).
A quarantine lapses by itself after its ``until`` day (UTC).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from testmem.memory.errors import NotFoundError, TestmemError
from testmem.memory.markup import terminal

if TYPE_CHECKING:
    from testmem.memory.store import Store

QUARANTINED = "TestQuarantined"
RELEASED = "TestUnquarantined"
PROJECTION = "quarantine.json"
FLAKY_DAYS = 14  # how long the flaky policy quarantines a test


@dataclass(frozen=True)
class Quarantine:
    nodeid: str
    reason: str
    until: str | None  # ISO date, the last day it holds; None: until lifted
    by: str = "user"  # "user" or "flaky policy"
    since: str = ""  # when it was set (ISO time)

    def active(self, today: date | None = None) -> bool:
        return self.until is None or (today or _today()) <= date.fromisoformat(self.until)

    @property
    def expiry(self) -> str:
        return f"until {self.until}" if self.until else "no expiry"


def _today() -> date:
    return datetime.now(UTC).date()


def quarantine(
    store: Store, nodeid: str, reason: str, until: date | None = None, by: str = "user"
) -> Quarantine:
    """Quarantine ``nodeid`` (again: the newest reason and expiry win)."""
    from testmem.memory.events import Fact

    if not reason.strip():
        raise TestmemError("a quarantine needs a reason (--reason TEXT)")
    if until is not None and until < _today():
        raise TestmemError(f"--until {until.isoformat()} is in the past")
    detail: dict[str, Any] = {"reason": reason, "until": until and until.isoformat(), "by": by}
    store.events.append([Fact.of(QUARANTINED, nodeid=nodeid, **detail)])
    return rebuild(store)[nodeid]


def unquarantine(store: Store, nodeid: str) -> None:
    from testmem.memory.events import Fact

    if nodeid not in active(rebuild(store)):
        raise NotFoundError(f"{nodeid!r} is not quarantined")
    store.events.append([Fact.of(RELEASED, nodeid=nodeid)])
    rebuild(store)


def quarantined(store: Store, today: date | None = None) -> dict[str, Quarantine]:
    """The quarantines in force, from the projection: no log read, no DuckDB."""
    try:
        saved = json.loads((store.root / PROJECTION).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return active({q["nodeid"]: Quarantine(**q) for q in saved}, today)


def active(every: dict[str, Quarantine], today: date | None = None) -> dict[str, Quarantine]:
    return {n: q for n, q in every.items() if q.active(today)}


def rebuild(store: Store) -> dict[str, Quarantine]:
    """Fold the log's quarantine facts into ``DIR/quarantine.json``."""
    from testmem.memory.query import History

    facts = (
        History(store)
        .sql(
            """SELECT type, nodeid, detail, occurred_at FROM facts
           WHERE type IN (?, ?) ORDER BY occurred_at, event_id""",
            [QUARANTINED, RELEASED],
        )
        .rows
    )
    every: dict[str, Quarantine] = {}
    for kind, nodeid, detail, occurred_at in facts:
        if kind == RELEASED:
            every.pop(nodeid, None)
            continue
        fields = json.loads(detail)
        every[nodeid] = Quarantine(
            nodeid, fields["reason"], fields.get("until"), fields.get("by", "user"),
            occurred_at.isoformat(),
        )  # fmt: skip
    _write(store.root / PROJECTION, [asdict(q) for q in every.values()])
    return every


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(records, out, ensure_ascii=False, indent=1)
    os.replace(temporary, path)


def quarantine_flaky(store: Store, days: float = FLAKY_DAYS) -> list[Quarantine]:
    """Quarantine, for ``days``, the tests `History.flaky` scores as flaky and
    that are not quarantined already."""
    from testmem.memory.query import History

    until = _today() + timedelta(days=days)
    held = active(rebuild(store))
    fresh = [r for r in History(store).flaky(limit=1000).dicts() if r["nodeid"] not in held]
    return [
        quarantine(store, r["nodeid"], _flaky_reason(r), until, by="flaky policy") for r in fresh
    ]


def _flaky_reason(record: dict[str, Any]) -> str:
    return (
        f"flaky over {record['runs']} runs: flip rate {record['flip_rate']:g}, "
        f"passed on retry {record['retry_pass_rate']:g}"
    )


class QuarantinedFailures:
    """A pytest plugin object: failures of quarantined tests do not fail the
    session (they stay failures in the log and the terminal), and the summary
    names them with their reason and expiry."""

    def __init__(self, store: Store, flaky_days: float | None) -> None:
        self.store = store
        self.flaky_days = flaky_days  # the flaky policy's expiry; None: policy off
        self.held: dict[str, Quarantine] = {}
        self.failed: dict[str, Quarantine] = {}
        self.other_failures = 0

    def pytest_sessionstart(self) -> None:
        self.held = quarantined(self.store)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.failed:  # a retried attempt ("rerun") is not a failure yet
            return
        held = self.held.get(report.nodeid)
        if held is None:
            self.other_failures += 1
        else:
            self.failed[report.nodeid] = held

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.other_failures += 1

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        only_quarantined = self.failed and not self.other_failures
        if only_quarantined and session.exitstatus == pytest.ExitCode.TESTS_FAILED:
            session.exitstatus = pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.failed:
            return
        terminalreporter.write_sep("-", f"testmem: {len(self.failed)} quarantined failures")
        for q in self.failed.values():
            terminalreporter.write_line(
                f"QUARANTINED {terminal(q.nodeid)} - {terminal(q.reason)} ({q.expiry})", yellow=True
            )

    @pytest.hookimpl(optionalhook=True)
    def pytest_testmem_run_recorded(self, store: Store) -> None:
        if self.flaky_days is not None:
            quarantine_flaky(store, self.flaky_days)
