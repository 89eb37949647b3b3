"""Commands of the triage agents: triage and decisions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from testmem.memory.answers import answer
from testmem.memory.cli import cli, emit, json_option, open_store, output_options
from testmem.memory.markup import terminal

if TYPE_CHECKING:
    from testmem.memory.query import Rows
    from testmem.memory.store import Store


@cli.command()
@click.option("--run", default=None, help="Run id or unique prefix [latest].")
@click.option("--force", is_flag=True, help="Decide again tests already decided.")
@click.option("--no-heal", is_flag=True, help="Decide, but propose no patches.")
@click.option("--no-escalate", is_flag=True, help="Decide, but file no defects.")
@json_option
@click.option(
    "--model-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="AutoGen model client config (JSON/YAML): an analyzer agent decides "
    "[$TESTMEM_MODEL_CONFIG; none: the rules decide].",
)
def triage(
    run: str | None,
    force: bool,
    no_heal: bool,
    no_escalate: bool,
    as_json: bool,
    model_config: Path | None,
) -> None:
    """Decide retry, heal or escalate for every failed test of a run.

    Links each failure to an incident, classifies it from memory, proposes
    patches for outdated tests and files one defect per regression.

    Example: testmem triage --run latest
    """
    from testmem.agents.triage import Triage

    store = open_store()
    decide = _agent_decider(store, model_config)
    result = Triage(store, heal=not no_heal, escalate=not no_escalate, decide=decide).run(
        run, force=force
    )
    if as_json:
        click.echo(json.dumps([d.__dict__ for d in result.decisions], default=str, indent=2))
    else:
        for line in result.summary_lines():
            click.echo(terminal(line))
        if result.skipped:
            click.echo(f"({result.skipped} tests already decided; --force decides them again)")


def _agent_decider(store: Store, model_config: Path | None) -> Any:
    """The AutoGen analyzer agent as decider, when a model is configured (else None)."""
    if model_config is None and not os.environ.get("TESTMEM_MODEL_CONFIG"):
        return None  # AutoGen is not even imported
    from testmem.agents.autogen import agent_decider, load_model_client

    client = load_model_client(model_config)
    return agent_decider(store, client) if client else None


@cli.command("decisions")
@click.option("--run", default="latest", show_default=True, help="Run id or unique prefix.")
@output_options
def decisions_command(run: str, fmt: str, as_json: bool) -> None:
    """The decisions taken for each test that failed in a run: the action, the
    rule that decided, the incident, and the exchange it rests on with the rule
    that chose it (named, error, last, setup).

    Example: testmem decisions --run latest --json
    """
    store = open_store()
    result = answer(store, "decisions", {"run": run}, lambda: _decisions(store, run))
    emit(result.columns, result.rows, fmt, as_json)


def _decisions(store: Store, run: str) -> Rows:
    from testmem.agents.triage import decisions
    from testmem.memory.query import History

    history = History(store)
    return decisions(history, history.resolve_run(run))
