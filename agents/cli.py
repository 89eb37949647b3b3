"""The full ``testmem`` command: memory's commands plus the agents' ones."""

from __future__ import annotations

from memory.cli import cli, main

__all__ = ["cli", "main"]
