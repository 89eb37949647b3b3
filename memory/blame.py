"""Which one exchange explains a failure (`FailureObserved.exchange_id`).

Rules, first that applies (its name is `FailureObserved.exchange_rule`):

- ``setup``: a failure in setup is explained by an exchange its fixtures made
  (the one the failure names, else an error response, else the last);
- ``named``: the failure's text names the exchange: its URL path, its status
  code or a fragment of its response body (the latest such, the most named);
- ``error``: the last error response (status >= 400, or no response);
- ``last``: the last exchange of the test body;
- ``fixture``: a test body that made no request asserts on what its fixtures
  fetched (a ``response`` fixture, the suite's style): its failure is
  explained by their setup exchanges, chosen as the body's would be (named,
  error, last: the fixture set up last is the one nearest the test).

Fixture exchanges of setup never explain a failure of a body that made
requests of its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from testmem.memory.events import HttpExchanged

_FRAGMENT = re.compile(r"[\w@.\-]{8,}")  # distinctive words of a body, as a failure quotes them


def explaining_exchange(
    text: str, phase: str, exchanges: Sequence[HttpExchanged]
) -> tuple[str | None, str | None]:
    """The id of the exchange that explains a failure in ``phase`` with this
    message, and the rule that chose it. Not the traceback: its source lines
    name every URL the test calls."""
    made = [x for x in exchanges if x.phase == "setup"]
    body = [x for x in exchanges if x.phase != "setup"]
    if phase == "setup" or not body:  # what the fixtures fetched explains it
        chosen = _named(text, made) or _errors(made) or made[-1:]
        rule = "setup" if phase == "setup" else "fixture"
        return (chosen[-1].exchange_id, rule) if chosen else (None, None)
    for rule, chosen in (("named", _named(text, body)), ("error", _errors(body)), ("last", body)):
        if chosen:
            return chosen[-1].exchange_id, rule
    return None, None


def _errors(exchanges: Sequence[HttpExchanged]) -> list[HttpExchanged]:
    return [x for x in exchanges if _is_error(x)]


def _is_error(x: HttpExchanged) -> bool:
    return x.status is None or x.status >= 400


def _named(text: str, exchanges: Sequence[HttpExchanged]) -> list[HttpExchanged]:
    """The exchanges the text names, best last: named most, then an error
    response ("assert 404 == 200" names both statuses), then the latest."""
    scored = [(_names(text, x), _is_error(x), i, x) for i, x in enumerate(exchanges)]
    return [x for score, _, _, x in sorted(scored, key=lambda s: s[:3]) if score]


def _names(text: str, x: HttpExchanged) -> int:
    path = _path(x.url)
    named = int(len(path) > 1 and path in text)
    if x.status is not None and re.search(rf"(?<![\w.:]){x.status}(?![\w.])", text):
        named += 1
    head = (x.response_body.text or "")[:2048] if x.response_body.encoding == "utf-8" else ""
    if any(word in text for word in _FRAGMENT.findall(head)[:50]):
        named += 1
    return named


def _path(url: str) -> str:
    try:
        return urlsplit(url).path
    except ValueError:  # a URL that does not parse names no path
        return ""
