"""Commands for quarantine: quarantine, unquarantine."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

import click

from testmem.memory.cli import CliError, cli, emit, open_store, output_options

_COLUMNS = ["nodeid", "reason", "until", "by", "since"]


@cli.command()
@click.argument("nodeid", required=False)
@click.option("--reason", help="Why (shown in pytest's summary); required to quarantine.")
@click.option(
    "--until",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Last day it holds (UTC); it lapses by itself after [none: until lifted].",
)
@click.option("--list", "listing", is_flag=True, help="List the quarantines in force.")
@output_options
def quarantine(
    nodeid: str | None,
    reason: str | None,
    until: datetime | None,
    listing: bool,
    fmt: str,
    as_json: bool,
) -> None:
    """Quarantine a test: it still runs and is recorded, but its failure does not
    fail `pytest --memory` (the summary names it, with reason and expiry).

    Example: testmem quarantine tests/test_cart.py::test_pay --reason PAY-12 --until 2026-12-31
    """
    from testmem.memory import quarantine as q

    if listing == bool(nodeid):
        raise CliError("give a NODEID to quarantine, or --list")
    store = open_store(must_exist=not nodeid)
    if nodeid:
        held = q.quarantine(store, nodeid, reason or "", until.date() if until else None)
        click.echo(f"quarantined {held.nodeid} ({held.expiry})")
        return
    held_now = q.active(q.rebuild(store))
    rows = [tuple(asdict(h)[c] for c in _COLUMNS) for h in held_now.values()]
    emit(_COLUMNS, rows, fmt, as_json)


@cli.command()
@click.argument("nodeid")
def unquarantine(nodeid: str) -> None:
    """Lift a test's quarantine: its failures fail the session again.

    Example: testmem unquarantine "tests/test_cart.py::test_checkout"
    """
    from testmem.memory.quarantine import unquarantine as lift

    lift(open_store(), nodeid)
    click.echo(f"unquarantined {nodeid}")
