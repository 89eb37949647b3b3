"""The full ``testmem`` command: memory's commands plus the agents' ones."""

from __future__ import annotations

from testmem.memory.cli import cli, main

__all__ = ["cli", "main"]

# Importing a command module registers its commands.
from testmem.agents.cli import (
    defects,  # noqa: F401  (defects, defects flush)
    demo,  # noqa: F401  (demo)
    heal,  # noqa: F401  (heal propose|apply, heals, generate)
    triage,  # noqa: F401  (triage, decisions)
)
