"""The full ``testmem`` command: memory's commands plus the agents' ones."""

from __future__ import annotations

from memory.cli import cli, main

__all__ = ["cli", "main"]

from agents import (
    cli_defects,  # noqa: F401  (registers the commands)
    cli_demo,  # noqa: F401  (registers the commands)
    cli_heal,  # noqa: F401  (registers the commands)
    cli_triage,  # noqa: F401  (registers the commands)
)
