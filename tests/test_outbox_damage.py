"""Damaged outbox entries: `testmem defects flush` sets them aside (kept, in
outbox/damaged/) and says so; `testmem doctor` counts the same actions waiting
as flush leaves pending, and names the damaged ones."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from testmem.agents.cli import cli
from testmem.agents.defects import DefectReport, Outbox, _entry
from testmem.memory.doctor import check_outbox
from testmem.memory.events import RunStarted
from testmem.memory.store import Store

DAMAGED = {
    "create-def-000000000001.json": b"\x00\xffnot json",
    "create-def-000000000002.json": b"[]",
    "update-def-000000000003.json": b'{"action": "update"}',
}


def closed_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One real pending action (its Jira is down) and three damaged entries."""
    monkeypatch.setenv("TESTMEM_DEFECT_SINK", "jira")
    monkeypatch.setenv("TESTMEM_JIRA_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("TESTMEM_JIRA_PROJECT", "QA")
    monkeypatch.setenv("TESTMEM_JIRA_TOKEN", "t")
    directory = tmp_path / "store" / "defects" / "outbox"
    report = DefectReport(
        defect_id="def-0123456789ab", incident_id="INC-1", title="GET /x answers 500",
        severity="high", summary="s", reproduction=None, expected="200", actual="500",
        response=None, first_bad_build=None, last_good_build=None, occurrences=1,
        first_seen="", last_seen="",
    )  # fmt: skip
    Store.open(tmp_path / "store", must_exist=False).events.append([RunStarted(run_id="r1")])
    Outbox(directory).put(_entry("create", report))
    for name, content in DAMAGED.items():
        (directory / name).write_bytes(content)
    return tmp_path / "store"


def test_doctor_and_flush_agree_on_what_waits(outbox: Path) -> None:
    before = check_outbox(Store(outbox))
    assert before[0].startswith("1 defect actions waiting") and "3 damaged" in before[1]
    result = CliRunner().invoke(cli, ["--dir", str(outbox), "defects", "flush", "--json"])
    assert result.exit_code == 1, result.output  # the real action is still pending
    flushed = json.loads(result.stdout)
    assert flushed["pending"] == 1 and sum("damaged" in e for e in flushed["errors"]) == 3
    after = check_outbox(Store(outbox))
    assert after == [before[0]]  # the same one action waits; nothing damaged is left
    kept = outbox / "defects" / "outbox" / "damaged"
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == DAMAGED
