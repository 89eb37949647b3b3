"""`testmem reindex` of 100,000 linked failures with many repeats, and a cold
`testmem similar` on a seen text.

The store holds ``--failures`` failures: the labelled failures
(bench/failures/labelled.jsonl) recurring run after run, each with its
``FailureLinked`` fact, as matching writes them. Compared in the same run:

- ``testmem reindex`` (a fresh process, empty embedding cache: the model loads)
  against what a user without recorded links would do: embed every failure
  and add it to Chroma. That alternative is timed on ``--sample`` failures and
  scaled to the whole store (stated as such in the output);
- a cold ``testmem similar`` on a text already seen (asked before, so its
  embedding is cached and the model never loads) against the same command
  the first time, on the unseen text.

    python -m bench.reindex_speed --failures 100000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import PYTHON, ROOT, Timing, table, timed
from bench.eval_matching import fingerprint_of, load
from testmem.memory.events import Event, FailureObserved, RunStarted, uuid7
from testmem.memory.incidents import cluster_failures
from testmem.memory.store import Store

RUN_SIZE = 500  # failures per recorded run


def write_store(root: Path, failures: list[dict[str, Any]], n: int) -> Store:
    """``n`` failures cycling through the labelled ones, linked as matching links them."""
    store = Store(root)
    links = cluster_failures(failures).links
    prints = [fingerprint_of(f) for f in failures]
    batch: list[Event] = []
    for start in range(0, n, RUN_SIZE):
        run_id = uuid7()
        batch.append(RunStarted(run_id=run_id, build=f"b{start // RUN_SIZE}"))
        for i in range(start, min(start + RUN_SIZE, n)):
            j = i % len(failures)
            failure = FailureObserved(
                run_id=run_id, failure_id=uuid7(), nodeid=failures[j]["nodeid"] or "",
                exception_type=failures[j]["exception_type"] or "",
                message=failures[j]["message"],
            )  # fmt: skip
            link = replace(links[j], failure_id=failure.failure_id, candidates=[])
            batch += [failure, link.fact(run_id, failure.nodeid, prints[j])]
        if len(batch) >= 20_000:
            store.events.append(batch)
            batch = []
    store.events.append(batch)
    return store


def naive_rate(failures: list[dict[str, Any]], sample: int, root: Path) -> float:
    """Seconds per failure to embed each one and add it to Chroma, one record each."""
    import chromadb

    from testmem.memory.embed import Embedder

    embedder = Embedder()
    texts = [fingerprint_of(failures[i % len(failures)]).text for i in range(sample)]
    embedder.embed({"warm": "load the model before timing"})
    started = time.perf_counter()
    vectors = embedder._encode(texts)  # every failure embedded: no signature cache
    client = chromadb.PersistentClient(str(root / "naive"))
    collection = client.get_or_create_collection("naive-failures", embedding_function=None)
    for i in range(0, sample, 4000):
        collection.add(
            ids=[str(k) for k in range(i, min(i + 4000, sample))],
            embeddings=vectors[i : i + 4000],
            documents=texts[i : i + 4000],
        )
    return (time.perf_counter() - started) / sample


def testmem(store: Store, *args: str, env: dict[str, str]) -> Timing:
    command = str(Path(PYTHON).parent / "testmem")  # the console script a user runs
    return timed([command, "--dir", str(store.root), *args], cwd=ROOT, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    failures = load()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        store = write_store(Path(tmp) / "store", failures, args.failures)
        print(f"wrote {args.failures:,} linked failures in {time.perf_counter() - started:.0f} s")
        reindexed = testmem(store, "reindex", env=env)
        again = testmem(store, "reindex", env=env)  # embeddings cached now
        per_failure = naive_rate(failures, args.sample, Path(tmp))
        text = failures[0]["message"]
        cold_unseen = testmem(store, "similar", text, env=env)  # the model loads
        seen = [testmem(store, "similar", text, env=env) for _ in range(3)]  # embedding cached
        cold_seen = sorted(seen, key=lambda t: t.wall_s)[1]  # the median of three
    naive_s = per_failure * args.failures
    print(table(
        ["what", "wall s", "CPU s", "vs testmem"],
        [
            ("testmem reindex (model loads, cold cache)", f"{reindexed.wall_s:.1f}",
             f"{reindexed.cpu_s:.1f}", "1.0x"),
            ("testmem reindex again (cached embeddings)", f"{again.wall_s:.1f}",
             f"{again.cpu_s:.1f}", f"{again.wall_s / reindexed.wall_s:.2f}x"),
            (f"embed + add every failure (scaled from {args.sample:,})", f"{naive_s:.0f}", "",
             f"{naive_s / reindexed.wall_s:.0f}x"),
            ("cold `testmem similar` on a seen text (median of 3)", f"{cold_seen.wall_s:.2f}",
             f"{cold_seen.cpu_s:.2f}", ""),
            ("cold `testmem similar` on an unseen text", f"{cold_unseen.wall_s:.2f}",
             f"{cold_unseen.cpu_s:.2f}", f"{cold_unseen.wall_s / cold_seen.wall_s:.1f}x seen"),
        ],
    ))  # fmt: skip


if __name__ == "__main__":
    main()
