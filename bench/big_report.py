"""Reports over 1 M, 10 M and 100 M results (`bench.big_history`): the DuckDB
engine in this process against the Ray engine on a two-node cluster
(127.0.0.2 and .3, one CPU each), side by side, alternating which goes first;
and, with ``--s3 STORE``, `runs` / `history` / the report on S3 beside the
same store on the local disk (the store's files copied into SeaweedFS).

Every figure is a fresh `History` (the snapshot opened anew), in this process;
the Ray cluster is warmed up by one report first (its workers start then).
Both engines' reports are compared figure by figure, as the tests do.

    python -m bench.big_report bench/out/big-1m bench/out/big-10m bench/out/big-100m \\
        --rounds 2 --s3 bench/out/big-1m
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from tests.servers import ray_cluster, seaweedfs

UNTIL = date(2026, 1, 4)  # the last day of the generated year (bench.big_history.EPOCH + 363)


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def report(location: str, engine: str, weeks: int = 52) -> dict[str, Any]:
    from testmem.memory.query import History
    from testmem.memory.report import weekly_report
    from testmem.memory.store import Store

    history = History(Store.open(location))
    figures = weekly_report(history, weeks=weeks, until=UNTIL, tz="UTC", engine=engine)
    found = figures.to_dict()
    found.pop("generated_at")
    return dict(json.loads(json.dumps(found, default=str)))


def engines(location: str, rounds: int) -> dict[str, Any]:
    """Both engines' report over ``location``, ``rounds`` times each, alternating."""
    from tests.test_report_engines import disagreements

    times: dict[str, list[float]] = {"duckdb": [], "ray": []}
    reports: dict[str, Any] = {}
    for n in range(rounds):
        for engine in ("duckdb", "ray") if n % 2 == 0 else ("ray", "duckdb"):
            took, reports[engine] = timed(lambda e=engine: report(location, e))
            times[engine].append(round(took, 2))
    return {
        "results": results_in(location),
        **times,
        "ray/duckdb": round(min(times["ray"]) / min(times["duckdb"]), 3),
        "disagreements": disagreements(reports["ray"], reports["duckdb"]),
    }


def results_in(location: str) -> int:
    from testmem.memory.query import History
    from testmem.memory.store import Store

    return int(History(Store.open(location)).sql("SELECT count(*) FROM results").rows[0][0])


def reads(location: str) -> dict[str, float]:
    """`runs`, one test's `history` and the 8-week report, each a fresh `History`."""
    from testmem.memory.query import History
    from testmem.memory.store import Store

    def fresh() -> History:
        return History(Store.open(location))

    nodeid = fresh().sql("SELECT min(nodeid) FROM results").rows[0][0]
    return {
        "runs_s": timed(lambda: fresh().runs())[0],
        "history_s": timed(lambda: fresh().test_history(nodeid))[0],
        "report_s": timed(lambda: report(location, "duckdb", weeks=8))[0],
    }


def upload(root: Path, url: str) -> None:
    """Copy a local store's files (the table as it is) under ``url``."""
    import obstore

    from testmem.memory.lease import object_store

    objects = object_store(url)
    for path in sorted(p for p in (root / "events").rglob("*") if p.is_file()):
        obstore.put(objects, path.relative_to(root).as_posix(), path.read_bytes())


def s3_beside_local(root: Path, rounds: int, tmp: Path) -> dict[str, Any]:
    with seaweedfs(tmp / "s3") as s3:
        os.environ.update(s3.env())
        url = "s3://testmem/big"
        upload(root, url)
        figures: dict[str, list[dict[str, float]]] = {"s3": [], "local": []}
        for n in range(rounds):
            for name in ("s3", "local") if n % 2 == 0 else ("local", "s3"):
                figures[name].append(reads(url if name == "s3" else str(root)))
    best = {name: {k: min(r[k] for r in runs) for k in runs[0]} for name, runs in figures.items()}
    ratios = {k: round(best["s3"][k] / best["local"][k], 2) for k in best["s3"]}
    return {"results": results_in(str(root)), "best": best, "s3/local": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stores", nargs="*", type=Path, help="stores of bench.big_history")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--s3", type=Path, help="also read this store on S3 beside local")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.s3:
            print("s3 beside local", s3_beside_local(args.s3, args.rounds, Path(tmp)), flush=True)
        if args.stores:
            with ray_cluster(Path(tmp) / "ray") as address:
                os.environ["RAY_ADDRESS"] = address
                warm, _ = timed(lambda: report(str(args.stores[0]), "ray"))
                print(f"ray warm-up report: {warm:.1f} s", flush=True)
                for store in args.stores:
                    print(store, engines(str(store), args.rounds), flush=True)
                import ray

                ray.shutdown()
    print(f"load average at end: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
