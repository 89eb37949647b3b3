"""Names of server errors as causes, for `testmem.memory.matching.Matcher.link_run`.

A server error names its cause by what its body says, once volatile parts
are masked (`testmem.memory.fingerprint.normalise`): ``KeyError: 'warehouse'``
on two routes is one cause, and two different errors on one route are two.
The values of the request itself (a slug, a username, a query value) are
masked too: one error about two articles is one cause. A body that says no
more than "internal server error" names no cause of its own; then its
request does (method, route and status), as before.

These names are data the matcher compares: two *different* server-error
causes never share an incident (`is_server_error_cause`).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from testmem.memory.fingerprint import normalise

PREFIX = "server error "
TEMPLATE_CHARS = 200  # of the masked body: enough to tell two errors apart
_LEAVES = 20  # strings of a JSON body read
_SHORTEST_VALUE = 3  # characters of a request value worth masking in its error
_TAG = re.compile(r"<[^>]{0,200}>")
_WORD = re.compile(r"[A-Za-z]+")
# Words any server's error page says, and the masks `normalise` puts in for values.
_GENERIC_WORDS = """
    a an the internal server error errors exception unexpected unknown unhandled occurred
    occured has have had something went wrong please try again later request failed failure
    sorry oops service unavailable detail details message status code title type body http
    https id trace traceid correlation at on for of in to is was with while contact support
    administrator and not be could been your we our this that processing process completed
    html head h p hr center nginx apache gunicorn uvicorn werkzeug
    n hex uuid ts date time v ip port email tmp addr duration url"""
_GENERIC = frozenset(_GENERIC_WORDS.split())


def server_error_cause(
    method: str | None, route: str | None, status: int, body: str, url: str = ""
) -> str:
    """The cause a server error names: its body's template when the body says
    something of its own, else its request (``url``: its values are masked)."""
    template = error_template(_without(body, request_values(route or "", url)))
    if template:
        return f"{PREFIX}{status}: {template}"
    return f"{PREFIX}{status} on {method} {route}"


def is_server_error_cause(cause: str | None) -> bool:
    return bool(cause and cause.startswith(PREFIX))


def error_template(body: str) -> str | None:
    """A server error body with its volatile parts masked, or None when it says
    nothing beyond words every error page says."""
    template = " ".join(normalise(_words_of(body)).split())[:TEMPLATE_CHARS]
    own = {w.lower() for w in _WORD.findall(template)} - _GENERIC
    return template if own else None


def request_values(route: str, url: str) -> list[str]:
    """The values a request carries: its path parameters (``{slug}`` of the
    route) and its query values, the longest first."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a URL that does not parse carries no values
        return []
    path, names = parts.path.split("/"), route.split("/")
    values = [v for _, v in parse_qsl(parts.query)]
    if len(path) == len(names):
        values += [unquote(v) for n, v in zip(names, path, strict=True) if n.startswith("{")]
    return sorted({v for v in values if len(v) >= _SHORTEST_VALUE}, key=len, reverse=True)


def _without(body: str, values: list[str]) -> str:
    for value in values:
        body = re.sub(rf"(?<![\w-]){re.escape(value)}(?![\w-])", "<v>", body)
    return body


def _words_of(body: str) -> str:
    """The text of a body: a JSON body's strings, a page without its tags."""
    try:
        return " | ".join(_strings(json.loads(body))[:_LEAVES])
    except (ValueError, RecursionError):  # not JSON, or JSON nested past reading
        return _TAG.sub(" ", body)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
