"""Commands over the event log: runs, history, failures, flaky, query, compact, stats."""

from __future__ import annotations

import dataclasses

import click

from testmem.memory.answers import answer
from testmem.memory.cli import cli, emit, emit_record, open_store, output_options
from testmem.memory.query import History, QueryLimits


@cli.command()
@click.option("-n", "--limit", default=20, show_default=True, help="How many runs.")
@output_options
def runs(limit: int, fmt: str, as_json: bool) -> None:
    """Recent runs, newest first.

    Example: testmem runs -n 5
    """
    store = open_store()
    result = answer(store, "runs", {"limit": limit}, lambda: History(store).runs(limit))
    emit(result.columns, result.rows, fmt, as_json)


@cli.command()
@click.argument("nodeid")
@click.option("-n", "--limit", default=50, show_default=True, help="How many results.")
@output_options
def history(nodeid: str, limit: int, fmt: str, as_json: bool) -> None:
    """One test's results across runs, newest first.

    Example: testmem history "tests/test_users.py::test_get_user"
    """
    result = History(open_store()).test_history(nodeid, limit)
    emit(result.columns, result.rows, fmt, as_json)


@cli.command()
@click.option("--run", default=None, help="Run id or unique prefix [latest].")
@output_options
def failures(run: str | None, fmt: str, as_json: bool) -> None:
    """Failures observed in a run.

    Example: testmem failures --run 0193a1
    """
    store = open_store()
    result = answer(store, "failures", {"run": run}, lambda: History(store).failures(run))
    emit(result.columns, result.rows, fmt, as_json)


@cli.command()
@click.option("--window", default=30, show_default=True, help="Look at each test's last N runs.")
@click.option("--min-runs", default=3, show_default=True, help="Ignore tests seen in fewer runs.")
@output_options
def flaky(window: int, min_runs: int, fmt: str, as_json: bool) -> None:
    """Tests that flip between pass and fail, or pass only on retry.

    Example: testmem flaky --window 50
    """
    result = History(open_store()).flaky(window, min_runs)
    emit(result.columns, result.rows, fmt, as_json)


@cli.command()
@click.argument("sql")
@click.option(
    "--timeout", default=QueryLimits.timeout_s, show_default=True, envvar="TESTMEM_QUERY_TIMEOUT",
    type=click.FloatRange(min=0, min_open=True), help="Seconds before the query is stopped.",
)  # fmt: skip
@click.option(
    "--memory-limit", default=QueryLimits.memory, show_default=True,
    envvar="TESTMEM_QUERY_MEMORY", help="DuckDB's memory; beyond it, it spills to DIR/tmp.",
)  # fmt: skip
@output_options
def query(sql: str, timeout: float, memory_limit: str, fmt: str, as_json: bool) -> None:
    """Run a read-only SQL query over the views events, runs, results,
    exchanges and failures, within a time and a memory limit (at most
    100,000 rows).

    Example: testmem query "SELECT route, count(*) FROM exchanges GROUP BY route"
    """
    history = History(open_store())
    try:
        result = history.query(sql, QueryLimits(timeout_s=timeout, memory=memory_limit))
    finally:
        history.close()
    emit(result.columns, result.rows, fmt, as_json)


@cli.command()
@click.option(
    "--vacuum-hours",
    default=1.0,
    show_default=True,
    help="Delete replaced files older than this (readers may still use newer ones).",
)
@output_options
def compact(vacuum_hours: float, fmt: str, as_json: bool) -> None:
    """Merge the log's small files; readers never see duplicates.

    Example: testmem compact
    """
    result = open_store().events.compact(vacuum_hours)
    if fmt == "table" and not as_json:
        click.echo(
            f"compacted {result.files_before} files into {result.files_after} "
            f"({result.events} events; {result.files_removed} old files deleted)"
        )
    else:
        emit_record(dataclasses.asdict(result), fmt, as_json)


@cli.command()
@output_options
def stats(fmt: str, as_json: bool) -> None:
    """Size and contents of the store.

    Example: testmem stats --json
    """
    emit_record(History(open_store()).stats(), fmt, as_json)
