"""Clustering messages in memory: what `testmem cluster` runs, no store involved.

The stages of matching, in batch: every message is mined first (so each
template has seen all its values before any is judged), then the first
message of each template that is a failure is linked by the matcher (the
embedding decides only between templates), and every message follows its
template's first. A set of bare log lines never loads the model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from memory.failure_templates import group_of
from memory.matching import DEFAULT_RELATED, DEFAULT_SAME, Link, Matcher, fingerprint_of
from memory.templates import Miner

if TYPE_CHECKING:
    from memory.embed import Embedder


@dataclass(frozen=True)
class Clustering:
    clusters: list[str]  # one incident id per input message, in order
    links: list[Link]

    def summary(self) -> dict[str, Any]:
        sizes = Counter(self.clusters)
        return {
            "messages": len(self.clusters),
            "clusters": len(sizes),
            "largest": sizes.most_common(1)[0][1] if sizes else 0,
            "singletons": sum(1 for n in sizes.values() if n == 1),
            "by_method": dict(Counter(link.method for link in self.links)),
            "embedded": sum(
                1 for link in self.links if link.method in ("new", "similar") and link.score > 0
            ),
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
    prints = [fingerprint_of(row) for row in rows]
    miner = Miner()
    firsts = [
        miner.add(str(r.get("message") or ""), group_of(p)).first
        for r, p in zip(rows, prints, strict=True)
    ]
    templates = [miner.resolve(f) for f in firsts]
    leaders: dict[str, int] = {}
    for n, template in enumerate(templates):
        leaders.setdefault(template, n)
    matcher = Matcher(None, same=same, related=related, embedder=embedder, k=k)
    led = dict(zip(leaders, matcher.link_all([rows[n] for n in leaders.values()]), strict=True))
    links = [
        _follow(led[t], rows[n]["failure_id"], prints[n].signature, n == leaders[t])
        for n, t in enumerate(templates)
    ]
    return Clustering([link.incident_id for link in links], links)


def _follow(leader: Link, failure_id: str, signature: str, is_leader: bool) -> Link:
    """A message's link: its template's first message's, or that message's own."""
    if is_leader:
        return leader
    return replace(
        leader,
        failure_id=failure_id,
        signature=signature,
        method="template",
        score=1.0,
        is_new=False,
        related_incident=None,
        candidates=[],
    )


def evaluation_clusters(failures: list[dict[str, Any]], same: float = DEFAULT_SAME) -> list[str]:
    """The ``cluster`` bench/eval_matching.py measures (``--sweep`` varies ``same``)."""
    return cluster_failures(failures, same=same).clusters


def _text(message: str | bytes) -> str:
    if isinstance(message, bytes):
        return message.decode("utf-8", "replace")
    return message


__all__ = ["Clustering", "cluster_failures", "cluster_messages", "evaluation_clusters"]
