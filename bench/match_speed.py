"""Warm match latency with 100,000 signatures indexed: Chroma vs a brute-force numpy scan.

One process, model loaded and embeddings cached (warm). The index holds
``--signatures`` records: the real embeddings of the labelled failures
(bench/failures/labelled.jsonl) jittered into near-duplicates, with their
structure, as a big store's index would. Each query is a labelled failure whose
signature is not indexed, so every decision goes the whole way: fingerprint,
cached embedding, k nearest, structural scoring. The alternative is the same
`Matcher` whose nearest-neighbour step is an exact numpy scan of all vectors
(what one would write without a vector index). Rounds alternate the two.

    python -m bench.match_speed --signatures 100000 --queries 200
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench import table
from bench.eval_matching import fingerprint_of, load
from testmem.memory.embed import Embedder
from testmem.memory.incidents import Known, Matcher
from testmem.memory.index import Neighbour, SignatureIndex, SignatureRecord
from testmem.memory.store import Store


class NumpyScan:
    """The index a user would write first: every vector, one matrix product."""

    def __init__(self, ids: list[str], matrix: np.ndarray) -> None:
        self.ids, self.matrix = ids, matrix
        self.rows = {s: i for i, s in enumerate(ids)}

    def exists(self) -> bool:
        return True

    def count(self) -> int:
        return len(self.ids)

    def nearest(self, vector: np.ndarray, k: int) -> list[Neighbour]:
        cosines = self.matrix @ vector
        top = np.argpartition(-cosines, k)[:k]
        return [Neighbour(self.ids[i], float(cosines[i])) for i in top]

    def vectors(self, signatures: list[str]) -> dict[str, np.ndarray]:
        return {s: self.matrix[self.rows[s]] for s in signatures if s in self.rows}


def synthetic_index(
    failures: list[dict[str, Any]], embedder: Embedder, n: int, seed: int = 7
) -> tuple[dict[str, SignatureRecord], list[str], np.ndarray]:
    """``n`` records jittered from the labelled failures' embeddings and structure."""
    rng = np.random.default_rng(seed)
    prints = list({fp.signature: fp for fp in map(fingerprint_of, failures)}.values())
    vectors = embedder.embed({fp.signature: fp.text for fp in prints})
    base = np.array([vectors[fp.signature] for fp in prints], dtype=np.float32)
    picks = rng.integers(0, len(prints), n)
    matrix = base[picks] + rng.normal(0, 0.02, (n, base.shape[1])).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    now = datetime.now(UTC)
    ids = [f"{i:016x}" for i in range(n)]
    records = {}
    for i, p in zip(ids, picks, strict=True):
        fp = prints[p]
        records[i] = SignatureRecord(
            i, f"INC-{i[-8:]}", (fp.test or "",), fp.route or "", fp.status,
            fp.exception_type, fp.method or "", now, now, 1, fp.keys,
        )  # fmt: skip
    return records, ids, matrix


def build_chroma(store: Store, records: dict[str, SignatureRecord], matrix: np.ndarray) -> float:
    index = SignatureIndex(store)
    started = time.perf_counter()
    index.reset()
    index.upsert(list(records.values()), dict(zip(records, matrix, strict=True)))
    return time.perf_counter() - started


def latencies(matcher: Matcher, queries: list[dict[str, Any]]) -> list[float]:
    out = []
    for failure in queries:
        started = time.perf_counter()
        matcher.decide(failure)
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signatures", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    failures = load()
    queries = [dict(f, failure_id=str(i)) for i, f in enumerate(failures[: args.queries])]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        embedder = Embedder(cache_dir=Path(tmp) / "embeddings")
        records, ids, matrix = synthetic_index(failures, embedder, args.signatures)
        build_s = build_chroma(store, records, matrix)
        matchers = {"chroma (testmem)": Matcher(store, embedder=embedder)}
        scan = Matcher(store, embedder=embedder)
        scan.index = NumpyScan(ids, matrix)  # type: ignore[assignment]
        matchers["numpy brute-force scan"] = scan
        for matcher in matchers.values():
            matcher.known = Known(
                signatures=records, incident_ids={r.incident_id for r in records.values()}
            )
            latencies(matcher, queries[:5])  # warm: caches, HNSW pages, BLAS threads
        timings: dict[str, list[float]] = {name: [] for name in matchers}
        for _ in range(args.rounds):
            for name, matcher in matchers.items():
                timings[name] += latencies(matcher, queries)
        agree = sum(
            matchers["chroma (testmem)"].decide(q).incident_id == scan.decide(q).incident_id
            for q in queries
        )
    chroma_p50 = float(np.median(timings["chroma (testmem)"]))
    rows = [
        (name, f"{np.median(t):.2f}", f"{np.percentile(t, 95):.2f}",
         f"{np.median(t) / chroma_p50:.1f}x")
        for name, t in timings.items()
    ]  # fmt: skip
    print(
        f"{args.signatures:,} signatures indexed (Chroma build {build_s:.0f} s); "
        f"{len(queries)} queries x {args.rounds} rounds; same decision {agree}/{len(queries)}"
    )
    print(table(["nearest step", "p50 ms", "p95 ms", "p50 vs chroma"], rows))


if __name__ == "__main__":
    main()
