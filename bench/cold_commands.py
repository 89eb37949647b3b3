"""Cold commands on a store of 100 real runs, beside sqlite-utils answering
the same listings from a SQLite file holding the same rows.

The store is bench/command_store.py's (the shop API's releases played 100
times: exchanges, failures, incidents, decisions, defects, heals). Each
listing's rows (``testmem LISTING --json``) are exported once into a table of
one SQLite file, and ``sqlite-utils query FILE "SELECT * FROM LISTING"``
answers it: the least a SQLite-backed tool could do, no computing at all.
sqlite-utils runs from a venv of its own, as ``pipx install sqlite-utils``
leaves it (in testmem's venv it imports pandas, which is installed there,
and takes ~0.5 s more). testmem is timed twice per listing: computing the
answer (no kept answer: the first listing after a commit) and answering from
its kept answer (asked before, the log unchanged). Every command is a fresh
process; each round rotates the order of the sides. Also: ``--help`` beside
``sqlite-utils --help``; ``similar`` on a seen text (its embedding cached)
and on an unseen one (a new text each round: the model runs); ``doctor``.

    python -m bench.cold_commands [--rounds 5]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable
from dataclasses import dataclass
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


UNSEEN_ROW = "`similar` on an unseen text"


def sqlite_utils_venv(where: Path) -> str:
    """sqlite-utils in a venv of its own (made once), as pipx would install it."""
    script = where / "bin" / "sqlite-utils"
    if not script.exists():
        venv.create(where, with_pip=True)
        pip = [str(where / "bin" / "python"), "-m", "pip", "install", "-q", "sqlite-utils"]
        subprocess.run(pip, check=True)
    return str(script)


def arguments(store: Path) -> dict[str, list[str]]:
    """Each listing's arguments: a run's listings are of the latest run that failed
    (the latest of all may be the generator's run of its new tests)."""
    done = subprocess.run(
        [TESTMEM, "--dir", str(store), "query", "--json",
         "SELECT run_id FROM runs WHERE failed > 0 ORDER BY started_at DESC LIMIT 1"],
        capture_output=True, text=True, env=ENV, check=True,
    )  # fmt: skip
    run = ["--run", json.loads(done.stdout)[0]["run_id"]]
    return {listing: run if listing in ("failures", "decisions") else [] for listing in LISTINGS}


def export(store: Path, database: Path, asked: dict[str, list[str]]) -> None:
    """Each listing's rows, as testmem prints them, into a table of its own."""
    import sqlite_utils

    database.unlink(missing_ok=True)
    db = sqlite_utils.Database(database)
    for listing in LISTINGS:
        done = subprocess.run(
            [TESTMEM, "--dir", str(store), listing, *asked[listing], "--json"],
            capture_output=True, text=True, env=ENV, check=True,
        )  # fmt: skip
        rows = json.loads(done.stdout)
        if not rows:
            raise SystemExit(f"`testmem {listing}` lists nothing on {store}: no figure to take")
        db[listing].insert_all(rows, alter=True)


@dataclass
class Side:
    """One way of answering a question: a command, and what is done (untimed) before it."""

    label: str
    command: list[str]
    before: Callable[[], None] = lambda: None


def questions(
    store: Path, database: Path, sqlite_utils: str, asked: dict[str, list[str]]
) -> dict[str, list[Side]]:
    """Per question, its sides; the last one, where there is one, is sqlite-utils."""
    at = [TESTMEM, "--dir", str(store)]
    forget = functools.partial(shutil.rmtree, store / "answers", ignore_errors=True)

    def warm(command: list[str]) -> Callable[[], None]:
        return lambda: subprocess.run(command, env=ENV, capture_output=True, check=True)

    def sqlite_utils_query(listing: str) -> list[str]:
        return [sqlite_utils, "query", str(database), f"SELECT * FROM {listing}", "--table"]

    found = {
        f"`{listing}`": [
            Side("testmem, computed", [*at, listing, *asked[listing]], forget),
            Side(
                "testmem, kept answer",
                [*at, listing, *asked[listing]],
                warm([*at, listing, *asked[listing]]),
            ),
            Side("sqlite-utils", sqlite_utils_query(listing)),
        ]
        for listing in LISTINGS
    }
    found["`--help`"] = [Side("testmem", [TESTMEM, "--help"]),
                         Side("sqlite-utils", [sqlite_utils, "--help"])]  # fmt: skip
    seen = [*at, "similar", SEEN]
    found["`similar` on a seen text"] = [
        Side("testmem, computed (embedding cached)", seen, forget),
        Side("testmem, kept answer", seen, warm(seen)),
    ]
    found["`doctor`"] = [Side("testmem", [*at, "doctor"])]
    found["the interpreter alone"] = [Side("`python -c pass`", [PYTHON, "-c", "pass"])]
    return found


Timings = dict[str, dict[str, list[Timing]]]  # question -> side -> a timing per round


def measure(questions: dict[str, list[Side]], store: Path, rounds: int) -> Timings:
    """A timing per side per round, the sides' order rotating round by round;
    ``similar`` on an unseen text (a new one each round) at the end of each."""
    timings: Timings = {q: {side.label: [] for side in sides} for q, sides in questions.items()}
    timings[UNSEEN_ROW] = {"testmem, computed (the model runs)": []}
    for n in range(rounds):
        for question, sides in questions.items():
            for side in sides[n % len(sides) :] + sides[: n % len(sides)]:
                side.before()
                # doctor: 1 means problems found, which is a timing all the same
                timings[question][side.label].append(timed(side.command, env=ENV, ok=(0, 1)))
        unseen = [TESTMEM, "--dir", str(store), "similar", UNSEEN[n % len(UNSEEN)]]
        timings[UNSEEN_ROW]["testmem, computed (the model runs)"].append(timed(unseen, env=ENV))
    return timings


def report(timings: Timings, rounds: int) -> str:
    rows = []
    for question, sides in timings.items():
        theirs = sides.get("sqlite-utils")
        for label, found in sides.items():
            ratio = (
                f"{median([a.wall_s / b.wall_s for a, b in zip(found, theirs, strict=True)]):.2f}"
                if theirs and label != "sqlite-utils"
                else ""
            )
            rows.append([question, label, _fig(found), ratio])
    header = ["cold command", "side", "wall / CPU s", "wall / sqlite-utils"]
    load = os.getloadavg()[0]
    return f"median of {rounds} rounds, load average {load:.1f} at the end:\n\n" + table(
        header, rows
    )


def _fig(timings: list[Timing]) -> str:
    return f"{median([t.wall_s for t in timings]):.2f} / {median([t.cpu_s for t in timings]):.2f}"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--store", type=Path, default=DEFAULT, help="bench/command_store's output")
    args = parser.parse_args(argv)
    store = ensure(args.store)
    database = args.store / "listings.sqlite"
    asked = arguments(store)
    export(store, database, asked)
    sqlite_utils = sqlite_utils_venv(ROOT / "bench" / "out" / "sqlite-utils-venv")
    print(f"load average before: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    sides = questions(store, database, sqlite_utils, asked)
    text = report(measure(sides, store, args.rounds), args.rounds)
    print(text)
    return text


if __name__ == "__main__":
    main()
