"""Recording HTTP exchanges: what it costs, side by side with the alternatives.

1. ``suite``: an exchange-heavy suite (a FastAPI app in-process, called
   through Starlette's ``TestClient``, ``--tests`` tests of ``--per-test``
   exchanges each) run as plain pytest (``-p no:testmem``), with
   pytest-reportlog and with ``pytest --memory`` (automatic recording),
   interleaved round by round, with ``--xdist N`` under ``-n N``. CPU is the
   test process's and every process it started (xdist's workers, a store
   process: `bench.timed` counts the children it waited for); what the spool
   defers to the next reader is measured after the rounds.
2. ``per exchange``: CPU of the test process per exchange (``time.process_time``,
   every thread), one fresh process per variant, over httpx's ASGITransport:
   no recording, testmem's interception and tap (capture, redaction, the
   exchange as data), and vcrpy recording a cassette (``record_mode="all"``,
   its default YAML serializer, the cassette written at the end).

    python -m bench.recording --rounds 5
    python -m bench.recording --rounds 5 --xdist 2
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import textwrap
from pathlib import Path

from bench import PYTHON, Timing, median, table, timed
from bench.overhead import RECORDING, settle_cost, settle_report

APP = """
from fastapi import FastAPI

app = FastAPI()


@app.get("/profiles/{name}")
def profile(name: str):
    return {"name": name, "bio": "x" * 200, "tags": ["a", "b", "c"]}


@app.post("/orders")
def order(body: dict):
    return {"id": 1, **body}
"""

CONFTEST = """
import pytest
from starlette.testclient import TestClient

from app import app


@pytest.fixture(scope="session")
def client():
    with TestClient(app) as client:
        yield client
"""

TEST = """
import pytest


