"""Templates mined across messages: which tokens of a message are values.

A regex can mask only the values it knows in advance (numbers, addresses,
ids); a user name or a host name is a value because messages of one shape
disagree on it. The miner compares messages: each is masked and split into
tokens (`tokens`), and joins the template of its shape whose constant tokens
it repeats exactly, found through a fixed-depth tree over token count and
first token (Drain's, without its similarity threshold: a constant word that
differs is never averaged away, so ``VM Started`` and ``VM Paused`` stay two
templates). A template's position becomes a value (``<*>``) when it holds
``VALUES`` distinct words across templates that agree everywhere else, and
templates that differ only in how many tokens one value spans are one.

Every change is a `Generalised` (which templates became one, with which
tokens), so a caller can record it; template ids are derived from the first
message of each, and the same messages in the same order give the same
templates: a replay rebuilds them.

We write these few hundred lines instead of using the ``drain3`` package: its
similarity threshold merges templates whose constant words differ, its ids
are counters (not stable across two logs or processes that meet templates in
another order), and its state persists as a pickled snapshot, not as events.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

WILDCARD = "<*>"
VALUES = 5  # distinct words at one position that make it a value (4 VM states do not)
MAX_TOKENS = 400  # tokens of a message that are compared
_SEEN_CAP = VALUES  # distinct values kept per position: enough to decide
_SPAN = 0xF0000  # a masked span becomes one private-use character: chr(_SPAN + n)
_SPANS = re.compile("[\U000f0000-\U000ffffd]")

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_UNITS = (
    r"(?:[KMGT]i?B|[kKMG]b|bytes?|B|ms|msecs?|millis|us|µs|ns|s|secs?|seconds?|mins?|minutes?"
    r"|h|hrs?|hours?|days?|milliseconds|MILLISECONDS|SECONDS|%)"
)
# Values every system writes alike, masked (in this order) before tokens are
# compared: those a token with a digit would not already make a value, and
# those whose number of tokens varies (``10:20`` and ``10:20:30``). Each runs
# only on messages holding its trigger, which most do not.
_MASKS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (trigger, re.compile(pattern))
    for trigger, pattern in (
        ("://", r"\b[a-z][a-z0-9+.-]{1,15}://[^\s\"'<>]*"),  # URLs
        ("@", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),  # e-mail addresses
        ("::", r"(?<![\w:])(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}(?![\w:])"),  # IPv6
        (".", r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b"),  # IPv4 with port
        (":", r"\b\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?\b"),  # clock times and durations
        (
            "",  # dates, days, sizes and durations: one pass
            rf"\b(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+)?{_MONTH}\s+\d{{1,2}}\b"
            r"|\b\d{1,4}[-/]\d{1,2}[-/]\d{1,4}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?)?"
            rf"|(?<![\w.])<?-?\d+(?:[.,]\d+)?\s?{_UNITS}(?![\w/])",
        ),
        ("=", r"(?<==)[^\s,;)\]}\"|]+"),  # key=value: the value
        (
            "/",
            r"(?:(?<=[\s'\"(\[=])|^)(?:(?:~|<tmp>|\.\.?)(?:/[\w.@%+~-]+)+|(?:/[\w.@%+~-]+){2,})/?",
        ),  # paths
        ("\\", r"(?:(?<=\s)|^)(?:[A-Za-z]:)?(?:\\[\w.@%+~-]+){2,}\\?"),  # Windows paths
        ("Exception", r"\b(?:[a-z]\w*\.)+[A-Z]\w*Exception\b"),  # Java exception classes
        ("Error", r"\b(?:[a-z]\w*\.)+[A-Z]\w*Error\b"),
        (
            ".",
            r"\b(?:[\w-]+\.)+(?:com|net|org|edu|gov|mil|io|hk|cn|uk|de|jp|ru|fr|info"
            r"|biz|local|localdomain|lan|internal)\b(?![.\w-])",
        ),  # host names
    )
)
_TOKEN = re.compile(r"[^\s=:,;()\[\]{}|\"]+|[=:,;()\[\]{}|\"]")
_VALUE = re.compile("[\\d\U000f0000-\U000ffffd]")  # a digit or a masked span
_BOOLEANS = frozenset(("true", "false", "True", "False", "TRUE", "FALSE", "null", "None", "NULL"))


def tokens(message: str) -> tuple[list[str], list[str]]:
    """The message's tokens as compared (values as ``<*>``) and as written."""
    spans: list[str] = []

    def mark(match: re.Match[str]) -> str:
        spans.append(match.group())
        return chr(_SPAN + len(spans) - 1)

    for trigger, pattern in _MASKS:
        if trigger in message and len(spans) < 60000:
            message = pattern.sub(mark, message)
    compared, raw = [], []
    for token in _TOKEN.findall(message)[:MAX_TOKENS]:
        if token in _BOOLEANS or _VALUE.search(token):
            compared.append(WILDCARD)
            raw.append(_unmasked(token, spans) if spans else token)
        else:
            compared.append(token)
            raw.append(token)
    return compared, raw


