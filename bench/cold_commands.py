"""Cold commands on a store of 100 real runs, beside sqlite-utils answering
the same listings from a SQLite file holding the same rows.

The store is bench/command_store.py's (the shop API's releases played 100
times: exchanges, failures, incidents, decisions, defects, heals). Each
listing's rows (``testmem LISTING --json``) are exported once into a table of
one SQLite file, and ``sqlite-utils query FILE "SELECT * FROM LISTING"``
answers it: the least a SQLite-backed tool could do, no computing at all.
sqlite-utils runs from a venv of its own, as ``pipx install sqlite-utils``
leaves it (in testmem's venv it imports pandas, which is installed there,
and takes ~0.5 s more). Every command is a fresh process; the rounds
alternate the two sides, rotating their order. Also timed alone: ``--help``,
``similar`` on a seen text (its embedding cached) and on an unseen one (the
model runs), ``doctor``.

    python -m bench.cold_commands [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

from bench import PYTHON, ROOT, Timing, median, table, timed
from bench.command_store import DEFAULT, ensure

TESTMEM = str(Path(PYTHON).parent / "testmem")  # the console script, as a user runs it
LISTINGS = ["runs", "failures", "incidents", "decisions", "defects", "heals"]
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "AWS_EC2_METADATA_DISABLED": "true",
}
SEEN = "HTTP 500: OrderTotalMismatch: order 4711 total 31.50 != invoiced 30.00"
UNSEEN = [  # one new wording a round: no embedding of it is cached
    f"{word} refused: upstream {other} answered nothing the gateway could parse"
    for word, other in [
        ("ledger", "billing"), ("catalogue", "pricing"), ("shipment", "carrier"),
        ("voucher", "promotions"), ("invoice", "accounting"), ("refund", "payments"),
        ("wishlist", "profiles"), ("basket", "checkout"), ("coupon", "campaigns"),
        ("parcel", "tracking"), ("receipt", "printing"), ("rating", "reviews"),
    ]
]  # fmt: skip


SEEN_ROW, UNSEEN_ROW = "`testmem similar` (seen text)", "`testmem similar` (unseen text)"


def sqlite_utils_venv(where: Path) -> str:
    """sqlite-utils in a venv of its own (made once), as pipx would install it."""
    script = where / "bin" / "sqlite-utils"
    if not script.exists():
        venv.create(where, with_pip=True)
        pip = [str(where / "bin" / "python"), "-m", "pip", "install", "-q", "sqlite-utils"]
        subprocess.run(pip, check=True)
    return str(script)


def export(store: Path, database: Path) -> None:
    """Each listing's rows, as testmem prints them, into a table of its own."""
    import sqlite_utils

    database.unlink(missing_ok=True)
    db = sqlite_utils.Database(database)
    for listing in LISTINGS:
        done = subprocess.run(
            [TESTMEM, "--dir", str(store), listing, "--json"],
            capture_output=True, text=True, env=ENV, check=True,
        )  # fmt: skip
        rows = json.loads(done.stdout)
        if not rows:
            raise SystemExit(f"`testmem {listing}` lists nothing on {store}: no figure to take")
        db[listing].insert_all(rows, alter=True)


def pairs(store: Path, database: Path, sqlite_utils: str) -> dict[str, list[list[str]]]:
    at = [TESTMEM, "--dir", str(store)]
    found = {
        f"`testmem {listing}`": [
            [*at, listing],
            [sqlite_utils, "query", str(database), f"SELECT * FROM {listing}", "--table"],
        ]
        for listing in LISTINGS
    }
    found["`testmem --help`"] = [[TESTMEM, "--help"], [sqlite_utils, "--help"]]
    return found


def alone(store: Path) -> dict[str, list[str]]:
    at = [TESTMEM, "--dir", str(store)]
    return {
        SEEN_ROW: [*at, "similar", SEEN],
        "`testmem doctor`": [*at, "doctor"],
        "`python -c pass` (the interpreter alone)": [PYTHON, "-c", "pass"],
    }


Paired = dict[str, list[tuple[Timing, Timing]]]  # (testmem, sqlite-utils), a round each
Single = dict[str, list[Timing]]


def measure(store: Path, database: Path, sqlite_utils: str, rounds: int) -> tuple[Paired, Single]:
    """Per command, a timing each round: beside sqlite-utils (the order of the
    two alternating), or alone."""
    compared, single = pairs(store, database, sqlite_utils), alone(store)
    paired: Paired = {name: [] for name in compared}
    lone: Single = {name: [] for name in [*single, UNSEEN_ROW]}
    timed(single[SEEN_ROW], env=ENV)  # the seen text's embedding is cached from here on
    for n in range(rounds):
        for name, (ours, theirs) in compared.items():
            if n % 2:
                theirs_t, ours_t = timed(theirs, env=ENV), timed(ours, env=ENV)
            else:
                ours_t, theirs_t = timed(ours, env=ENV), timed(theirs, env=ENV)
            paired[name].append((ours_t, theirs_t))
        for name, command in single.items():
            lone[name].append(timed(command, env=ENV, ok=(0, 1)))  # doctor: 1 = problems found
        unseen = [TESTMEM, "--dir", str(store), "similar", UNSEEN[n % len(UNSEEN)]]
        lone[UNSEEN_ROW].append(timed(unseen, env=ENV))
    return paired, lone


def report(paired: Paired, lone: Single, rounds: int) -> str:
    rows = [
        [name, _fig([t[0] for t in found]), _fig([t[1] for t in found]),
         f"{median([ours.wall_s / theirs.wall_s for ours, theirs in found]):.2f}"]
        for name, found in paired.items()
    ]  # fmt: skip
    rows += [[name, _fig(found), "", ""] for name, found in lone.items()]
    header = ["cold process", "testmem wall / CPU s", "sqlite-utils wall / CPU s", "wall ratio"]
    load = os.getloadavg()[0]
    return f"median of {rounds} rounds, load average {load:.1f}:\n\n" + table(header, rows)


def _fig(timings: list[Timing]) -> str:
    return f"{median([t.wall_s for t in timings]):.2f} / {median([t.cpu_s for t in timings]):.2f}"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--store", type=Path, default=DEFAULT, help="bench/command_store's output")
    args = parser.parse_args(argv)
    store = ensure(args.store)
    database = args.store / "listings.sqlite"
    export(store, database)
    sqlite_utils = sqlite_utils_venv(ROOT / "bench" / "out" / "sqlite-utils-venv")
    print(f"load average before: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    text = report(*measure(store, database, sqlite_utils, args.rounds), args.rounds)
    print(text)
    return text


if __name__ == "__main__":
    main()
