"""``testmem defects``: the defects filed so far, and ``defects flush`` to retry the outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from testmem.memory.answers import answer
from testmem.memory.cli import cli, emit, emit_object, json_option, open_store, output_options

if TYPE_CHECKING:
    from testmem.memory.query import Rows
    from testmem.memory.store import Store

# The table's columns; JSON and CSV give every key of `testmem.agents.defects.defects`.
_COLUMNS = ["defect_id", "severity", "occurrences", "status", "reference", "title"]


@cli.group(invoke_without_command=True)
@output_options
@click.pass_context
def defects(ctx: click.Context, fmt: str, as_json: bool) -> None:
    """Defects filed by the defect agent (one per incident), and pending ones.

    Example: testmem defects --json
    """
    if ctx.invoked_subcommand is not None:
        return
    store = open_store()
    outbox = store.root / "defects" / "outbox"  # pending defects live there, not in the log
    rows = answer(store, "defects", {}, lambda: _defects(store), inputs=[outbox]).dicts()
    columns = list(rows[0]) if rows and (as_json or fmt != "table") else _COLUMNS
    emit(columns, [tuple(r[c] for c in columns) for r in rows], fmt, as_json)


def _defects(store: Store) -> Rows:
    from testmem.agents.defects import defects as list_defects
    from testmem.memory.query import Rows

    found = list_defects(store)
    columns = list(found[0]) if found else []
    return Rows(columns, [tuple(r[c] for c in columns) for r in found])


@defects.command()
@json_option
@click.pass_context
def flush(ctx: click.Context, as_json: bool) -> None:
    """Retry every defect action waiting in the outbox (a sink that failed).

    Exits 1 when some actions are still pending afterwards.

    Example: testmem defects flush
    """
    import warnings

    from testmem.agents.defects import DefectAgent, DefectWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DefectWarning)  # reported below instead
        result = DefectAgent(open_store()).flush()
    emit_object(
        {"delivered": result.delivered, "pending": result.pending, "errors": result.errors},
        as_json,
    )
    for error in result.errors:
        click.echo(f"testmem: warning: {error}", err=True)
    if result.pending:
        ctx.exit(1)