def _unmasked(token: str, spans: list[str]) -> str:
    while _SPANS.search(token):  # a span may hold another (``key=<url>``)
        token = _SPANS.sub(lambda m: spans[ord(m.group()) - _SPAN], token)
    return token


@dataclass
class Template:
    """One shape of message: constant tokens and ``<*>`` values."""

    template_id: str
    group: str  # what the caller keeps apart (a failure's structure); "" for log lines
    tokens: list[str]
    order: int = 0  # templates met before this one
    # positions made values by comparison, which accept words as well as masked values
    open: set[int] = field(default_factory=set)
    count: int = 0
    # distinct words met at each constant position, up to VALUES
    seen: list[set[str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    def accepts(self, compared: list[str]) -> bool:
        """A masked value's position takes only masked values; an open one, words too."""
        return all(
            t == c or (t == WILDCARD and n in self.open)
            for n, (t, c) in enumerate(zip(self.tokens, compared, strict=True))
        )


@dataclass(frozen=True)
class Generalised:
    """Templates that became one (``into`` keeps its id), and its tokens now."""

    into: str
    merged: tuple[str, ...]
    tokens: tuple[str, ...]
    positions: tuple[int, ...]  # the positions that became values; (): a value's span

    def as_detail(self) -> dict[str, object]:
        return {
            "template_id": self.into,
            "merged": list(self.merged),
            "tokens": list(self.tokens),
            "positions": list(self.positions),
        }


@dataclass(frozen=True)
class Mined:
    template_id: str  # the live template the message belongs to
    first: str  # the template the message first created or joined
    is_new: bool
    changes: tuple[Generalised, ...]


class Miner:
    """Templates of the messages added so far, in the order they were added."""

    def __init__(self) -> None:
        self.templates: dict[str, Template] = {}
        self.merged_into: dict[str, str] = {}
        # the fixed-depth tree: (group, token count, first token or <*>) -> template ids
        self._tree: dict[tuple[str, int, str], list[str]] = {}
        # (group, tokens with one position blanked, that position) -> template ids
        self._slots: dict[tuple[str, tuple[str, ...], int], set[str]] = {}
        # (group, tokens) -> the filed template with exactly these tokens
        self._exact: dict[tuple[str, tuple[str, ...]], str] = {}
        # (group, tokens with each run of values collapsed) -> template id
        self._spans: dict[tuple[str, tuple[str, ...]], str] = {}

    def add(self, message: str, group: str = "") -> Mined:
        compared, raw = tokens(message)
        template = self._match(group, compared)
        is_new = template is None
        if template is None:
            template = self._create(group, compared)
        template.count += 1
        first = template.template_id
        changes = self._learn(template, raw)
        if is_new and (pair := self._generalise_pairs(self.template(first))):
            changes.append(pair)
        return Mined(self.resolve(first), first, is_new, tuple(changes))

    def find(self, message: str, group: str = "") -> str | None:
        """The template a message would join, learning nothing from it."""
        found = self._match(group, tokens(message)[0])
        return found.template_id if found else None

    def resolve(self, template_id: str) -> str:
        while template_id in self.merged_into:
            template_id = self.merged_into[template_id]
        return template_id

    def template(self, template_id: str) -> Template:
        return self.templates[self.resolve(template_id)]

    def live(self) -> Iterable[Template]:
        return (t for t in self.templates.values() if t.template_id not in self.merged_into)

    # -- the tree -------------------------------------------------------------

    def _match(self, group: str, compared: list[str]) -> Template | None:
        """The most specific live template whose constants the message repeats."""
        exact = self._exact.get((group, tuple(compared)))
        if exact is not None:
            return self.templates[exact]
        head = compared[0] if compared else ""
        found = None
        for first in dict.fromkeys((head, WILDCARD)):
            for template_id in self._tree.get((group, len(compared), first), ()):
                template = self.templates[template_id]
                if template.accepts(compared) and (
                    found is None or _specificity(template) > _specificity(found)
                ):
                    found = template
        return found

    def _create(self, group: str, compared: list[str]) -> Template:
        digest = hashlib.sha256("\x1f".join([group, *compared]).encode()).hexdigest()
        template_id = next(
            f"T-{digest[:n]}" for n in range(10, 65) if f"T-{digest[:n]}" not in self.templates
        )
        template = Template(
            template_id,
            group,
            list(compared),
            order=len(self.templates),
            seen=[set() for _ in compared],
        )
        self.templates[template_id] = template
        self._file(template)
        return template

    def _file(self, template: Template) -> None:
        key = template.group, len(template.tokens), _head(template.tokens)
        self._tree.setdefault(key, []).append(template.template_id)
        self._exact.setdefault((template.group, tuple(template.tokens)), template.template_id)
        for position in range(len(template.tokens)):
            self._slots.setdefault(_slot(template, position), set()).add(template.template_id)
        if WILDCARD in template.tokens:
            self._spans.setdefault(
                (template.group, _collapsed(template.tokens)), template.template_id
            )

    def _unfile(self, template: Template) -> None:
        key = template.group, len(template.tokens), _head(template.tokens)
        self._tree[key].remove(template.template_id)
        if self._exact.get((template.group, tuple(template.tokens))) == template.template_id:
            del self._exact[(template.group, tuple(template.tokens))]
        for position in range(len(template.tokens)):
            self._slots[_slot(template, position)].discard(template.template_id)

    # -- generalising ------------------------------------------------------------

    def _learn(self, template: Template, raw: list[str]) -> list[Generalised]:
        """Note the message's words; generalise where a position now holds enough."""
        grown = []
        for position, word in enumerate(raw):
            values = template.seen[position]
            if word not in values and len(values) < _SEEN_CAP:
                values.add(word)
                grown.append(position)
        changes: list[Generalised] = []
        for position in grown:
            change = self._generalise(self.template(template.template_id), position)
            if change:
                changes.append(change)
        if not (grown and (changes or template.count == 1)):
            return changes
        span = self._join_span(self.template(template.template_id))
        return [*changes, span] if span else changes

    def _generalise(self, template: Template, position: int) -> Generalised | None:
        """Make ``position`` a value if the templates that agree elsewhere hold enough words."""
        siblings = [self.templates[t] for t in self._slots.get(_slot(template, position), ())]
        if len(siblings) < 2 and template.tokens[position] == WILDCARD:
            return None
        return self._merge(siblings, (position,))

    def _generalise_pairs(self, template: Template) -> Generalised | None:
        """Two positions that hold words together (``view: Set(ann); modify: Set(ann)``):
        values if the templates that agree outside them hold enough words at each."""
        differing: dict[str, frozenset[int]] = {}
        for other in self._neighbours(template):
            found = self.templates[other]
            positions = frozenset(_differences(template.tokens, found.tokens, 3))
            if len(positions) <= 2:
                differing[other] = positions
        for pair in sorted({d for d in differing.values() if len(d) == 2}, key=sorted):
            members = [self.templates[t] for t, d in differing.items() if d <= pair]
            if change := self._merge(members, tuple(sorted(pair))):
                return change
        return None

    def _neighbours(self, template: Template) -> list[str]:
        """Live templates of its length in its branch of the tree and the branch of a
        value first: a pair of values at the very start is not looked for."""
        length, head = len(template.tokens), _head(template.tokens)
        heads = dict.fromkeys((head, WILDCARD))
        return [t for h in heads for t in self._tree.get((template.group, length, h), ())]

    def _merge(self, members: list[Template], positions: tuple[int, ...]) -> Generalised | None:
        """One template of ``members`` if each position holds VALUES words among them."""
        for position in positions:
            if len(set().union(*(t.seen[position] for t in members))) < VALUES:
                return None
        members = sorted(members, key=_order)
        into = members[0]
        for member in members:
            self._unfile(member)
        into.tokens = [WILDCARD if n in positions else t for n, t in enumerate(into.tokens)]
        into.open = set().union(*(t.open for t in members), positions)
        into.seen = [set().union(*(t.seen[n] for t in members)) for n in range(len(into.tokens))]
        for member in members[1:]:
            into.count += member.count
            self.merged_into[member.template_id] = into.template_id
        self._file(into)
        merged = tuple(t.template_id for t in members[1:])
        return Generalised(into.template_id, merged, tuple(into.tokens), positions)

    def _join_span(self, template: Template) -> Generalised | None:
        """Templates that differ only in how many tokens a value spans are one."""
        if WILDCARD not in template.tokens:
            return None
        alias = self.resolve(self._spans[(template.group, _collapsed(template.tokens))])
        if alias == template.template_id:
            return None
        older, newer = sorted((self.templates[alias], template), key=_order)
        if newer.template_id in self.merged_into:
            return None
        self.merged_into[newer.template_id] = older.template_id
        older.count += newer.count
        return Generalised(older.template_id, (newer.template_id,), tuple(older.tokens), ())


def _order(template: Template) -> int:
    return template.order


def _specificity(template: Template) -> int:
    return sum(t != WILDCARD for t in template.tokens)


def _head(tokens: list[str]) -> str:
    return tokens[0] if tokens else ""


def _slot(template: Template, position: int) -> tuple[str, tuple[str, ...], int]:
    blanked = (*template.tokens[:position], "", *template.tokens[position + 1 :])
    return template.group, blanked, position


def _differences(a: list[str], b: list[str], enough: int) -> list[int]:
    """Positions where two templates differ, up to ``enough`` of them."""
    found: list[int] = []
    for n, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            found.append(n)
            if len(found) == enough:
                break
    return found


def _collapsed(tokens: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for token in tokens:
        if not (token == WILDCARD and out and out[-1] == WILDCARD):
            out.append(token)
    return tuple(out)


def mine(messages: Iterable[str], groups: Iterable[str] | None = None) -> tuple[Miner, list[str]]:
    """Mine all messages; each one's first template (resolve it for the final one)."""
    miner = Miner()
    group_of = iter(groups) if groups is not None else None
    firsts = [miner.add(m, next(group_of) if group_of else "").first for m in messages]
    return miner, firsts


__all__ = ["VALUES", "WILDCARD", "Generalised", "Mined", "Miner", "Template", "mine", "tokens"]
