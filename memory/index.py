"""The Chroma projection: one record per failure signature, for nearest-neighbour search.

The index holds, for every signature the log has linked, its embedding and a
copy of what the log says about it (incident, tests, route, status, exception
type, first/last seen, count). It is a projection: `testmem reindex` deletes
and rebuilds it from the event log, so it may be lost or damaged at any time.

Embedded Chroma (``DIR/chroma``) by default; a Chroma server when a URL is
given or ``$TESTMEM_CHROMA_URL`` is set. Embeddings are always passed in:
Chroma's default embedding function would try to download a model. Writes to
an embedded index take a file lock, so concurrent processes never interleave
them. Foreign errors become `IndexUnavailable` here, at the boundary.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from testmem.memory.errors import StoreError
from testmem.memory.store import Store

if TYPE_CHECKING:
    import numpy as np

ENV_CHROMA_URL = "TESTMEM_CHROMA_URL"
COLLECTION = "testmem-signatures"  # 3-512 chars of [a-zA-Z0-9._-], as Chroma requires
_SQLITE = "chroma.sqlite3"
_BATCH = 4000  # below Chroma's maximum batch size


def import_chroma() -> None:
    """Import chromadb with the garbage collector paused, for a short-lived
    command: its thousands of classes and schemas live as long as the process,
    so collections during the import find no garbage, and freezing them spares
    every later scan, the one at exit included (~0.2 s of the ~0.8 s import).
    """
    if "chromadb" in sys.modules:
        return
    collecting = gc.isenabled()
    gc.disable()
    try:
        import chromadb  # noqa: F401
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


class IndexUnavailable(StoreError):
    """The Chroma index cannot be used (server down, directory missing or damaged)."""

    transient = True


@dataclass(frozen=True)
class SignatureRecord:
    """What the log says about one failure signature."""

    signature: str
    incident_id: str
    tests: tuple[str, ...]
    route: str
    status: int | None
    exception_type: str
    method: str
    first_seen: datetime
    last_seen: datetime
    count: int
    keys: tuple[str, ...] = ()  # the quoted names the failure is about (JSON keys, fields)
    kind: str = ""  # what was checked and failed (`testmem.memory.fingerprint.Fingerprint.kind`)

    def metadata(self) -> dict[str, str | int]:
        """Chroma metadata: scalars only, no None; keys only when known, because an
        update merges metadata and must not erase them."""
        keys: dict[str, str | int] = {"keys": json.dumps(list(self.keys))} if self.keys else {}
        return keys | {
            "incident_id": self.incident_id,
            "tests": json.dumps(sorted(self.tests)),
            "route": self.route,
            "status": self.status or 0,
            "exception_type": self.exception_type,
            "method": self.method,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "count": self.count,
        }


@dataclass(frozen=True)
class Neighbour:
    signature: str
    cosine: float
    keys: tuple[str, ...] = ()


class SignatureIndex:
    """The collection of signature records, embedded or on a Chroma server."""

    def __init__(self, store: Store, chroma_url: str | None = None) -> None:
        self.store = store
        self.url = chroma_url if chroma_url is not None else os.environ.get(ENV_CHROMA_URL)
        self.path = store.root / "chroma"
        self._collection: Any = None

    @property
    def embedded(self) -> bool:
        return not self.url

    @property
    def where(self) -> str:
        """The Chroma server's URL, or the embedded index's directory."""
        return self.url or str(self.path)

    def exists(self) -> bool:
        """False when an embedded index was never built or its directory was deleted."""
        return bool(self.url) or (self.path / _SQLITE).is_file()

    def count(self) -> int:
        with _translated("count"):
            return int(self._open().count())

    def nearest(self, vector: np.ndarray, k: int) -> list[Neighbour]:
        """The k signatures whose embeddings are closest to ``vector`` (cosine)."""
        with _translated("query"):
            collection = self._open()
            found = collection.query(query_embeddings=[vector], n_results=k, include=["distances"])
        ids, distances = found["ids"][0], found["distances"][0]
        return [Neighbour(s, 1.0 - float(d)) for s, d in zip(ids, distances, strict=True)]

    def vectors(self, signatures: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored embeddings of those signatures that are indexed."""
        if not signatures:
            return {}
        with _translated("read"):
            found = self._open().get(ids=list(signatures), include=["embeddings"])
        return dict(zip(found["ids"], found["embeddings"], strict=True))

    def records(self) -> dict[str, dict[str, Any]]:
        """Every record's metadata by signature (to compare two builds of the index)."""
        with _translated("read"):
            found = self._open().get(include=["metadatas", "documents"])
        rows = zip(found["ids"], found["metadatas"], found["documents"], strict=True)
        return {s: {**m, "text": d} for s, m, d in rows}

    def upsert(
        self,
        records: Sequence[SignatureRecord],
        vectors: dict[str, Any],
        texts: dict[str, str] | None = None,
    ) -> None:
        """Write records: with their embedding (and text) when given, else metadata only."""
        new = [r for r in records if r.signature in vectors]
        known = [r for r in records if r.signature not in vectors]
        with self._write_lock(), _translated("write"):
            collection = self._open()
            for batch in _batches(new):
                collection.upsert(
                    ids=[r.signature for r in batch],
                    embeddings=[vectors[r.signature] for r in batch],
                    metadatas=[r.metadata() for r in batch],
                    documents=[(texts or {}).get(r.signature, "") for r in batch],
                )
            for batch in _batches(known):
                collection.update(
                    ids=[r.signature for r in batch], metadatas=[r.metadata() for r in batch]
                )

    def reset(self) -> None:
        """Delete the whole index, even a damaged one, and start an empty one."""
        with self._write_lock():
            self._forget_client()
            if self.embedded:
                shutil.rmtree(self.path, ignore_errors=True)
            else:
                from chromadb.errors import NotFoundError

                with _translated("reset"), suppress(NotFoundError):  # a fresh server has none
                    self._client().delete_collection(COLLECTION)
            self._collection = None
            with _translated("create"):
                self._open()

    # -- connection ------------------------------------------------------------

    def _open(self) -> Any:
        if self._collection is None:
            self._collection = self._client().get_or_create_collection(
                COLLECTION,
                configuration={"hnsw": {"space": "cosine"}},
                embedding_function=None,
            )
        return self._collection

    def _client(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        if self.embedded:
            return chromadb.PersistentClient(str(self.path), settings=settings)
        url = urlparse(self.url or "")
        return chromadb.HttpClient(
            host=url.hostname or "127.0.0.1",
            port=url.port or 8000,
            ssl=url.scheme == "https",
            settings=settings,
        )

    def _forget_client(self) -> None:
        """Chroma caches one client per path in the process; drop it before deleting."""
        if self.embedded and "chromadb" in sys.modules:
            from chromadb.api.shared_system_client import SharedSystemClient

            SharedSystemClient.clear_system_cache()

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        if not self.embedded:  # a server serialises its own writes
            yield
            return
        with self.store.lock("chroma", 120, "cannot write the index"):
            yield


def _batches(records: Sequence[SignatureRecord]) -> Iterator[Sequence[SignatureRecord]]:
    for start in range(0, len(records), _BATCH):
        yield records[start : start + _BATCH]


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except IndexUnavailable:
        raise
    except Exception as exc:  # chromadb raises many unrelated types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise IndexUnavailable(f"Chroma index {action} failed: {first[:200]}") from exc
