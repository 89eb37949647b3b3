"""Grouping accuracy on the log sets of bench/logs/, testmem against drain3.

Grouping accuracy (GA) is the share of messages whose group holds exactly the
messages of their true template (the measure log-parsing papers report).
testmem is `testmem.memory.clustering.cluster_messages` (the stages `testmem cluster`
runs); drain3 is the PyPI package with its one default configuration.

    python bench/eval_templates.py [--sets sshd,proxy] [--show-errors SET]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LOGS = Path(__file__).parent / "logs"


def grouping_accuracy(truth: Sequence[Hashable], groups: Sequence[Hashable]) -> float:
    """Messages whose predicted group is exactly their true group, as a share."""
    members: dict[Hashable, set[int]] = defaultdict(set)
    for n, g in enumerate(groups):
        members[g].add(n)
    true_members: dict[Hashable, set[int]] = defaultdict(set)
    for n, t in enumerate(truth):
        true_members[t].add(n)
    right = sum(len(m) for m in members.values() if m == true_members[truth[next(iter(m))]])
    return right / len(truth)


def testmem(messages: list[str]) -> list[str]:
    from testmem.memory.clustering import cluster_messages

    return cluster_messages(messages).clusters


def drain3(messages: list[str]) -> list[int]:
    from drain3 import TemplateMiner

    miner = TemplateMiner()
    ids = [miner.add_log_message(m)["cluster_id"] for m in messages]
    return ids  # a cluster's id stays its id as its template generalises


def load(name: str) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (LOGS / f"{name}.jsonl").open(encoding="utf-8")]
    return [r["message"] for r in rows], [r["template"] for r in rows]


def show_errors(messages: list[str], truth: list[str], groups: Sequence[Hashable]) -> None:
    by_truth: dict[str, Counter[Hashable]] = defaultdict(Counter)
    for t, g in zip(truth, groups, strict=True):
        by_truth[t][g] += 1
    by_group: dict[Hashable, Counter[str]] = defaultdict(Counter)
    for t, g in zip(truth, groups, strict=True):
        by_group[g][t] += 1
    for t, split in by_truth.items():
        if len(split) > 1:
            print(f"SPLIT {t!r} into {len(split)}: {split.most_common(4)}")
    for g, mixed in by_group.items():
        if len(mixed) > 1:
            print(f"MERGED in {g}: {list(mixed)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", help="comma-separated set names (default: all)")
    parser.add_argument("--show-errors", metavar="SET")
    args = parser.parse_args()
    names = args.sets.split(",") if args.sets else sorted(p.stem for p in LOGS.glob("*.jsonl"))
    methods: dict[str, Callable[[list[str]], Sequence[Hashable]]] = {
        "testmem": testmem,
        "drain3": drain3,
    }
    totals: dict[str, list[float]] = defaultdict(list)
    print(f"{'set':<12}" + "".join(f"{m:>10}" for m in methods) + "   (grouping accuracy)")
    for name in names:
        messages, truth = load(name)
        row = []
        for method, cluster in methods.items():
            started = time.perf_counter()
            groups = cluster(messages)
            totals[method + " s"].append(time.perf_counter() - started)
            totals[method].append(grouping_accuracy(truth, groups))
            row.append(totals[method][-1])
            if args.show_errors == name and method == "testmem":
                show_errors(messages, truth, groups)
        print(f"{name:<12}" + "".join(f"{v:>10.3f}" for v in row))
    means = [sum(totals[m]) / len(totals[m]) for m in methods]
    print(f"{'mean':<12}" + "".join(f"{v:>10.3f}" for v in means))
    print(f"{'min':<12}" + "".join(f"{min(totals[m]):>10.3f}" for m in methods))


if __name__ == "__main__":
    main()
