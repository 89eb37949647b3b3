"""Commands of the healer and the generator: heal propose|apply, heals, generate."""

from __future__ import annotations

from pathlib import Path

import click

from testmem.memory.answers import answer
from testmem.memory.cli import CliError, cli, emit, open_store, output_options


@cli.group()
def heal() -> None:
    """Propose and apply patches to tests the API outgrew.

    Example: testmem heal apply 3f2a9c1b7d4e
    """


@heal.command("propose")
@click.option("--run", default=None, help="Run id or unique prefix [latest].")
@click.option(
    "--min-observations",
    default=2,
    show_default=True,
    type=click.IntRange(1),
    help="Runs an API change must have held in.",
)
@output_options
def heal_propose(run: str | None, min_observations: int, fmt: str, as_json: bool) -> None:
    """Propose a heal for every failed test of a run that an API change explains.

    Example: testmem heal propose --run latest
    """
    from testmem.agents.healer import Heal, propose_heal
    from testmem.memory.query import History

    store = open_store()
    history = History(store)
    run_id = history.resolve_run(run)
    rows: list[tuple[str, str | None, str]] = []
    for failure in history.sql(
        "SELECT * FROM failures WHERE run_id = ? ORDER BY occurred_at", [run_id]
    ).dicts():
        result = propose_heal(store, history, failure, min_observations=min_observations)
        if isinstance(result, Heal):
            rows.append((failure["nodeid"], result.heal_id, result.change.describe()))
        else:
            rows.append((failure["nodeid"], None, result.reason))
    emit(["nodeid", "heal_id", "why"], rows, fmt, as_json)


@heal.command("apply")
@click.argument("heal_id")
@click.option("--api-base-url", default=None, help="API to verify against [the one recorded].")
def heal_apply(heal_id: str, api_base_url: str | None) -> None:
    """Apply a proposed heal to its test file and re-run the test to verify it.

    A heal whose test still fails is recorded as failed and the file restored.
    Exits 1 when the healed test fails.

    Example: testmem heal apply 3f2a9c1b7d4e --api-base-url http://127.0.0.1:8000
    """
    from testmem.agents.healer import apply_heal
    from testmem.memory.query import History

    store = open_store()
    outcome = apply_heal(store, History(store), heal_id, api_base_url)
    click.echo(f"heal {outcome.heal_id}: {outcome.status}")
    if outcome.status != "verified":
        click.echo(outcome.output.rstrip(), err=True)
        raise SystemExit(1)


@cli.command()
@output_options
def heals(fmt: str, as_json: bool) -> None:
    """Heals proposed, with their status: proposed, verified or failed.

    Example: testmem heals --json
    """
    from testmem.agents.healer import heals as list_heals
    from testmem.memory.query import History

    store = open_store()
    result = answer(store, "heals", {}, lambda: list_heals(History(store)))
    emit(result.columns, result.rows, fmt, as_json)


@cli.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("tests/generated"),
    show_default=True,
    help="Directory of the generated test files.",
)
@click.option("--api-base-url", default=None, help="API to verify against [the one recorded].")
@click.option(
    "--min-observations",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Runs a new field or route must have been seen in.",
)
@click.option(
    "--client-fixture",
    envvar="TESTMEM_CLIENT_FIXTURE",
    default=None,
    help="Fixture the tests request through [memory_client_fixture; the one the "
    "recorded tests used; api_client].",
)
@output_options
def generate(
    out: Path,
    api_base_url: str | None,
    min_observations: int,
    client_fixture: str | None,
    fmt: str,
    as_json: bool,
) -> None:
    """Generate tests for new fields and routes of the API; keep those that pass
    where they will live (through the suite's own client fixture).

    Example: testmem generate --out tests/generated
    """
    from testmem.agents.generator import generate_tests
    from testmem.agents.source import is_identifier
    from testmem.memory.query import History

    fixture = client_fixture or _configured_fixture()
    if fixture is not None and not is_identifier(fixture):
        raise CliError(f"client fixture {fixture!r} is not a Python identifier")
    store = open_store()
    history = History(store)
    results = generate_tests(store, history, out, api_base_url, min_observations, fixture=fixture)
    rows = [
        (g.method, g.route, ", ".join(g.fields) or "(new route)", g.path, len(g.tests), g.reason)
        for g in results
    ]
    emit(["method", "route", "fields", "path", "tests", "reason"], rows, fmt, as_json)


def _configured_fixture() -> str | None:
    """``memory_client_fixture`` of the project's configuration ([tool.testmem], pytest ini)."""
    try:
        from testmem.memory.config import Settings
    except ImportError:  # the shared configuration reader is not there yet
        return None
    return Settings.discover().text("memory_client_fixture")
