"""Crash soak: SIGKILL real `pytest --memory` runs, `testmem compact` and
`testmem reindex` at random moments, then check that nothing committed was lost.

A *witness* thread in this process reads the event ids of the log's current
snapshot every few milliseconds while the victim runs; whatever it saw was
committed. After each kill the log must open, hold every witnessed event,
and hold every event exactly once. At the end `testmem reindex` must restore
the index and `testmem doctor` must find the store healthy.

    python -m bench.soak --trials 24

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
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PYTHON = sys.executable
TESTMEM = [PYTHON, "-c", "from agents.cli import main; main()"]

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
INI = """
[pytest]
memory_flush_events = 15
memory_flush_seconds = 0.1
"""


@dataclass
class Trial:
    kind: str  # record | compact | reindex
    killed_after_s: float
    witnessed: int  # events the witness saw committed before the kill
    lost: int  # witnessed events missing afterwards
    duplicated: int  # event ids present more than once afterwards
    events_after: int


@dataclass
class Soak:
    store: Path
    suite: Path
    api_url: str
    trials: list[Trial] = field(default_factory=list)


def event_ids(store: Path) -> list[str]:
    """Every event id of the current snapshot (duplicates kept, to count them)."""
    from deltalake import DeltaTable

    events = store / "events"
    if not (events / "_delta_log").is_dir():
        return []
    table = DeltaTable(str(events)).to_pyarrow_table(columns=["event_id"])
    return [str(v) for v in table.column("event_id").to_pylist()]


class Witness(threading.Thread):
    """Reads the snapshot over and over; `seen` holds every id it ever read."""

    def __init__(self, store: Path) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.seen: set[str] = set(event_ids(store))
        self.grew = threading.Event()  # the victim committed its first batch
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                ids = set(event_ids(self.store))
            except Exception:  # a snapshot read racing a commit; read again
                ids = set()
            if ids - self.seen:
                self.grew.set()
            self.seen |= ids
            self.stop.wait(0.02)


class _Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "email": "a@example.com"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def serve_api() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]  # killed clients
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def write_suite(root: Path, tests: int = 120) -> Path:
    suite = root / "suite"
    suite.mkdir(parents=True, exist_ok=True)
    (suite / "test_soak.py").write_text(textwrap.dedent(SUITE.format(tests=tests)))
    (suite / "pytest.ini").write_text(INI)
    return suite


def pytest_command(soak: Soak) -> list[str]:
    return [
        PYTHON, "-m", "pytest", str(soak.suite), "-q", "-p", "no:randomly",
        "-p", "no:cacheprovider", "--memory", "--memory-dir", str(soak.store),
        "--api-base-url", soak.api_url, "--no-memory-triage", "--memory-retries", "0",
    ]  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def kill_at_random(
    soak: Soak, kind: str, command: list[str], window: tuple[float, float], from_commit: bool
) -> Trial:
    """Start ``command``, SIGKILL it at a random moment of ``window`` (seconds after
    its start, or after its first commit), then check the log."""
    witness = Witness(soak.store)
    witness.start()
    victim = subprocess.Popen(
        command, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    if from_commit:  # start-up (imports) takes seconds: kill while recording
        witness.grew.wait(timeout=60)
    delay = random.uniform(*window)
    try:
        victim.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    witness.stop.set()
    witness.join()
    witness.seen.update(event_ids(soak.store))  # a commit that landed just before the kill
    after = Counter(event_ids(soak.store))
    return Trial(
        kind=kind,
        killed_after_s=round(delay, 2),
        witnessed=len(witness.seen),
        lost=len(witness.seen - set(after)),
        duplicated=sum(1 for n in after.values() if n > 1),
        events_after=sum(after.values()),
    )


def record_trial(soak: Soak) -> Trial:
    return kill_at_random(soak, "record", pytest_command(soak), (0.0, 2.5), True)


def compact_trial(soak: Soak) -> Trial:
    command = [*TESTMEM, "--dir", str(soak.store), "compact"]
    return kill_at_random(soak, "compact", command, (0.3, 4.0), False)


def reindex_trial(soak: Soak) -> Trial:
    command = [*TESTMEM, "--dir", str(soak.store), "reindex"]
    return kill_at_random(soak, "reindex", command, (1.0, 12.0), False)


def run_cli(soak: Soak, *args: str) -> subprocess.CompletedProcess[str]:
    command = [*TESTMEM, "--dir", str(soak.store), *args]
    return subprocess.run(command, env=env(), capture_output=True, text=True, timeout=600)


def run_soak(root: Path, plan: list[str], tests: int = 120) -> Soak:
    server = serve_api()
    try:
        soak = Soak(
            root / "store", write_suite(root, tests), f"http://127.0.0.1:{server.server_port}"
        )
        trials = {"record": record_trial, "compact": compact_trial, "reindex": reindex_trial}
        for kind in plan:
            soak.trials.append(trials[kind](soak))
        return soak
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    random.seed(args.seed)
    # Mostly recording runs; every fourth trial kills a compaction, every eighth a reindex.
    plan = [
        "reindex" if n % 8 == 7 else "compact" if n % 4 == 3 else "record"
        for n in range(args.trials)
    ]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        soak = run_soak(Path(tmp), plan)
        restored = run_cli(soak, "reindex")
        doctor = run_cli(soak, "doctor", "--repair", "--vacuum-hours", "0")
        print(f"{'kind':<8} {'killed@s':>8} {'witnessed':>9} {'lost':>4} {'dup':>4} {'after':>6}")
        for t in soak.trials:
            print(
                f"{t.kind:<8} {t.killed_after_s:>8} {t.witnessed:>9} {t.lost:>4} "
                f"{t.duplicated:>4} {t.events_after:>6}"
            )
        print(f"trials: {len(soak.trials)} ({Counter(t.kind for t in soak.trials)})")
        print(f"committed events lost: {sum(t.lost for t in soak.trials)}")
        print(f"duplicated event ids: {sum(t.duplicated for t in soak.trials)}")
        print(f"reindex afterwards: exit {restored.returncode}: {restored.stdout.strip()[-200:]}")
        print(f"doctor afterwards: exit {doctor.returncode}\n{doctor.stdout}")
        print(f"wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
