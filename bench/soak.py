"""Crash soak: SIGKILL real `pytest --memory` runs, their post-run triage,
`testmem triage`, `testmem compact` and `testmem reindex` at random moments,
then check that nothing committed was lost and that triage stays exactly-once.

A *witness* thread in this process reads the event ids of the log's current
snapshot every few milliseconds while the victim runs; whatever it saw was
committed. After each kill the log must open, hold every witnessed event,
and hold every event exactly once. At the end `testmem reindex` must restore
the index and `testmem doctor` must find the store healthy.

Triage trials run a small suite whose failures are new to the store (server
errors with fresh wording, so triage opens incidents and files defects through
the file sink) and SIGKILL its triage (`TRIAGE_KILLS`): the session-end triage
of `pytest --memory` a random moment after the run's `RunFinished` is
committed, after its links are, or the moment its first defect is (filed
through a slow Jira, the fake of `tests/fakes.py`, so that the kill meets
the next defect's create in flight: a sent request whose answer never came);
and `testmem triage --run RUN` a random moment after its links are. The trial
reads from the log how far triage had got (`TriageState`: a kill that left
nothing to do did not land in triage), runs `testmem triage --run RUN` again
and checks that triage's facts are exactly-once (`triage_violations`).

    python -m bench.soak --trials 24 --triage-trials 12

The figures go to docs/RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.fakes import FakeJira

PYTHON = sys.executable
TESTMEM = [PYTHON, "-c", "from testmem.agents.cli import main; main()"]

SUITE = """
import random, time
import pytest

@pytest.mark.parametrize("n", range({tests}))
def test_user(api_client, n):
    time.sleep(random.random() * 0.02)
    response = api_client.get(f"/users/{{n}}", params={{"token": "t-{{n}}"}})
    assert response.status_code == 200
    assert n % 7 != 3, f"user {{n}} has no key 'email'"
"""
# Each triage trial writes this with parts no earlier trial used: new incidents.
TRIAGE_SUITE = """
import pytest

@pytest.mark.parametrize("n", range(3))
@pytest.mark.parametrize("part", {parts!r})
def test_part(api_client, part, n):
    response = api_client.get(f"/broken/{{part}}/{{n}}")
    assert response.status_code == 200, response.text
