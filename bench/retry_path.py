"""The retry path: testmem's in-run retry against pytest-rerunfailures, on the same flaky tests.

A 200-test suite calls a server on 127.0.0.1 with httpx: 180 tests pass, 15
are flaky (their first request answers 503, the next 200) and 5 fail for
real (404 where they expect 200). Side by side, in rotating order, each run
against a fresh server:

- plain pytest: the 20 failures stand;
- ``pytest --reruns 2`` (pytest-rerunfailures, testmem off): reruns every failure;
- ``pytest --memory --no-memory-triage``: retries what the memory judges
  transient (the 503s), not the 404s;
- ``pytest --memory``: the same, and triage at the end.

CPU time counts every process of a session (``RUSAGE_CHILDREN`` around it).

    python -m bench.retry_path --rounds 5
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import tempfile
import textwrap
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench import PYTHON, table
from bench.overhead import child_env

PASSING, FLAKY, BROKEN = 180, 15, 5
SUITE = """
import os

import httpx
import pytest

BASE = os.environ["BENCH_API"]


@pytest.mark.parametrize("n", range({passing}))
def test_item(n):
    assert httpx.get(f"{{BASE}}/items/{{n}}").status_code == 200


@pytest.mark.parametrize("n", range({flaky}))
def test_flaky_item(n):
    response = httpx.get(f"{{BASE}}/flaky/{{n}}")
    assert response.status_code == 200, f"GET /flaky/{{n}} answered {{response.status_code}}"


@pytest.mark.parametrize("n", range({broken}))
def test_missing_item(n):
    response = httpx.get(f"{{BASE}}/missing/{{n}}")
    assert response.status_code == 200, f"GET /missing/{{n}} answered {{response.status_code}}"
"""


class FlakyApi(ThreadingHTTPServer):
    """/flaky/N answers 503 to its first request and 200 after; /missing/N 404."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FlakyApi

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.seen[self.path] += 1
            first = self.server.seen[self.path] == 1
        status = 503 if self.path.startswith("/flaky/") and first else 200
        status = 404 if self.path.startswith("/missing/") else status
        body = b'{"id": 1}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def sides(work: Path) -> dict[str, list[str]]:
    pytest = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    memory = [*pytest, "--memory", f"--memory-dir={work / 'store'}"]
    return {
        "pytest": [*pytest, "-p", "no:testmem", "-p", "no:rerunfailures"],
        "pytest --reruns 2 (pytest-rerunfailures)": [*pytest, "-p", "no:testmem", "--reruns", "2"],
        "pytest --memory --no-memory-triage": [*memory, "--no-memory-triage"],
        "pytest --memory": [*memory, "-p", "no:rerunfailures"],
    }


def session(command: list[str], suite: Path) -> tuple[float, float, str]:
    """Wall and CPU seconds of one session against a fresh server, and its outcome line."""
    with FlakyApi() as api:
        threading.Thread(target=api.serve_forever, daemon=True).start()
        env = {**child_env(), "BENCH_API": api.url}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, cwd=suite, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        api.shutdown()
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    outcome = re.findall(r"\d+ (?:failed|passed|rerun)", done.stdout.splitlines()[-1])
    return wall, cpu, ", ".join(outcome)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="testmem-retry-path-") as tmp:
        work = Path(tmp)
        suite = work / "suite"
        suite.mkdir()
        (suite / "pytest.ini").write_text("[pytest]\n")
        source = SUITE.format(passing=PASSING, flaky=FLAKY, broken=BROKEN)
        (suite / "test_flaky.py").write_text(textwrap.dedent(source))
        names = list(sides(work))
        runs: dict[str, list[tuple[float, float, str]]] = {name: [] for name in names}
        for n in range(args.rounds + 1):  # round 0 warms the caches
            for name in names[n % len(names) :] + names[: n % len(names)]:
                subprocess.run(["rm", "-rf", str(work / "store")], check=True)
                result = session(sides(work)[name], suite)
                if n:
                    runs[name].append(result)
        base_wall = statistics.median(r[0] for r in runs["pytest"])
        base_cpu = statistics.median(r[1] for r in runs["pytest"])
        rows = []
        for name, results in runs.items():
            wall = statistics.median(r[0] for r in results)
            cpu = statistics.median(r[1] for r in results)
            rows.append(
                [name, results[-1][2], f"{wall:.2f}", f"{wall / base_wall:.2f}",
                 f"{cpu:.2f}", f"{cpu / base_cpu:.2f}"]
            )  # fmt: skip
        print(table(["session", "outcome", "wall s", "x plain", "CPU s", "x plain"], rows))


if __name__ == "__main__":
    main()
