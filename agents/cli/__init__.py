"""The full ``testmem`` command: memory's commands plus the agents' ones."""

from __future__ import annotations

from testmem.memory.cli import cli, main

__all__ = ["cli", "main"]

# Where each command lives: its module is imported when the command is asked for.
cli.lazy("testmem.agents.cli.defects", "defects")
cli.lazy("testmem.agents.cli.demo", "demo")
cli.lazy("testmem.agents.cli.heal", "heal", "heals", "generate")
cli.lazy("testmem.agents.cli.triage", "triage", "decisions")
