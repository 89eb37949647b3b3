"""drain3 as a user would call it on a file of log lines: one configuration, JSON out.

python bench/drain3_cluster.py FILE
"""

import json
import sys

from drain3 import TemplateMiner


def main() -> None:
    miner = TemplateMiner()
    with open(sys.argv[1], encoding="utf-8", errors="replace") as lines:
        ids = [miner.add_log_message(line.rstrip("\n"))["cluster_id"] for line in lines]
    json.dump({"inputs": ids, "clusters": len(miner.drain.clusters)}, sys.stdout)


if __name__ == "__main__":
    main()
