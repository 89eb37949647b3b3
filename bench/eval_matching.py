"""Matching quality on the labelled failure set: signature-only vs. full matching.

Prints, for each clusterer, over all pairs of failures:
  pairwise precision  of the pairs put in one cluster, the share that share a cause
  pairwise recall     of the pairs that share a cause, the share put in one cluster
  grouping accuracy   the adjusted Rand index of clusters vs. causes (1 = identical
                      partitions, ~0 = chance); unlike purity it punishes over-splitting

A clusterer is any ``cluster(failures) -> list[cluster_id]`` over the records of
bench/failures/labelled.jsonl (fields message, exception_type, traceback, nodeid,
method, route, status; ``cause`` is hidden from it). Full matching is the
incident matcher's, given with ``--matcher module:function`` (with ``--sweep``,
the function is called with ``same=`` each threshold); without it, an online
clusterer over `Embedder` and `structure_score` that scores every past
signature (no k nearest) stands in.

    .venv/bin/python bench/eval_matching.py [--threshold 0.83] [--sweep] [--matcher mod:fn]
        [--file held-out.jsonl]
    .venv/bin/python bench/eval_matching.py --matcher testmem.memory.incidents:evaluation_clusters
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from math import comb
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testmem.memory.embed import Embedder
from testmem.memory.fingerprint import Fingerprint, fingerprint, structure_score

LABELLED = Path(__file__).parent / "failures" / "labelled.jsonl"
FIELDS = ("message", "exception_type", "traceback", "nodeid", "method", "route", "status")

Failure = dict[str, Any]
Clusterer = Callable[[list[Failure]], Sequence[Hashable]]


def load(path: Path = LABELLED) -> list[Failure]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def scores(causes: Sequence[Hashable], clusters: Sequence[Hashable]) -> dict[str, float]:
    """Pairwise precision and recall, and the adjusted Rand index, from pair counts."""
    both = sum(comb(n, 2) for n in Counter(zip(causes, clusters, strict=True)).values())
    same_cause = sum(comb(n, 2) for n in Counter(causes).values())
    same_cluster = sum(comb(n, 2) for n in Counter(clusters).values())
    expected = same_cause * same_cluster / comb(len(causes), 2)
    mean = (same_cause + same_cluster) / 2
    return {
        "precision": both / same_cluster if same_cluster else 1.0,
        "recall": both / same_cause if same_cause else 1.0,
        "ari": (both - expected) / (mean - expected) if mean != expected else 1.0,
        "clusters": float(len(set(clusters))),
    }


def evaluate(failures: list[Failure], cluster: Clusterer) -> dict[str, float]:
    hidden = [{k: f.get(k) for k in FIELDS} for f in failures]
    return scores([f["cause"] for f in failures], list(cluster(hidden)))


@functools.cache
def _fingerprint(
    message: str, exception_type: str, traceback: str, nodeid: str | None,
    method: str | None, route: str | None, status: int | None,
) -> Fingerprint:  # fmt: skip
    return fingerprint(
        message, exception_type=exception_type, traceback=traceback, nodeid=nodeid,
        method=method, route=route, status=status,
    )  # fmt: skip


def fingerprint_of(failure: Failure) -> Fingerprint:
    """The failure's fingerprint, computed once per distinct failure."""
    return _fingerprint(*(failure.get(k) or ("" if k in FIELDS[:3] else None) for k in FIELDS))


def by_signature(failures: list[Failure]) -> list[str]:
    return [fingerprint_of(f).signature for f in failures]


def by_similarity(embedder: Embedder, threshold: float) -> Clusterer:
    """Online clustering: exact signature first, else the best past signature whose
    cosine plus structural agreement reaches ``threshold``, else a new cluster."""
    import numpy as np

    def cluster(failures: list[Failure]) -> list[int]:
        prints = [fingerprint_of(f) for f in failures]
        vectors = embedder.embed({p.signature: p.text for p in prints})
        seen: dict[str, int] = {}  # signature -> cluster
        known: list[Fingerprint] = []
        matrix = np.zeros((len(vectors), 384), dtype=np.float32)
        labels = []
        for p in prints:
            if p.signature not in seen:
                query = np.asarray(vectors[p.signature], dtype=np.float32)
                cosines = matrix[: len(known)] @ query
                seen[p.signature] = _nearest(p, known, cosines, seen, threshold)
                matrix[len(known)] = query
                known.append(p)
            labels.append(seen[p.signature])
        return labels

    return cluster


def _nearest(
    p: Fingerprint, known: list[Fingerprint], cosines: Any, seen: dict[str, int], threshold: float
) -> int:
    """The cluster of the best-scoring known signature, or a new cluster."""
    best, best_score = -1, threshold
    for i, cosine in enumerate(cosines):
        score = float(cosine) + structure_score(p, known[i])
        if score >= best_score:
            best, best_score = i, score
    return seen[known[best].signature] if best >= 0 else len(set(seen.values()))


def load_matcher(spec: str) -> Callable[..., Sequence[Hashable]]:
    module, _, name = spec.partition(":")
    matcher: Callable[..., Sequence[Hashable]] = getattr(
        importlib.import_module(module), name or "cluster"
    )
    return matcher


def report(name: str, figures: dict[str, float]) -> None:
    print(
        f"{name:<34} precision {figures['precision']:.3f}  recall {figures['recall']:.3f}  "
        f"ARI {figures['ari']:.3f}  clusters {int(figures['clusters'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=0.83)
    parser.add_argument("--sweep", action="store_true", help="try thresholds 0.70..0.95")
    parser.add_argument("--matcher", help="module:function of the full matcher")
    parser.add_argument("--file", type=Path, default=LABELLED, help="another labelled set")
    args = parser.parse_args()
    failures = load(args.file)
    causes = len({f["cause"] for f in failures})
    print(f"{len(failures)} failures, {causes} causes ({args.file})")
    started = time.perf_counter()
    report("signature only", evaluate(failures, by_signature))
    signatures = len({fingerprint_of(f).signature for f in failures})
    print(f"  ({signatures} signatures, {time.perf_counter() - started:.2f}s)")
    thresholds = [x / 100 for x in range(70, 96, 1)] if args.sweep else [args.threshold]
    if args.matcher:
        matcher = load_matcher(args.matcher)
        if not args.sweep:
            report(f"full matching ({args.matcher})", evaluate(failures, matcher))
        for threshold in thresholds if args.sweep else []:
            swept = functools.partial(matcher, same=threshold)
            report(f"full matching, same >= {threshold:.2f}", evaluate(failures, swept))
        return
    with tempfile.TemporaryDirectory() as cache:
        embedder = Embedder(cache_dir=Path(cache))
        for threshold in thresholds:
            figures = evaluate(failures, by_similarity(embedder, threshold))
            report(f"signature + similarity >= {threshold:.2f}", figures)


if __name__ == "__main__":
    main()
