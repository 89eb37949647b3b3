"""The template stage of matching: each failure's template, and the incident it belongs to.

Templates (`testmem.memory.templates`) are mined within one structure: a test's
failures with one exception type, status, request, kind of check and names
are compared with each other only, so ``KeyError: 'name'`` and ``KeyError:
'email'`` never become one template. A bare log line (no test, no Python
exception) is mined in one shared group and never needs the model.

A template's incident is the one its first failure was linked to; a template
that generalises joins the oldest template it merged with, so later failures
follow that incident and past ones stay where they were linked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any

from testmem.memory.fingerprint import MESSAGE_CAP, Fingerprint, exception_type_of
from testmem.memory.templates import WILDCARD, Generalised, Miner

if TYPE_CHECKING:
    from testmem.memory.query import History

# Exception types of other runtimes, which reach `testmem cluster` in log lines.
_FOREIGN_TYPES = ("java.", "javax.", "org.", "com.", "scala.", "kotlin.")


def is_failure(fp: Fingerprint) -> bool:
    """A test's failure or a Python exception, whose wording the model may judge."""
    return bool(fp.test or (fp.exception_type and not fp.exception_type.startswith(_FOREIGN_TYPES)))


def is_log_line(failure: dict[str, Any]) -> bool:
    """A bare message that names no test, exception or request: mined as written,
    without a fingerprint (the cheap path of `testmem cluster` over a log)."""
    if any(failure.get(k) for k in ("nodeid", "traceback", "exception_type", "route", "status")):
        return False
    exception_type = exception_type_of(failure.get("message"))
    return not exception_type or exception_type.startswith(_FOREIGN_TYPES)


def group_of(fp: Fingerprint) -> str:
    """What a failure's template is mined within: its structure ("" for a log line)."""
    if not is_failure(fp):
        return ""
    parts = (fp.exception_type, str(fp.status or ""), fp.method or "", fp.route or "", fp.kind)
    return "\x1f".join((*parts, *fp.keys))


def text_of(fp: Fingerprint, message: str) -> str:
    """What is mined: a failure's masked text (quoted data values, ids and the
    like already masked by `testmem.memory.fingerprint`), else the log line as written."""
    return fp.wording if is_failure(fp) else message[:MESSAGE_CAP]


@dataclass(frozen=True)
class Placed:
    """Where a failure's text fell: its template and that template's incident, if any."""

    template_id: str  # the live template
    first: str  # the template it first created or joined
    incident_id: str | None
    changes: tuple[Generalised, ...]


class Templates:
    """The templates of the signatures' first failures, in the order they were linked."""

    def __init__(self) -> None:
        self.miner = Miner()
        self.incidents: dict[str, str] = {}  # template id -> its first failure's incident
        self.of: dict[str, str] = {}  # signature -> the template its first failure joined

    def place(self, fp: Fingerprint, message: str) -> Placed:
        """Mine the first failure of a new signature."""
        mined = self.miner.add(text_of(fp, message), group_of(fp))
        self.of[fp.signature] = mined.first
        return Placed(mined.template_id, mined.first, self.incident(mined.first), mined.changes)

    def find(self, fp: Fingerprint, message: str) -> str | None:
        """The live template a failure would join, mining nothing."""
        found = self.miner.find(text_of(fp, message), group_of(fp))
        return self.miner.resolve(found) if found else None

    def incident(self, template_id: str) -> str | None:
        return self.incidents.get(self.miner.resolve(template_id))

    def settle(self, template_id: str, incident_id: str) -> None:
        """A template's incident is its first failure's, and stays so."""
        self.incidents.setdefault(self.miner.resolve(template_id), incident_id)

    def apart(self, template_id: str | None, signature: str) -> bool:
        """Whether a signature's template reads as ``template_id``'s with a constant word
        of its own in place of one of ``template_id``'s: two causes, however close their
        texts are (``VM Started`` / ``VM Paused``, ``UNIQUE`` / ``NOT NULL constraint
        failed``). Their tokens align for the most part (`ALIGNED`) and differ where
        both hold a word, not a value; a paraphrase aligns far less."""
        theirs = self.of.get(signature)
        if template_id is None or theirs is None:
            return False
        mine, other = self.miner.template(template_id), self.miner.template(theirs)
        if mine is other or _exception(mine.group) != _exception(other.group):
            return False
        return substituted(mine.tokens, other.tokens)

    def replay(self, history: History, incident_of: dict[str, str]) -> None:
        """Mine the log's first failure of each signature again, in the order linked."""
        from testmem.memory.matching import fingerprint_of

        for row in first_failures(history):
            fp = fingerprint_of(row)
            placed = self.place(fp, row.get("message") or "")
            self.of[row["signature"]] = placed.first  # as the link recorded it
            incident = incident_of.get(row["signature"])
            if incident:
                self.settle(placed.first, incident)


SHORTEST = 4  # tokens below which a template's words are too few to align
ALIGNED = 0.7  # share of the shorter template's tokens that two readings of one text share


def substituted(a: list[str], b: list[str]) -> bool:
    """Whether ``b`` is ``a`` with some constant words replaced by others."""
    if min(len(a), len(b)) < SHORTEST:
        return False
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    shared = sum(block.size for block in matcher.get_matching_blocks())
    if shared < ALIGNED * min(len(a), len(b)):
        return False
    return any(
        op == "replace" and _has_word(a[i1:i2]) and _has_word(b[j1:j2])
        for op, i1, i2, j1, j2 in matcher.get_opcodes()
    )


def _exception(group: str) -> str:
    return group.split("\x1f", 1)[0]


def _has_word(tokens: list[str]) -> bool:
    return any(t != WILDCARD and t.isalnum() for t in tokens)


_FIRST_FAILURES_SQL = """
    WITH firsts AS (
        SELECT l.signature, arg_min(l.failure_id, (l.occurred_at, l.event_id)) AS failure_id,
               min(l.occurred_at) AS at
        FROM facts l WHERE l.type = 'FailureLinked' AND l.failure_id IS NOT NULL
        GROUP BY l.signature)
    SELECT s.signature, f.message, f.exception_type, f.traceback, f.traceback_encoding,
           f.nodeid, x.method, x.route, x.status
    FROM firsts s JOIN events f ON f.failure_id = s.failure_id AND f.type = 'FailureObserved'
    LEFT JOIN explaining e ON e.failure_id = f.failure_id
    LEFT JOIN exchanges x ON x.exchange_id = e.exchange_id
    ORDER BY s.at, s.signature"""


def first_failures(history: History) -> Iterable[dict[str, Any]]:
    return history.sql(_FIRST_FAILURES_SQL).dicts()
