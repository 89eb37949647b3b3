"""Commands that look after the store: doctor, purge."""

from __future__ import annotations

import sys

import click

from testmem.memory.cli import CliError, cli, emit_object, json_option, open_store
from testmem.memory.markup import terminal


@cli.command()
@click.option("--repair", is_flag=True, help="Fix what can be fixed, saying what was done.")
@click.option(
    "--vacuum-hours",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Unreferenced files younger than this may belong to a commit in flight.",
)
@json_option
def doctor(repair: bool, vacuum_hours: float, as_json: bool) -> None:
    """Check the store: log readable, index consistent with the log, orphan files,
    defect outbox. Exits 0 when healthy, 1 when problems remain.

    Example: testmem doctor --repair
    """
    from testmem.memory import doctor as checks

    store = open_store()
    findings = (checks.repair if repair else checks.examine)(store, vacuum_hours)
    if as_json:
        emit_object({"store": str(store.root), "checks": [vars(f) for f in findings]}, True)
    for finding in [] if as_json else findings:
        click.echo(f"{finding.check:<8} {'ok' if finding.ok else 'PROBLEM'}")
        for line in finding.repaired:
            click.echo(f"  repaired: {terminal(line)}")
        for line in finding.problems:
            click.echo(f"  {terminal(line)}")
    sys.exit(0 if all(f.ok for f in findings) else 1)


@cli.command()
@click.option("--before", "before", help="Delete every event before this date (YYYY-MM-DD).")
@click.option(
    "--bodies-older-than",
    "bodies_age",
    help="Drop request/response bodies of older exchanges, e.g. 30d (size and sha256 stay).",
)
@json_option
def purge(before: str | None, bodies_age: str | None, as_json: bool) -> None:
    """Forget old events, or only old bodies: rewrites the log atomically and
    reclaims the space at once.

    Example: testmem purge --before 2026-01-01 --bodies-older-than 30d
    """
    from testmem.memory import retention

    if before is None and bodies_age is None:
        raise CliError("give --before DATE and/or --bodies-older-than AGE")
    cutoff = retention.parse_date(before) if before else None  # validate both first
    age = retention.parse_age(bodies_age) if bodies_age else None
    store = open_store()
    done: dict[str, object] = {}
    if cutoff is not None:
        purged = retention.purge_before(store, cutoff)
        done |= {"events_deleted": purged.events, "before": cutoff}
    if age is not None:
        dropped = retention.drop_bodies(store, age)
        done |= {"bodies_dropped": dropped.events, "bodies_before": dropped.cutoff}
    emit_object(done, as_json)
