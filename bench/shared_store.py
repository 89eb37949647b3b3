"""The shared store: many writers on S3, and reads and reports there, beside the local store.

Everything runs on loopback: SeaweedFS with two S3 gateways (`tests.servers`),
and for ``--ray`` a two-node Ray cluster on 127.0.0.2/.3.

1. Writers: N processes (spawned) each commit M batches of K events, half
   through each gateway, to one S3 store; then the same to one local store.
   Commits/s, testmem's commit retries, commit latency, events/s; and the
   log then holds exactly N*M*K distinct events (checked, not assumed).
2. Reads at R results (`bench.history`, synthetic, partitioned by day as
   recorded), on S3 and locally: `runs`, one test's `history`, the weekly
   report, each in a fresh `History` (cold: the snapshot is opened anew).
3. With ``--ray``: the weekly report by the DuckDB engine and by the Ray
   engine on the same S3 store.

    python -m bench.shared_store --writers 8 --commits 15 --results 1000000 --ray
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.servers import S3, ray_cluster, seaweedfs


def write(location: str, env: dict[str, str], commits: int, events: int, n: int) -> dict[str, Any]:
    os.environ.update(env)
    from testmem.memory.events import TestFinished
    from testmem.memory.store import Store

    log = Store(location).events
    latencies = []
    for c in range(commits):
        batch = [
            TestFinished(run_id=f"w{n}", nodeid=f"t{c}-{i}", outcome="passed")
            for i in range(events)
        ]
        started = time.perf_counter()
        log.append(batch)
        latencies.append(time.perf_counter() - started)
    return {"latencies": latencies, "retries": log.retries}


def writers(location: str, envs: list[dict[str, str]], commits: int, events: int) -> dict:
    from testmem.memory.events import RunStarted
    from testmem.memory.query import History
    from testmem.memory.store import Store

    os.environ.update(envs[0])
    Store(location).events.append([RunStarted(run_id="created")])
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(len(envs)) as pool:
        jobs = [(location, env, commits, events, n) for n, env in enumerate(envs)]
        results = pool.starmap(write, jobs)
    wall = time.perf_counter() - started
    total, distinct = (
        History(Store.open(location))
        .sql("SELECT count(*) - 1, count(DISTINCT event_id) - 1 FROM events")
        .rows[0]
    )
    latencies = sorted(x for r in results for x in r["latencies"])
    return {
        "commits": len(latencies),
        "wall_s": wall,  # includes each process's imports (~1 s)
        "commits_per_s": len(latencies) / wall,
        "events_per_s": len(latencies) * events / wall,
        "retries": sum(r["retries"] for r in results),
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "lost": len(envs) * commits * events - distinct,
        "doubled": total - distinct,
    }


def reads(location: str) -> dict[str, float]:
    from testmem.memory.query import History
    from testmem.memory.report import weekly_report
    from testmem.memory.store import Store

    def timed(work: Any) -> float:
        started = time.perf_counter()
        work(History(Store.open(location)))
        return time.perf_counter() - started

    nodeid = History(Store.open(location)).sql("SELECT any_value(nodeid) FROM results").rows[0][0]
    return {
        "runs_s": timed(lambda h: h.runs()),
        "history_s": timed(lambda h: h.test_history(nodeid)),
        "report_s": timed(lambda h: weekly_report(h, weeks=8, tz="UTC")),
    }


def synthetic(location: str, results: int) -> int:
    from bench.history import generate

    tests = 2000
    runs = max(1, results // tests)
    per_day = 14
    args = argparse.Namespace(
        tests=tests, days=max(1, runs // per_day), runs_per_day=per_day, exchange_share=0.5, seed=5
    )
    return generate(location, args)


def ray_report(location: str, address: str) -> dict[str, float]:
    from testmem.memory.query import History
    from testmem.memory.report import weekly_report
    from testmem.memory.store import Store

    os.environ["RAY_ADDRESS"] = address
    times = {}
    for engine in ("duckdb", "ray", "ray"):  # the first Ray report also starts its workers
        started = time.perf_counter()
        weekly_report(History(Store.open(location)), weeks=52, tz="UTC", engine=engine)
        times[engine if engine not in times else "ray_warm"] = time.perf_counter() - started
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=8, help="0: no writers part")
    parser.add_argument("--commits", type=int, default=15)
    parser.add_argument("--events", type=int, default=200, help="events per commit")
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--ray", action="store_true")
    parser.add_argument("--engines-only", action="store_true", help="only the S3 report engines")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, seaweedfs(Path(tmp) / "s3") as s3:
        report(s3, Path(tmp), args)


def report(s3: S3, tmp: Path, args: argparse.Namespace) -> None:
    os.environ.update(s3.env())
    os.environ["TESTMEM_CACHE_DIR"] = str(tmp / "cache")
    envs = [s3.env(n % 2) for n in range(args.writers)]
    for name, location, env in (
        ("s3", "s3://testmem/writers", envs),
        ("local", str(tmp / "writers"), [s3.env()] * args.writers),
    ):
        if not args.writers:
            break
        figures = writers(location, env, args.commits, args.events)
        print(name, "writers", {k: round(v, 2) for k, v in figures.items()}, flush=True)
    stores = [("s3", "s3://testmem/history"), ("local", str(tmp / "history"))]
    for name, location in stores[: 1 if args.engines_only else 2]:
        started = time.perf_counter()
        results = synthetic(location, args.results)
        print(name, f"generated {results:,} results in {time.perf_counter() - started:.0f} s")
        if not args.engines_only:
            print(name, "reads", {k: round(v, 2) for k, v in reads(location).items()}, flush=True)
    if args.ray:
        with ray_cluster(tmp / "ray") as address:
            print("s3 report engines", ray_report("s3://testmem/history", address), flush=True)


if __name__ == "__main__":
    main()
