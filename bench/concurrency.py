"""Concurrency: four `pytest -n 2 --memory` runs, a `testmem compact` and a
`testmem report` on one store at once; then what the store holds is counted.

Each run plays the example suite (``examples/suite``, copied) against an
example shop API of its own on 127.0.0.1 (its own because the suite creates
orders and users: runs sharing one API would change the suite's outcome, not
the store's). Every API plays the order-total regression: GET /orders/{id}
answers 500 with a text full of volatile ids, so four tests of every run fail
with the same regression and the triage of every run wants to file its defect
(with the default file sink, ``DIR/defects``). Two more tests fail on purpose.
The APIs count the requests they answer: each one must be in the log exactly
once, as an ``HttpExchanged`` event. Midway through recording (after the
runs' 16th batch), `testmem compact` and `testmem report --out` (into a
folder that does not exist yet) start beside the runs.

    python -m bench.concurrency --rounds 3

`tests/test_concurrency.py` runs one round and checks it; the figures of
docs/RELIABILITY.md come from this script.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testmem.examples.shop_api import Build, ShopServer, serve

PYTHON = sys.executable
TESTMEM = [PYTHON, "-c", "from testmem.agents.cli import main; main()"]
SUITE = Path(__file__).resolve().parent.parent / "examples" / "suite"
BUILD = Build(label="v1.6.0", note="order total mismatch only", regression_order_total=True)
TESTS = 30  # in examples/suite
REGRESSION = (  # GET /orders/{id} answers 500 in each
    "suite/test_orders.py::test_get_order",
    "suite/test_orders.py::test_get_order_items",
    "suite/test_orders.py::test_order_total_is_as_invoiced",
    "suite/test_orders.py::test_order_total_is_the_sum_of_its_items",
)
FAILING = frozenset(
    {
        *REGRESSION,
        "suite/test_orders.py::test_create_order_with_unknown_sku_returns_404",  # on purpose
        "suite/test_users.py::test_get_user_phone_number",  # on purpose
    }
)
# Compact once the runs have written this many batches (spooled segments, or
# commits once something settled them): in the middle of recording, with
# triage's commits still to come.
COMPACT_AFTER_BATCHES = 16
# Small batches: many commits from five writers at once, not one per run.
INI = """
[pytest]
memory_flush_events = 10
memory_flush_seconds = 0.2
"""


@dataclass(frozen=True)
class Finished:
    """One process of the scenario, once it has ended."""

    name: str
    returncode: int
    started_s: float  # since the scenario started
    ended_s: float
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass(frozen=True)
class Scenario:
    store: Path
    report: Path
    runs: list[Finished]
    compact: Finished
    report_command: Finished
    served: int  # requests the APIs answered
    runs_running_at_launch: int  # pytest runs still going when compact and report started
    wall_s: float


class CountingShop:
    """An example shop API that counts the requests it answers."""

    def __init__(self, build: Build) -> None:
        self.server: ShopServer = serve(build)
        self.served = 0
        self._lock = threading.Lock()
        # testmem.examples.shop_api keeps its Shop private; wrapping `handle` counts
        # exactly the requests the API answered, whatever the client did.
        shop: Any = self.server._shop
        answer: Callable[..., Any] = shop.handle

        def counted(*args: Any) -> Any:
            with self._lock:
                self.served += 1
            return answer(*args)

        shop.handle = counted

    @property
    def url(self) -> str:
        return self.server.url


class _Started:
    def __init__(self, name: str, command: list[str], logs: Path, cwd: Path, t0: float) -> None:
        self.name, self.t0 = name, t0
        self.ended: float | None = None
        self.log = logs / f"{name}.log"
        self.err = logs / f"{name}.err"
        with self.log.open("w") as out, self.err.open("w") as err:  # files: no pipe to fill
            self.started = time.perf_counter() - t0
            self.popen = subprocess.Popen(command, cwd=cwd, env=env(), stdout=out, stderr=err)

    def finished(self) -> Finished:
        returncode = self.popen.wait()
        ended = self.ended if self.ended is not None else time.perf_counter() - self.t0
        out, err = self.log.read_text(errors="replace"), self.err.read_text(errors="replace")
        return Finished(self.name, returncode, round(self.started, 2), round(ended, 2), out, err)


def _wait_all(processes: list[_Started], timeout: float) -> None:
    """Wait for every process, noting when each ended; kill what outlives ``timeout``."""
    deadline = time.monotonic() + timeout
    while any(p.ended is None for p in processes) and time.monotonic() < deadline:
        for p in processes:
            if p.ended is None and p.popen.poll() is not None:
                p.ended = time.perf_counter() - p.t0
        time.sleep(0.05)
    for p in processes:
        if p.popen.poll() is None:
            p.popen.kill()


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def write_suite(root: Path) -> Path:
    """The example suite under ``root/suite``, with an ini that flushes often."""
    shutil.copytree(SUITE, root / "suite", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "pytest.ini").write_text(INI)
    return root / "suite"


def pytest_command(root: Path, store: Path, url: str, workers: int) -> list[str]:
    return [
        PYTHON, "-m", "pytest", str(root / "suite"), f"--rootdir={root}", "-n", str(workers),
        "-p", "no:cacheprovider", "-p", "no:randomly", "--memory", f"--memory-dir={store}",
        "--memory-build=v1.6.0", f"--api-base-url={url}",
    ]  # fmt: skip


def _batches(store: Path, runs: list[_Started], wanted: int, timeout: float) -> None:
    """Wait until the runs have written ``wanted`` batches (a local store's
    runs spool theirs: `testmem.memory.spool`), or every run has ended."""
    log, spool = store / "events" / "_delta_log", store / "spool"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        written = len(list(log.glob("*.json"))) + len(list(spool.glob("*.jsonl")))
        if written >= wanted or all(r.popen.poll() is not None for r in runs):
            return
        time.sleep(0.05)


def run_scenario(root: Path, runs: int = 4, workers: int = 2, timeout: float = 600) -> Scenario:
    """Start ``runs`` recorded runs at once, then compact and report beside them."""
    root.mkdir(parents=True, exist_ok=True)
    write_suite(root)
    store, report = root / "store", root / "artifacts" / "weekly" / "report.html"
    logs = root / "logs"
    logs.mkdir()
    apis = [CountingShop(BUILD) for _ in range(runs)]
    try:
        t0 = time.perf_counter()
        started = [
            _Started(f"run-{n}", pytest_command(root, store, api.url, workers), logs, root, t0)
            for n, api in enumerate(apis)
        ]
        _batches(store, started, COMPACT_AFTER_BATCHES, timeout)
        running = sum(r.popen.poll() is None for r in started)
        compacting = [*TESTMEM, "--dir", str(store), "compact", "--json"]
        compact = _Started("compact", compacting, logs, root, t0)
        reporting = [*TESTMEM, "--dir", str(store), "report", "--out", str(report)]
        report_command = _Started("report", reporting, logs, root, t0)
        everything = [*started, compact, report_command]
        _wait_all(everything, timeout)
        finished = [p.finished() for p in everything]
        wall = time.perf_counter() - t0
    finally:
        for api in apis:
            api.server.stop()
    return Scenario(
        store=store,
        report=report,
        runs=finished[:runs],
        compact=finished[runs],
        report_command=finished[runs + 1],
        served=sum(api.served for api in apis),
        runs_running_at_launch=running,
        wall_s=round(wall, 1),
    )


# -- what the store holds afterwards ------------------------------------------

# What the recorder writes (the rest are triage's facts).
RECORDED = ("RunStarted", "TestFinished", "HttpExchanged", "FailureObserved", "RunFinished")
_OUTCOMES_SQL = """
    SELECT run_id, nodeid, arg_max(outcome, attempt) FROM results GROUP BY ALL"""
_FILED_SQL = """
    SELECT incident_id, detail->>'$.defect_id' FROM facts WHERE type = 'DefectFiled'"""


@dataclass(frozen=True)
class Tally:
    """What the store holds after a scenario, as counted from the log and the files."""

    counts: dict[str, int]  # events by type
    events: int
    event_ids: int  # distinct
    exchange_ids: int  # distinct ids among HttpExchanged events
    recorded: dict[str, int]  # run id -> events the recorder wrote (`RECORDED`, and retries)
    outcomes: dict[str, dict[str, str]]  # run id -> test -> final outcome
    linked_failures: int  # distinct failures with a FailureLinked fact
    regression_incidents: set[str]  # the incidents the regression's failures were linked to
    filed: list[tuple[str, str]]  # (incident id, defect id) of every DefectFiled fact
    sink_files: Counter[str]  # files of the file sink by suffix
    sink_defects: set[str]  # defect ids named by those files
    outbox: int  # actions still waiting
    index_problems: list[str]  # index records that disagree with the log, or are not found

    @property
    def defects_per_incident(self) -> Counter[str]:
        return Counter(incident for incident, _ in self.filed)


def tally(store: Path) -> Tally:
    from testmem.memory.query import History
    from testmem.memory.store import Store

    history = History(Store.open(store))
    counts = dict(history.sql("SELECT type, count(*) FROM events GROUP BY 1").rows)
    total, distinct = history.sql("SELECT count(*), count(DISTINCT event_id) FROM events").rows[0]
    kinds = [*RECORDED, "RetryAttempted"]
    recorded = history.sql(
        "SELECT run_id, count(*) FROM events WHERE list_contains(?, type) GROUP BY 1", [kinds]
    ).rows
    outcomes: dict[str, dict[str, str]] = {}
    for run_id, nodeid, outcome in history.sql(_OUTCOMES_SQL).rows:
        outcomes.setdefault(run_id, {})[nodeid] = outcome
    regression = history.sql(
        "SELECT DISTINCT incident_id FROM facts WHERE type = 'FailureLinked' "
        "AND list_contains(?, nodeid)",
        [list(REGRESSION)],
    ).rows
    directory = store / "defects"
    files = [p for p in directory.glob("def-*") if p.is_file()]
    return Tally(
        counts=counts,
        events=total,
        event_ids=distinct,
        exchange_ids=history.sql("SELECT count(DISTINCT exchange_id) FROM exchanges").rows[0][0],
        recorded=dict(recorded),
        outcomes=outcomes,
        linked_failures=history.sql(
            "SELECT count(DISTINCT failure_id) FROM facts WHERE type = 'FailureLinked'"
        ).rows[0][0],
        regression_incidents={r[0] for r in regression},
        filed=[(i, d) for i, d in history.sql(_FILED_SQL).rows],
        sink_files=Counter(p.suffix for p in files),
        sink_defects={p.stem for p in files},
        outbox=len(list((directory / "outbox").glob("*.json"))),
        index_problems=index_problems(store, history),
    )


def index_problems(store: Path, history: Any) -> list[str]:
    """Index records whose incident is not the log's, and vectors that do not
    find themselves: what a damaged or interleaved index would show."""
    from testmem.memory.incidents import Known
    from testmem.memory.index import SignatureIndex
    from testmem.memory.store import Store

    known = Known.load(history)
    index = SignatureIndex(Store.open(store))
    records = index.records()
    problems = [f"{s}: not indexed" for s in known.signatures if s not in records]
    for signature, record in records.items():
        if signature not in known.signatures:
            problems.append(f"{signature}: indexed, unknown to the log")
        elif record["incident_id"] != known.live_record(signature).incident_id:
            problems.append(f"{signature}: indexed under {record['incident_id']}")
    for signature, vector in index.vectors(list(records)).items():
        # Signatures of one text (the same failure in other tests) share a
        # vector, so the search must find this one among all, at distance 0.
        found = {n.signature: n.cosine for n in index.nearest(vector, len(records))}
        if found.get(signature, 0.0) < 0.999:
            problems.append(f"{signature}: not found by its own vector")
    return problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    for n in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            s = run_scenario(Path(tmp), args.runs, args.workers)
            t = tally(s.store)
            doctor = subprocess.run(
                [*TESTMEM, "--dir", str(s.store), "doctor"], env=env(), capture_output=True
            )
            print(describe(n, s, t, doctor.returncode), flush=True)


def describe(round_: int, s: Scenario, t: Tally, doctor: int) -> str:
    said = sum(int(m[1]) for r in s.runs for m in re.finditer(r"\((\d+) events\)", r.output))
    most = max(t.defects_per_incident.values(), default=0)
    files = sum(t.sink_files.values())
    return "\n".join(
        [
            f"round {round_}: {s.wall_s} s; run exits {[r.returncode for r in s.runs]}, "
            f"ended at {[r.ended_s for r in s.runs]} s; compact exit {s.compact.returncode} "
            f"and report exit {s.report_command.returncode}, started at {s.compact.started_s} s "
            f"with {s.runs_running_at_launch} runs going",
            f"  events {t.events} ({t.event_ids} distinct ids); recorded {sum(t.recorded.values())}"
            f" (runs said {said}); RunStarted {t.counts.get('RunStarted', 0)}, TestFinished "
            f"{t.counts.get('TestFinished', 0)}, HttpExchanged {t.counts.get('HttpExchanged', 0)}"
            f" (APIs served {s.served})",
            f"  regression linked to {len(t.regression_incidents)} incident(s); DefectFiled "
            f"{len(t.filed)} (at most {most} per incident); sink files {files};"
            f" outbox {t.outbox}; doctor exit {doctor}; index problems {len(t.index_problems)}",
        ]
    )


if __name__ == "__main__":
    main()
