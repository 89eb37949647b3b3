"""Rebuilding the Chroma index of signatures from the log, then linking what was never linked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from testmem.memory.matching import Known, Matcher, failure_rows, fingerprint_of
from testmem.memory.query import History
from testmem.memory.store import Store

if TYPE_CHECKING:
    from testmem.memory.embed import Embedder

_SAMPLE_FAILURES_SQL = """
    SELECT l.signature, arg_min(l.failure_id, f.occurred_at) AS failure_id
    FROM facts l JOIN failures f ON f.failure_id = l.failure_id
    WHERE l.type = 'FailureLinked' GROUP BY l.signature"""


def _texts(history: History) -> dict[str, str]:
    """The text to embed for each linked signature, from its first failure. Keyed
    by the signature the link recorded, so a later change to fingerprinting
    cannot orphan an old signature."""
    signature_of = {f: s for s, f in history.sql(_SAMPLE_FAILURES_SQL).rows}
    samples = failure_rows(
        history, "f.failure_id IN (SELECT failure_id FROM (" + _SAMPLE_FAILURES_SQL + "))", []
    )
    return {signature_of[row["failure_id"]]: fingerprint_of(row).text for row in samples}


@dataclass(frozen=True)
class Reindexed:
    signatures: int
    incidents: int
    linked: int  # failures that had no link yet and were linked now


def reindex(
    store: Store,
    *,
    chroma_url: str | None = None,
    embedder: Embedder | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Reindexed:
    """Rebuild the index from the log, then link failures never linked.

    ``progress(done, total)`` is called as signatures are embedded and written.
    """
    history = History(store)
    known = Known.load(history)
    matcher = Matcher(store, embedder=embedder, chroma_url=chroma_url)
    texts = _texts(history)
    records = [known.live_record(s) for s in sorted(known.signatures)]
    assert matcher.index is not None
    matcher.index.reset()
    step = 2000
    for start in range(0, len(records), step):
        chunk = records[start : start + step]
        vectors = matcher.embedder.embed(
            {r.signature: texts[r.signature] for r in chunk if r.signature in texts}
        )
        matcher.index.upsert(chunk, vectors, texts)
        if progress:
            progress(start + len(chunk), len(records))
    matcher.known = known
    matcher._index_ok = True
    pending = failure_rows(
        history,
        "f.failure_id NOT IN (SELECT failure_id FROM facts WHERE type = 'FailureLinked' "
        "AND failure_id IS NOT NULL)",
        [],
    )
    linked = matcher.link_all(pending) if pending else []
    return Reindexed(
        signatures=len(matcher.known.signatures),
        incidents=len({matcher.known.live_record(s).incident_id for s in matcher.known.signatures}),
        linked=len(linked),
    )


__all__ = ["Reindexed", "reindex"]
