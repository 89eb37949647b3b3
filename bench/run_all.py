"""Run the event-log benchmarks at a size that finishes in minutes (``make bench``).

The figures in docs/BENCHMARKS.md come from the full sizes (see bench/README.md);
``--full`` runs those.

    python -m bench.run_all [--full]
"""

from __future__ import annotations

import sys

from bench import append, overhead, query_cold

QUICK = {
    "overhead": ["--rounds", "3", "--modules", "5"],
    "append": ["--events", "50000", "--batch", "10000", "--repeats", "2"],
    "query_cold": ["--runs", "50", "--tests", "2000", "--repeats", "3"],
}
FULL = {
    "overhead": ["--rounds", "5"],
    "append": ["--events", "200000", "--batch", "10000", "--repeats", "3"],
    "query_cold": ["--runs", "500", "--tests", "2000", "--repeats", "5"],
}


def main(argv: list[str]) -> None:
    sizes = FULL if "--full" in argv else QUICK
    for name, module in (("overhead", overhead), ("append", append), ("query_cold", query_cold)):
        print(f"\n## {name} {' '.join(sizes[name])}\n", flush=True)
        module.main(sizes[name])


if __name__ == "__main__":
    main(sys.argv[1:])
