"""`testmem cluster` against drain3, one fresh process per log set, as a user runs them.

For each set of bench/logs/ (2,000 lines), the wall time of
``testmem cluster FILE`` and of ``python bench/drain3_cluster.py FILE``
(drain3 with its one default configuration), run alternately ``--rounds``
times; the median of each and their ratio, per set and in total. Both read
the same file of one message per line and print JSON.

    python bench/cluster_speed.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "bench" / "logs"
BIN = Path(sys.executable).parent


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    sets = sorted(LOGS.glob("*.jsonl"))
    totals = {"testmem": 0.0, "drain3": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        env["TESTMEM_DIR"] = str(Path(tmp) / "store")
        print(f"{'set':<12}{'testmem s':>11}{'drain3 s':>10}{'ratio':>8}")
        for path in sets:
            lines = Path(tmp) / f"{path.stem}.txt"
            messages = [json.loads(row)["message"] for row in path.open(encoding="utf-8")]
            lines.write_text("\n".join(messages) + "\n", encoding="utf-8")
            commands = {
                "testmem": [str(BIN / "testmem"), "cluster", str(lines)],
                "drain3": [sys.executable, str(ROOT / "bench" / "drain3_cluster.py"), str(lines)],
            }
            times: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(args.rounds):
                for name, command in commands.items():
                    times[name].append(timed(command, env))
            medians = {name: statistics.median(t) for name, t in times.items()}
            for name in totals:
                totals[name] += medians[name]
            ratio = medians["testmem"] / medians["drain3"]
            print(
                f"{path.stem:<12}{medians['testmem']:>11.2f}{medians['drain3']:>10.2f}{ratio:>8.2f}"
            )
    ratio = totals["testmem"] / totals["drain3"]
    print(f"{'total':<12}{totals['testmem']:>11.2f}{totals['drain3']:>10.2f}{ratio:>8.2f}")


if __name__ == "__main__":
    main()
