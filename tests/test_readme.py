"""The README documents every command and every plugin option."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click

from testmem.agents.cli import cli

README = (Path(__file__).parent.parent / "README.md").read_text()


def subcommands(group: click.Group) -> dict[str, click.Command]:
    """Every command of the group, its module imported if it was not yet."""
    context = click.Context(group)
    found = {name: group.get_command(context, name) for name in group.list_commands(context)}
    return {name: command for name, command in found.items() if command is not None}


def command_paths(group: click.Group, prefix: str = "testmem") -> list[str]:
    paths = []
    for name, command in subcommands(group).items():
        path = f"{prefix} {name}"
        paths.append(path)
        if isinstance(command, click.Group):
            paths += command_paths(command, path)
    return paths


def test_every_command_is_in_the_readme() -> None:
    missing = [path for path in command_paths(cli) if f"`{path}" not in README]
    assert not missing


def test_every_command_has_help_ending_with_an_example() -> None:
    def examples(group: click.Group) -> list[tuple[str, bool]]:
        found = []
        for name, command in subcommands(group).items():
            found.append((name, "Example:" in (command.help or "")))
            if isinstance(command, click.Group):
                found += examples(command)
        return found

    assert [name for name, has in examples(cli) if not has] == []


def test_every_plugin_option_is_in_the_readme() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True, check=True
    )
    group = done.stdout.split("testmem:", 1)[1].split("\n\n", 1)[0]
    flags = re.findall(r"^  (--[a-z-]+)", group, flags=re.MULTILINE)
    assert "--memory" in flags
    assert [flag for flag in flags if f"`{flag}" not in README] == []
