"""Escaping: every value from an API, a test or a user is text, never markup.

One helper per format a value lands in. Markdown: inline code and fences
longer than any run of backticks inside, table cells with ``|`` and newlines
escaped, plain text with Markdown's punctuation and raw HTML (``<``, ``&``)
escaped. HTML: Jinja's autoescape. Terminal: escape sequences (CSI, OSC with
OSC-8 hyperlinks, C1) and control characters removed. JSON: whole, but every
character a terminal would act on written as a ``\\u`` escape.
"""

from __future__ import annotations

import html as _html
import json
import re
from typing import Any

_BACKTICKS = re.compile(r"`+")
_FENCE_RUNS = re.compile(r"`+|~+")
# Braces and parentheses make no markup alone: a link needs its brackets.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]#!|~>])")
_NEWLINES = re.compile(r"\r\n|[\r\n\u2028\u2029]")
# ESC sequences (CSI ... final byte; OSC/DCS/APC/PM ... BEL or ST; two-byte
# ones), their 8-bit C1 forms, then any other control character but \n and \t.
_TERMINAL_SEQUENCES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]P^_X]|[\x90\x9d\x9e\x9f\x98])(?:[^\x07\x1b\x9c]|\x1b(?!\\))*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)
# What json.dumps(ensure_ascii=False) leaves raw that a terminal acts on: DEL,
# C1 controls (8-bit CSI, OSC...), bidi overrides, line and paragraph separators.
_JSON_RAW_CONTROLS = re.compile(r"[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def html(text: object) -> str:
    """Text for HTML, attributes included."""
    return _html.escape(str(text), quote=True)


def md_text(text: object) -> str:
    """Plain text inside a Markdown line: punctuation that would start markup
    is backslash-escaped, ``<`` and ``&`` become entities, newlines spaces."""
    flat = _NEWLINES.sub(" ", str(text))
    escaped = _MARKDOWN_PUNCTUATION.sub(r"\\\1", flat.replace("&", "&amp;"))
    return escaped.replace("<", "&lt;")


def md_code(text: object) -> str:
    """Inline code: delimited by one backtick more than the longest run inside
    (padded where the text starts or ends with one), on one line."""
    flat = _NEWLINES.sub(" ", str(text))
    fence = "`" * (max((len(r) for r in _BACKTICKS.findall(flat)), default=0) + 1)
    pad = " " if flat.startswith(("`", " ")) or flat.endswith(("`", " ")) else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def md_fence(text: object, info: str = "") -> str:
    """A fenced code block no line of ``text`` can close: its fence is one
    longer than the longest run of backticks or tildes inside (at least 3)."""
    body = str(text)
    longest = max((len(r) for r in _FENCE_RUNS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body}\n{fence}"


def md_cell(text: str) -> str:
    """A cell of a Markdown table (already-escaped text or code): ``|`` escaped
    (GitHub reads ``\\|`` as ``|`` even inside code), on one line."""
    return _NEWLINES.sub(" ", text).replace("|", "\\|")


def terminal(text: object) -> str:
    """Text safe to print to a terminal: no escape sequence, hyperlink or
    control character can reach it; newlines and tabs are kept."""
    return _TERMINAL_SEQUENCES.sub("", str(text))


def json_text(value: Any, **options: Any) -> str:
    """JSON with every value whole, safe to print: control characters are
    ``\\uXXXX`` escapes (they occur only inside strings, where JSON reads
    them back as the same characters); other text stays as it is."""
    text = json.dumps(value, ensure_ascii=False, **options)
    return _JSON_RAW_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