@pytest.mark.parametrize("n", range({tests}))
def test_profile(client, n):
    for i in range({per_test} // 2):
        assert client.get(f"/profiles/user{{n}}-{{i}}").status_code == 200
        assert client.post("/orders", json={{"sku": n, "qty": i}}).json()["sku"] == n
"""


def write_suite(root: Path, tests: int, per_test: int) -> Path:
    suite = root / "suite"
    suite.mkdir()
    (suite / "app.py").write_text(APP)
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_api.py").write_text(TEST.format(tests=tests, per_test=per_test))
    (suite / "pytest.ini").write_text("[pytest]\naddopts = -p no:randomly -p no:cacheprovider\n")
    return suite


def suite_commands(root: Path, extra: list[str]) -> dict[str, list[str]]:
    pytest = [PYTHON, "-m", "pytest", "-q", *extra]
    return {
        "pytest -p no:testmem": [*pytest, "-p", "no:testmem"],
        "pytest --report-log": [*pytest, "-p", "no:testmem", f"--report-log={root / 'log.jsonl'}"],
        "pytest --memory --memory-retries=0 --no-memory-triage": [
            *pytest, "--memory", "--memory-retries=0", "--no-memory-triage",
            f"--memory-dir={root / 'store'}",
        ],
        "pytest --memory --no-memory-triage": [
            *pytest, "--memory", "--no-memory-triage", f"--memory-dir={root / 'advised'}",
        ],
        # The same without interception: the run's fixed cost (the store
        # process, its imports, the events of tests), so the rest is the exchanges'.
        "pytest --memory ... -o memory_record_http=false": [
            *pytest, "--memory", "--memory-retries=0", "--no-memory-triage",
            "-o", "memory_record_http=false", f"--memory-dir={root / 'off'}",
        ],
    }  # fmt: skip


def suite_overhead(
    root: Path, rounds: int, tests: int, per_test: int, extra: list[str]
) -> dict[str, list[Timing]]:
    suite = write_suite(root, tests, per_test)
    commands = suite_commands(root, extra)
    names = list(commands)
    for command in commands.values():  # warm up: byte-compile, create the store
        timed(command, cwd=suite)
    timings: dict[str, list[Timing]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            timings[name].append(timed(commands[name], cwd=suite))
    return timings


def recorded_exchanges(store: Path) -> list[int]:
    from testmem.memory.query import History
    from testmem.memory.store import Store

    rows = (
        History(Store.open(store))
        .sql("SELECT count(*) FROM exchanges GROUP BY run_id ORDER BY min(occurred_at)")
        .rows
    )
    return [int(n) for (n,) in rows]


LOOP = """
import asyncio, sys, time
import httpx
sys.path.insert(0, {suite!r})
from app import app

mode, n, cassette = sys.argv[1], int(sys.argv[2]), sys.argv[3]

async def exchanges():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        for i in range(n):
            await client.get(f"/profiles/user{{i}}")

async def main():
    await exchanges()  # warm up
    if mode == "testmem":
        from testmem.memory import intercept
        from testmem.memory.tap import Tap, activate
        tap = Tap()
        activate(tap)
        intercept.install()
        start = time.process_time()
        await exchanges()
        taken = tap.take(final=True)
        assert len(taken) == n, len(taken)
    elif mode == "vcrpy":
        import vcr
        start = time.process_time()
        with vcr.use_cassette(cassette, record_mode="all"):
            await exchanges()
    else:
        start = time.process_time()
        await exchanges()
    print(time.process_time() - start)

asyncio.run(main())
"""


def per_exchange(root: Path, n: int, repeats: int) -> dict[str, float]:
    """CPU microseconds per exchange in the test process, recording minus not."""
    suite = root / "suite"
    script = root / "loop.py"
    script.write_text(textwrap.dedent(LOOP.format(suite=str(suite))))
    cpu: dict[str, list[float]] = {"none": [], "testmem": [], "vcrpy": []}
    for r in range(repeats):
        for mode in cpu:
            cassette = str(root / f"cassette-{r}.yaml")
            done = subprocess.run(
                [PYTHON, str(script), mode, str(n), cassette],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            cpu[mode].append(float(done.stdout.strip()))
    base = median(cpu["none"])
    costs = {mode: (median(v) - base) / n * 1e6 for mode, v in cpu.items()}
    return costs | {"base": base / n * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tests", type=int, default=100)
    parser.add_argument("--per-test", type=int, default=6)
    parser.add_argument("--exchanges", type=int, default=2000)
    parser.add_argument("--per-exchange-only", action="store_true")
    parser.add_argument("--xdist", type=int, default=0, help="run every variant with -n N")
    args = parser.parse_args()
    extra = ["-n", str(args.xdist)] if args.xdist else []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.per_exchange_only:
            write_suite(root, args.tests, args.per_test)
            print_costs(per_exchange(root, args.exchanges, 3), args.exchanges)
            return
        timings = suite_overhead(root, args.rounds, args.tests, args.per_test, extra)
        recording = suite_commands(root, extra)[RECORDING]
        deferred = settle_cost(root / "store", recording, root / "suite")
        base = timings["pytest -p no:testmem"]
        rows = []
        for name, runs in timings.items():
            cpu_ratio = median([t.cpu_s / b.cpu_s for t, b in zip(runs, base, strict=True)])
            wall_ratio = median([t.wall_s / b.wall_s for t, b in zip(runs, base, strict=True)])
            rows.append([f"`{name}`", f"{median([t.wall_s for t in runs]):.2f}",
                         f"{wall_ratio:.3f}", f"{median([t.cpu_s for t in runs]):.2f}",
                         f"{cpu_ratio:.3f}"])  # fmt: skip
        print(f"exchanges recorded per run: {recorded_exchanges(root / 'store')}")
        header = ["variant", "wall s", "wall ratio", "CPU s (all processes)", "CPU ratio"]
        print(table(header, rows))
        print(settle_report(deferred))
        print_costs(per_exchange(root, args.exchanges, 3), args.exchanges)


def print_costs(costs: dict[str, float], n: int) -> None:
    print(f"\nper exchange, {n} exchanges over ASGITransport (median of 3):")
    print(table(
        ["variant", "CPU µs per exchange (test process)"],
        [["plain exchange (no recording)", f"{costs['base']:.0f}"],
         ["testmem (interception + tap)", f"+{costs['testmem']:.0f}"],
         ["vcrpy (cassette, record_mode=all)", f"+{costs['vcrpy']:.0f}"]],
    ))  # fmt: skip


if __name__ == "__main__":
    main()
