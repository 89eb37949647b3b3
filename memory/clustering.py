"""Clustering messages in memory: what `testmem cluster` runs, no store involved.

The stages of matching, in batch: every message is mined first (so each
template has seen all its values before any is judged), then the first
message of each template that is a failure is linked by the matcher (the
embedding decides only between templates), and every message follows its
template's first. A set of bare log lines never loads the model.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from testmem.memory.failure_templates import group_of, is_log_line, text_of
from testmem.memory.matching import (
    DEFAULT_RELATED,
    DEFAULT_SAME,
    Known,
    Link,
    Matcher,
    fingerprint_of,
)
from testmem.memory.templates import Miner

if TYPE_CHECKING:
    from testmem.memory.embed import Embedder


@dataclass(frozen=True)
class Clustering:
    clusters: list[str]  # one incident id per input message, in order
    links: list[Link]
    embedded: int = 0  # messages the model judged: the first failure of each template

    def summary(self) -> dict[str, Any]:
        sizes = Counter(self.clusters)
        return {
            "messages": len(self.clusters),
            "clusters": len(sizes),
            "largest": sizes.most_common(1)[0][1] if sizes else 0,
            "singletons": sum(1 for n in sizes.values() if n == 1),
            "by_method": dict(Counter(link.method for link in self.links)),
            "embedded": self.embedded,
        }


def cluster_messages(
    messages: Iterable[str | bytes],
    *,
    same: float = DEFAULT_SAME,
    related: float = DEFAULT_RELATED,
    embedder: Embedder | None = None,
) -> Clustering:
    """Group failure messages (or log lines) into incidents."""
    failures = [{"message": _text(m)} for m in messages]
    return cluster_failures(failures, same=same, related=related, embedder=embedder)


def cluster_failures(
    failures: Iterable[dict[str, Any]],
    *,
    same: float = DEFAULT_SAME,
    related: float = DEFAULT_RELATED,
    embedder: Embedder | None = None,
    k: int = 25,
) -> Clustering:
    """Group failures (message plus any of exception_type, traceback, nodeid,
    method, route, status) into incidents."""
    rows = [{**f, "failure_id": str(i)} for i, f in enumerate(failures)]
    miner = Miner()
    firsts = [miner.add(*_mined(row)).first for row in rows]
    templates = [miner.resolve(f) for f in firsts]
    leaders: dict[str, int] = {}
    for n, template in enumerate(templates):
        leaders.setdefault(template, n)
    first_rows = [rows[n] for n in leaders.values()]
    led = _link_leaders(first_rows, same, related, embedder, k)
    links = [
        _follow(led[str(leaders[t])], row, n == leaders[t])
        for n, (row, t) in enumerate(zip(rows, templates, strict=True))
    ]
    embedded = sum(1 for row in first_rows if not is_log_line(row))
    return Clustering([link.incident_id for link in links], links, embedded)


def _mined(row: dict[str, Any]) -> tuple[str, str]:
    """The text a row's template is mined from, and the group it is mined within."""
    message = str(row.get("message") or "")
    if is_log_line(row):
        return message, ""
    fp = fingerprint_of(row)
    return text_of(fp, message), group_of(fp)


def _link_leaders(
    rows: list[dict[str, Any]],
    same: float,
    related: float,
    embedder: Embedder | None,
    k: int,
) -> dict[str, Link]:
    """Each template's first row linked: a failure by the matcher (the embedding
    decides between templates), a log line to an incident of its own."""
    failures = [row for row in rows if not is_log_line(row)]
    known, linked = Known(), {}
    if failures:  # the matcher loads numpy, and the model if a failure needs it
        matcher = Matcher(None, same=same, related=related, embedder=embedder, k=k)
        linked = {link.failure_id: link for link in matcher.link_all(failures)}
        known = matcher.known
    for row in rows:
        if row["failure_id"] not in linked:
            signature = hashlib.sha256(str(row.get("message")).encode("utf-8", "replace"))
            incident_id = known.new_incident_id(signature.hexdigest())
            known.incident_ids.add(incident_id)
            linked[row["failure_id"]] = Link(
                row["failure_id"], incident_id, signature.hexdigest()[:16], "new", 0.0, True,
                None, [],
            )  # fmt: skip
    return linked


def _follow(leader: Link, row: dict[str, Any], is_leader: bool) -> Link:
    """A row's link: its template's first row's, or that row's own."""
    if is_leader:
        return leader
    return replace(
        leader, failure_id=row["failure_id"], method="template", score=1.0, is_new=False,
        related_incident=None, candidates=[],
    )  # fmt: skip


def evaluation_clusters(failures: list[dict[str, Any]], same: float = DEFAULT_SAME) -> list[str]:
    """The ``cluster`` bench/eval_matching.py measures (``--sweep`` varies ``same``)."""
    return cluster_failures(failures, same=same).clusters


def _text(message: str | bytes) -> str:
    if isinstance(message, bytes):
        return message.decode("utf-8", "replace")
    return message


__all__ = ["Clustering", "cluster_failures", "cluster_messages", "evaluation_clusters"]