"""
INI = """
[pytest]
memory_flush_events = 15
memory_flush_seconds = 0.1
"""
_WORDS = [
    "amber", "basalt", "cobalt", "dune", "ember", "fjord", "garnet", "harbor", "indigo",
    "juniper", "kelp", "lagoon", "mesa", "nickel", "onyx", "prairie", "quartz", "reef",
    "sierra", "tundra", "umber", "violet", "willow", "xenon", "yarrow", "zephyr",
]  # fmt: skip
_FAULTS = (
    "database {part} deadlocked on ledger row {n}",
    "null reference in {part} serializer while rendering invoice {n}",
    "division by zero computing {part} totals for batch {n}",
    "cannot decode {part} payload: unexpected byte at offset {n}",
    "upstream {part} service returned malformed xml for order {n}",
    "stack overflow in {part} recursion depth {n}",
)


@dataclass
class Trial:
    kind: str  # record | compact | reindex | one of TRIAGE_KILLS
    killed_after_s: float  # after the victim's start, first commit, RunFinished or links
    witnessed: int  # events the witness saw committed before the kill
    lost: int  # witnessed events missing afterwards
    duplicated: int  # event ids present more than once afterwards
    events_after: int
    killed: bool = True  # False: the victim had finished before the kill was due
    run_id: str = ""  # triage trials: the run whose triage was killed
    phase: str = ""  # triage trials: how far triage had got (`TriageState.phase`)
    retriage_added: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)  # exactly-once broken, after re-triage

    @property
    def landed_in_triage(self) -> bool:
        """Killed while triage was running: it had work left that the log shows."""
        return self.killed and self.phase not in ("", "complete")


@dataclass
class Soak:
    store: Path
    suite: Path
    api_url: str
    trials: list[Trial] = field(default_factory=list)
    jira: FakeJira | None = None  # the tracker of the trials that file through one


def snapshot(store: Path) -> list[tuple[str, str, str]]:
    """(event id, type, run id) of every event of the current snapshot, duplicates kept
    (a recording run's spooled segments committed first, as every reader does)."""
    from deltalake import DeltaTable

    from testmem.memory.store import Store

    Store(store).events.settle()
    events = store / "events"
    if not (events / "_delta_log").is_dir():
        return []
    table = DeltaTable(str(events)).to_pyarrow_table(columns=["event_id", "type", "run_id"])
    columns = [table.column(c).to_pylist() for c in ("event_id", "type", "run_id")]
    return [(str(i), str(t), str(r or "")) for i, t, r in zip(*columns, strict=True)]


def event_ids(store: Path) -> list[str]:
    """Every event id of the current snapshot (duplicates kept, to count them)."""
    return [row[0] for row in snapshot(store)]


class Witness(threading.Thread):
    """Reads the snapshot over and over; `seen` holds every id it ever read,
    `arrivals` the (type, run id) of each event new since it started, in order."""

    def __init__(self, store: Path) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.seen: set[str] = set(event_ids(store))
        self.arrivals: list[tuple[str, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.look()
            self.stop.wait(0.02)

    def look(self) -> None:
        try:
            rows = snapshot(self.store)
        except Exception:  # a snapshot read racing a commit; read again
            rows = []
        new = [(t, r) for i, t, r in rows if i not in self.seen]
        self.seen.update(i for i, _, _ in rows)
        self.arrivals.extend(new)

    def wait_for(
        self,
        victim: subprocess.Popen[bytes],
        type: str = "",
        run_id: str = "",
        timeout: float = 300,
    ) -> str | None:
        """The run id of the first new event of ``type`` (any type if empty), once
        committed; None if the victim exits or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and victim.poll() is None:
            for t, r in list(self.arrivals):
                if (not type or t == type) and (not run_id or r == run_id):
                    return r
            time.sleep(0.005)
        return None


class _Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/broken/"):  # /broken/<part>/<n>: a server error
            part, n = self.path.split("/")[2:4]
            fault = _FAULTS[_WORDS.index(part.split("-")[0]) % len(_FAULTS)]
            text = f"{fault.format(part=part, n=n)} (request {uuid.uuid4()})"
            self._answer(500, "text/plain", text.encode())
        else:
            body = json.dumps({"path": self.path, "email": "a@example.com"}).encode()
            self._answer(200, "application/json", body)

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def serve_api() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    server.daemon_threads = True
    server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]  # killed clients
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def write_suite(root: Path, tests: int = 120) -> Path:
    suite = root / "suite"
    suite.mkdir(parents=True, exist_ok=True)
    (suite / "test_soak.py").write_text(textwrap.dedent(SUITE.format(tests=tests)))
    (suite / "pytest.ini").write_text(INI)
    return suite


def write_triage_suite(soak: Soak) -> Path:
    """The triage suite with three parts no earlier trial used (fresh signatures)."""
    suite = soak.suite.parent / "triage-suite"
    suite.mkdir(parents=True, exist_ok=True)
    used = sum(1 for t in soak.trials if t.kind.startswith("triage"))
    parts = [_part(3 * used + k) for k in range(3)]
    (suite / "test_triage_soak.py").write_text(textwrap.dedent(TRIAGE_SUITE.format(parts=parts)))
    (suite / "pytest.ini").write_text(INI)
    return suite


def _part(i: int) -> str:
    """The i-th of 650 distinct word pairs (no digits: route templates keep them)."""
    first = i % len(_WORDS)
    return f"{_WORDS[first]}-{_WORDS[(first + 1 + i // len(_WORDS)) % len(_WORDS)]}"


def pytest_command(soak: Soak, suite: Path | None = None, triage: bool = False) -> list[str]:
    return [
        PYTHON, "-m", "pytest", str(suite or soak.suite), "-q", "-p", "no:randomly",
        "-p", "no:cacheprovider", "--memory", "--memory-dir", str(soak.store),
        "--api-base-url", soak.api_url, "--memory-retries", "0",
        *([] if triage else ["--no-memory-triage"]),
    ]  # fmt: skip


def env(more: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        **(more or {}),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONDONTWRITEBYTECODE": "1",  # the triage suite is rewritten within a second
    }


# When to kill: wait for an anchor (returns its run id, "" for none, None if it
# never came), then the victim gets a random delay more.
Anchor = Callable[[Witness, "subprocess.Popen[bytes]"], str | None]


def no_anchor(witness: Witness, victim: subprocess.Popen[bytes]) -> str | None:
    return ""


def first_commit(witness: Witness, victim: subprocess.Popen[bytes]) -> str | None:
    """Start-up (imports) takes seconds: wait for the victim's first commit."""
    return witness.wait_for(victim, timeout=60)


def after(type: str, run_id: str = "") -> Anchor:
    """The run's first ``type`` event is committed (the run: the victim's, unless
    given); returns the run id even if that never happens, so the trial can tell why."""

    def anchor(witness: Witness, victim: subprocess.Popen[bytes]) -> str | None:
        run = run_id or witness.wait_for(victim, "RunFinished")
        if run and type != "RunFinished":
            witness.wait_for(victim, type, run)
        return run

    return anchor


def kill_at_random(
    soak: Soak,
    kind: str,
    command: list[str],
    window: tuple[float, float],
    anchor: Anchor,
    environment: dict[str, str] | None = None,
) -> Trial:
    """Start ``command``, SIGKILL it at a random moment of ``window`` (seconds
    after ``anchor``), then check the log."""
    witness = Witness(soak.store)
    witness.start()
    output = soak.store.parent / "victims" / f"{len(soak.trials):02d}-{kind}.log"
    output.parent.mkdir(exist_ok=True)
    with output.open("wb") as sink:  # kept for a look at what a victim was doing
        victim = subprocess.Popen(
            command, env=environment or env(), stdout=sink, stderr=subprocess.STDOUT
        )
    run_id = anchor(witness, victim) or ""
    delay = random.uniform(*window)
    killed = True
    try:
        victim.wait(timeout=delay)
        killed = False
    except subprocess.TimeoutExpired:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    witness.stop.set()
    witness.join()
    witness.look()  # a commit that landed just before the kill
    after = Counter(event_ids(soak.store))
    return Trial(
        kind=kind,
        killed_after_s=round(delay, 2),
        witnessed=len(witness.seen),
        lost=len(witness.seen - set(after)),
        duplicated=sum(1 for n in after.values() if n > 1),
        events_after=sum(after.values()),
        killed=killed,
        run_id=run_id,
    )


def record_trial(soak: Soak) -> Trial:
    return kill_at_random(soak, "record", pytest_command(soak), (0.0, 2.5), first_commit)


def compact_trial(soak: Soak) -> Trial:
    command = [*TESTMEM, "--dir", str(soak.store), "compact"]
    return kill_at_random(soak, "compact", command, (0.3, 4.0), no_anchor)


def reindex_trial(soak: Soak) -> Trial:
    command = [*TESTMEM, "--dir", str(soak.store), "reindex"]
    return kill_at_random(soak, "reindex", command, (1.0, 12.0), no_anchor)


# -- triage ----------------------------------------------------------------------


@dataclass(frozen=True)
class TriageKill:
    """Whose triage is killed, after which of its commits, and how long after."""

    cli: bool  # `testmem triage --run RUN` of a recorded run, else the session-end triage
    anchor: str  # the run's first event of this type is committed
    window: tuple[float, float]  # seconds after the anchor
    jira: bool = False  # defects go to a Jira that answers each request after `JIRA_ANSWERS_S`


# Measured on the busy 2-core machine: session-end triage writes its links
# 2-4 s after RunFinished (model, Chroma), its defects and decisions 1-2 s later.
TRIAGE_KILLS = {
    "triage": TriageKill(False, "RunFinished", (0.0, 6.0)),
    "triage-late": TriageKill(False, "FailureLinked", (0.0, 1.5)),
    "triage-defect": TriageKill(False, "DefectFiled", (0.0, 0.0), jira=True),
    "triage-cli": TriageKill(True, "FailureLinked", (0.0, 1.5)),
}
# Far longer than the witness takes to see a commit (tens of milliseconds).
JIRA_ANSWERS_S = 1.5


def triage_trial(soak: Soak, kind: str) -> Trial:
    """Kill a run's triage (see `TRIAGE_KILLS`), then check it with `check_triage`."""
    how = TRIAGE_KILLS[kind]
    suite = write_triage_suite(soak)
    run_id = record_untriaged(soak, suite) if how.cli else ""
    if how.cli:
        command = [*TESTMEM, "--dir", str(soak.store), "triage", "--run", run_id]
    else:
        command = pytest_command(soak, suite, triage=True)
    sink = {}
    if how.jira:
        soak.jira = soak.jira or FakeJira()
        soak.jira.hang_s = JIRA_ANSWERS_S
        sink = jira_env(soak.jira)
    anchor = after(how.anchor, run_id)
    trial = kill_at_random(soak, kind, command, how.window, anchor, env(sink))
    if soak.jira:
        soak.jira.hang_s = 0.0  # the re-triage's tracker answers at once
    return check_triage(soak, trial, sink)


def jira_env(jira: FakeJira) -> dict[str, str]:
    return {
        "TESTMEM_DEFECT_SINK": "jira",
        "TESTMEM_JIRA_URL": jira.url,
        "TESTMEM_JIRA_PROJECT": jira.project,
        "TESTMEM_JIRA_USER": jira.user,
        "TESTMEM_JIRA_TOKEN": jira.token,
    }


def record_untriaged(soak: Soak, suite: Path) -> str:
    before = set(event_ids(soak.store))
    subprocess.run(pytest_command(soak, suite), env=env(), capture_output=True)
    return next(r for i, t, r in snapshot(soak.store) if t == "RunFinished" and i not in before)


@dataclass(frozen=True)
class TriageState:
    """How far a run's triage got, read from the log (and the defect outbox)."""

    failures: int  # FailureObserved of the run
    linked: int  # of them with a FailureLinked
    tests: int  # failed tests of the run
    decided: int  # of them with a DecisionMade
    defects_filed: int  # DefectFiled facts of the run
    unfiled: int  # incidents the run escalated that have no DefectFiled
    outbox: int  # defect actions waiting

    @property
    def phase(self) -> str:
        if self.linked == 0:
            return "before links"
        if self.linked < self.failures:
            return "linking"
        if self.decided == 0:
            return "filing defects" if self.defects_filed else "after links"
        if self.decided < self.tests or self.unfiled or self.outbox:
            return "decided, hand-offs missing"
        return "complete"


def triage_state(store: Path, run_id: str) -> TriageState:
    from testmem.memory.query import History
    from testmem.memory.store import Store

    history = History(Store(store))
    row = history.sql(_STATE, [run_id] * 6).rows[0]
    outbox = store / "defects" / "outbox"
    pending = len(list(outbox.glob("*.json"))) if outbox.is_dir() else 0
    failures, links, tests, decisions, filed, unfiled = (int(v) for v in row)
    return TriageState(failures, links, tests, decisions, filed, unfiled, pending)


_STATE = """SELECT
    (SELECT count(DISTINCT failure_id) FROM failures WHERE run_id = ?),
    (SELECT count(DISTINCT failure_id) FROM facts WHERE type = 'FailureLinked' AND run_id = ?),
    (SELECT count(DISTINCT nodeid) FROM failures WHERE run_id = ?),
    (SELECT count(DISTINCT nodeid) FROM facts WHERE type = 'DecisionMade' AND run_id = ?),
    (SELECT count(*) FROM facts WHERE type = 'DefectFiled' AND run_id = ?),
    (SELECT count(DISTINCT incident_id) FROM facts
     WHERE type = 'DecisionMade' AND run_id = ? AND detail->>'$.action' = 'escalate'
       AND incident_id NOT IN (SELECT incident_id FROM facts
                               WHERE type = 'DefectFiled' AND incident_id IS NOT NULL))"""

# What exactly-once means for triage's facts, each query listing what breaks it.
_EXACTLY_ONCE = {
    "failure not linked exactly once": """
        SELECT f.failure_id, count(l.failure_id) FROM failures f
        LEFT JOIN facts l ON l.type = 'FailureLinked' AND l.failure_id = f.failure_id
        WHERE f.run_id = ? GROUP BY 1 HAVING count(l.failure_id) <> 1""",
    "failed test not decided exactly once": """
        SELECT f.nodeid, count(DISTINCT d.event_id) FROM failures f
        LEFT JOIN facts d ON d.type = 'DecisionMade' AND d.run_id = f.run_id
                         AND d.nodeid = f.nodeid
        WHERE f.run_id = ? GROUP BY 1 HAVING count(DISTINCT d.event_id) <> 1""",
    "escalation without a defect": """
        SELECT DISTINCT incident_id FROM facts
        WHERE type = 'DecisionMade' AND run_id = ? AND detail->>'$.action' = 'escalate'
          AND incident_id NOT IN (SELECT incident_id FROM facts
                                  WHERE type = 'DefectFiled' AND incident_id IS NOT NULL)""",
    "incident with two DefectFiled": """
        SELECT incident_id, count(*) FROM facts WHERE type = 'DefectFiled' AND ? <> ''
        GROUP BY 1 HAVING count(*) > 1""",
    "defect told the same occurrence count twice": """
        SELECT detail->>'$.defect_id', detail->>'$.occurrences', count(*) FROM facts
        WHERE type IN ('DefectFiled', 'DefectUpdated') AND ? <> ''
        GROUP BY 1, 2 HAVING count(*) > 1""",
    "heal proposed twice": """
        SELECT detail->>'$.heal_id', count(*) FROM facts WHERE type = 'HealProposed' AND ? <> ''
        GROUP BY 1 HAVING count(*) > 1""",
}


def triage_violations(store: Path, run_id: str, jira: FakeJira | None = None) -> list[str]:
    """Everything that breaks exactly-once for the run's triage, and for defects
    store-wide: in the file sink's files and in the Jira tracker's issues."""
    from testmem.memory.query import History
    from testmem.memory.store import Store

    history = History(Store(store))
    found = []
    for what, sql in _EXACTLY_ONCE.items():
        found += [f"{what}: {row}" for row in history.sql(sql, [run_id]).rows]
    filed = {r[0] for r in history.sql(_FILED, ["file"]).rows}
    files = {p.stem for p in (store / "defects").glob("*.md")}
    if files != filed:
        found.append(f"defect files {sorted(files - filed)} unknown to the log, "
                     f"{sorted(filed - files)} missing")  # fmt: skip
    if jira is not None:
        from testmem.agents.sinks import label

        marks = [m for i in jira.issues.values() for m in i["fields"]["labels"]]
        in_jira = sorted(m for m in marks if m.startswith("testmem-def-"))
        expected = sorted(label(d) for (d,) in history.sql(_FILED, ["jira"]).rows)
        if in_jira != expected:
            found.append(f"Jira holds {in_jira}, the log filed {expected} there")
    if (state := triage_state(store, run_id)).outbox:
        found.append(f"{state.outbox} defect actions left in the outbox")
    return found


_FILED = """SELECT DISTINCT detail->>'$.defect_id' FROM facts
            WHERE type = 'DefectFiled' AND detail->>'$.sink' = ?"""


def check_triage(soak: Soak, trial: Trial, sink: dict[str, str] | None = None) -> Trial:
    """Read how far the killed triage got, triage the run again (through the
    same ``sink``), check exactly-once."""
    if not trial.run_id:
        trial.violations.append("the anchor never came: no run to triage")
        return trial
    before = triage_state(soak.store, trial.run_id)
    trial.phase = before.phase
    again = run_cli(soak, "triage", "--run", trial.run_id, environment=env(sink))
    if again.returncode != 0:
        trial.violations.append(f"re-triage exit {again.returncode}: {again.stderr[-300:]}")
    after = triage_state(soak.store, trial.run_id)
    trial.retriage_added = {
        "links": after.linked - before.linked,
        "decisions": after.decided - before.decided,
        "defects": after.defects_filed - before.defects_filed,
    }
    trial.violations += triage_violations(soak.store, trial.run_id, soak.jira)
    return trial


# -- running ----------------------------------------------------------------------


def run_cli(
    soak: Soak, *args: str, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [*TESTMEM, "--dir", str(soak.store), *args]
    return subprocess.run(
        command, env=environment or env(), capture_output=True, text=True, timeout=600
    )


TRIALS: dict[str, Callable[[Soak], Trial]] = {
    "record": record_trial,
    "compact": compact_trial,
    "reindex": reindex_trial,
    **{kind: partial(triage_trial, kind=kind) for kind in TRIAGE_KILLS},
}


def run_soak(root: Path, plan: list[str], tests: int = 120) -> Soak:
    server = serve_api()
    soak = Soak(root / "store", write_suite(root, tests), f"http://127.0.0.1:{server.server_port}")
    try:
        for kind in plan:
            soak.trials.append(TRIALS[kind](soak))
        return soak
    finally:
        server.shutdown()
        server.server_close()
        if soak.jira:
            soak.jira.stop()


def plan_of(trials: int, triage_trials: int) -> list[str]:
    """Triage kills first (on a healthy index), then mostly recording runs:
    every fourth of those kills a compaction, every eighth a reindex."""
    triage = list(TRIAGE_KILLS)
    return [triage[n % len(triage)] for n in range(triage_trials)] + [
        "reindex" if n % 8 == 7 else "compact" if n % 4 == 3 else "record" for n in range(trials)
    ]


def report(soak: Soak) -> None:
    print(
        f"{'kind':<12} {'killed@s':>8} {'witnessed':>9} {'lost':>4} {'dup':>4} {'after':>6}  triage"
    )
    for t in soak.trials:
        triage = ""
        if t.kind.startswith("triage"):
            where = "LANDED" if t.landed_in_triage else "missed" if not t.killed else "after"
            triage = f"{where} {t.phase!r}; re-triage added {t.retriage_added}"
            triage += f"; VIOLATIONS {t.violations}" if t.violations else "; exactly-once ok"
        print(
            f"{t.kind:<12} {t.killed_after_s:>8} {t.witnessed:>9} {t.lost:>4} "
            f"{t.duplicated:>4} {t.events_after:>6}  {triage}"
        )
    triage_trials = [t for t in soak.trials if t.kind.startswith("triage")]
    landed = [t for t in triage_trials if t.landed_in_triage]
    print(f"trials: {len(soak.trials)} ({dict(Counter(t.kind for t in soak.trials))})")
    print(f"committed events lost: {sum(t.lost for t in soak.trials)}")
    print(f"duplicated event ids: {sum(t.duplicated for t in soak.trials)}")
    print(f"triage trials landed in triage: {len(landed)} of {len(triage_trials)} "
          f"(by kind {dict(Counter(t.kind for t in landed))}, "
          f"by phase {dict(Counter(t.phase for t in landed))})")  # fmt: skip
    print(f"triage exactly-once violations: {sum(len(t.violations) for t in triage_trials)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24, help="record/compact/reindex kills")
    parser.add_argument("--triage-trials", type=int, default=12, help="triage kills")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    random.seed(args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        soak = run_soak(Path(tmp), plan_of(args.trials, args.triage_trials))
        restored = run_cli(soak, "reindex")
        doctor = run_cli(soak, "doctor", "--repair", "--vacuum-hours", "0")
        report(soak)
        print(f"reindex afterwards: exit {restored.returncode}: {restored.stdout.strip()[-200:]}")
        print(f"doctor afterwards: exit {doctor.returncode}\n{doctor.stdout}")
        print(f"wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
