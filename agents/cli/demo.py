"""``testmem demo``: the bundled example, played end to end."""

from __future__ import annotations

from pathlib import Path

import click

from testmem.memory.cli import cli


@cli.command()
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/demo"),
    show_default=True,
    help="Where to play (wiped first).",
)
@click.option("--builds", type=click.IntRange(1), default=None, help="Play the first N builds.")
def demo(workdir: Path, builds: int | None) -> None:
    """Play twelve builds of the example shop API and watch the memory learn.

    Each build is a real `pytest --memory` run of the example suite against
    the example API on 127.0.0.1: failures matched to incidents, retries,
    heals, defects and generated tests, then the weekly report.

    Example: testmem demo --builds 4
    """
    from testmem.examples.demo import main

    argv = ["--dir", str(workdir)] + (["--builds", str(builds)] if builds else [])
    raise SystemExit(main(argv))
