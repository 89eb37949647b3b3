"""Unified diffs of one file: make one, count its changes, apply it strictly."""

from __future__ import annotations

import difflib
import re

from testmem.memory.errors import TestmemError


class PatchError(TestmemError):
    """A patch does not apply to the file as it is now."""


def unified_diff(old: str, new: str, relpath: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{relpath}",
        tofile=f"b/{relpath}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def changed_lines(diff: str) -> int:
    return sum(
        1 for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))
    )


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def apply_patch(source: str, diff: str) -> str:
    """Apply a unified diff of one file; raise PatchError if it does not fit."""
    unterminated = bool(source) and not source.endswith("\n")  # diffs end lines with \n
    lines = (source + "\n" if unterminated else source).splitlines(keepends=True)
    out: list[str] = []
    position = 0
    for start, old, new in _hunks(diff):
        at = _find(lines, old, start - 1 if old else start, position)
        out += lines[position:at] + new
        position = at + len(old)
    patched = "".join(out + lines[position:])
    return patched.removesuffix("\n") if unterminated else patched


def _hunks(diff: str) -> list[tuple[int, list[str], list[str]]]:
    hunks: list[tuple[int, list[str], list[str]]] = []
    for line in diff.splitlines(keepends=True):
        header = _HUNK.match(line)
        if header:
            hunks.append((int(header.group(1)), [], []))
        elif hunks and line[:1] in (" ", "-", "+"):
            _, old, new = hunks[-1]
            if line[0] in " -":
                old.append(line[1:])
            if line[0] in " +":
                new.append(line[1:])
    if not hunks:
        raise PatchError("the patch holds no change")
    return hunks


def _find(lines: list[str], block: list[str], expected: int, after: int) -> int:
    """Where ``block`` sits: at the line the patch says, else at one unique place."""
    if lines[expected : expected + len(block)] == block:
        return expected
    places = [
        i for i in range(after, len(lines) - len(block) + 1) if lines[i : i + len(block)] == block
    ]
    if len(places) != 1:
        raise PatchError("the patch no longer applies: the test file changed since it was proposed")
    return places[0]


def applies(source: str, diff: str) -> bool:
    try:
        apply_patch(source, diff)
    except PatchError:
        return False
    return True


def reverse(diff: str) -> str:
    """The diff that undoes ``diff``."""
    swap = {"-": "+", "+": "-"}
    return "".join(
        swap[line[0]] + line[1:]
        if line[:1] in swap and not line.startswith(("---", "+++"))
        else line
        for line in diff.splitlines(keepends=True)
    )
