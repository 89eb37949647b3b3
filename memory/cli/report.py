"""Commands for reading the history at a glance and bringing in old history:
report, trends, summary, import junit, export junit."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from testmem.memory.cli import F, cli, open_store
from testmem.memory.markup import terminal

if TYPE_CHECKING:
    from testmem.memory.report import Report

# testmem.memory.report.model.ENV_TZ, not imported: the report's modules load
# only with the report (tests/test_cli_imports.py keeps the two alike).
ENV_TZ = "TESTMEM_TZ"

_DATE = click.DateTime(["%Y-%m-%d"])


def _week_options(f: F) -> F:
    f = click.option(
        "--tz",
        envvar=ENV_TZ,
        default="UTC",
        show_default=True,
        help=f"Time zone whose Monday midnight starts a week [${ENV_TZ}].",
    )(f)
    f = click.option("--until", type=_DATE, help="Last week: the one holding this date [today].")(f)
    f = click.option("--since", type=_DATE, help="First week: the one holding this date.")(f)
    return click.option("--weeks", default=8, show_default=True, help="How many ISO weeks.")(f)


def _report(
    weeks: int, since: datetime | None, until: datetime | None, tz: str, engine: str = "duckdb"
) -> Report:
    from testmem.memory.query import History
    from testmem.memory.report import weekly_report

    history = History(open_store(must_exist=False))
    return weekly_report(history, weeks, _day(since), _day(until), tz, engine)


def _day(value: datetime | None) -> date | None:
    return value.date() if value else None


@cli.command()
@_week_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "md", "json"]),
    default="html",
    show_default=True,
    help="html: one self-contained file; md: for a PR comment; json: for tools.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here, creating missing directories [stdout].",
)
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "ray"]),
    default="duckdb",
    show_default=True,
    help="Who scans the log: DuckDB here, or Ray tasks on the cluster at $RAY_ADDRESS.",
)
def report(
    weeks: int,
    since: datetime | None,
    until: datetime | None,
    tz: str,
    fmt: str,
    out: Path | None,
    engine: str,
) -> None:
    """A weekly trend report: runs, pass rate, failures by category, flaky tests,
    incidents, retries, slow tests and routes, each with the change against the
    week before. With ``--engine ray`` the log's files are scanned by Ray tasks
    (``pip install 'testmem[ray]'``); the report is the same.

    Example: testmem report --weeks 12 --format html --out report.html
    """
    from testmem.memory.report import render

    _deliver(render(_report(weeks, since, until, tz, engine), fmt), out)


def _deliver(text: str, out: Path | None, append: bool = False) -> None:
    """Print ``text``, or write (or append) it to ``out``, creating missing directories."""
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a" if append else "w", encoding="utf-8") as written:
        written.write(text)
    click.echo(f"wrote {out} ({len(text.encode()):,} bytes)", err=True)


@cli.command()
@_week_options
def trends(weeks: int, since: datetime | None, until: datetime | None, tz: str) -> None:
    """Headline figures per week, with sparklines, in the terminal.

    Example: testmem trends --weeks 26
    """
    from testmem.memory.report import render_trends

    click.echo(terminal(render_trends(_report(weeks, since, until, tz))))


@cli.group(name="import")
def import_group() -> None:
    """Bring history recorded by other test runners into the store.

    Example: testmem import junit reports/*.xml
    """


@import_group.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def junit(files: tuple[Path, ...]) -> None:
    """Import JUnit XML reports (pytest, Maven Surefire, Jest, gotestsum...) as
    runs, results and failures. Importing the same file twice adds nothing.

    Example: testmem import junit target/surefire-reports/*.xml
    """
    from testmem.memory.junit import import_junit

    result = import_junit(open_store(must_exist=False), list(files))
    click.echo(
        f"imported {result.runs} runs ({result.tests:,} test cases, {result.failures:,} "
        f"failures); skipped {result.skipped} already imported"
    )


@cli.group(name="export")
def export_group() -> None:
    """Write what the memory holds in formats other tools read.

    Example: testmem export junit --run latest --out junit.xml
    """


@export_group.command(name="junit")
@click.option("--run", default=None, help="Run id or unique prefix [latest].")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here, creating missing directories [stdout].",
)
def export_junit(run: str | None, out: Path | None) -> None:
    """A run as JUnit XML with every attempt, as Maven Surefire writes reruns:
    <flakyFailure> on a test that passed on retry, <rerunFailure> on one that
    failed every time, each with message, type and <stackTrace>.

    Example: testmem export junit --run 01a2 --out reports/junit.xml
    """
    from testmem.memory.query import History
    from testmem.memory.surefire import export_junit as export

    _deliver(export(History(open_store()), run), out)


@cli.command()
@click.option("--run", default=None, help="Run id or unique prefix [latest].")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append here (as CI step summaries are) [stdout].",
)
def summary(run: str | None, out: Path | None) -> None:
    """One run in Markdown, sized for a PR comment: what failed, what was retried
    and rescued, incidents new and recurring, heals proposed, defects filed or
    updated. `pytest --memory` appends it to $GITHUB_STEP_SUMMARY when set.

    Example: testmem summary --run latest >> "$GITHUB_STEP_SUMMARY"
    """
    from testmem.memory.query import History
    from testmem.memory.summary import run_markdown

    _deliver(run_markdown(History(open_store()), run), out, append=True)
