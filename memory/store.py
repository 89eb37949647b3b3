"""A store: the event log and its projections, in a directory or on object storage.

DIR/events/    the Delta table of events (the truth)
DIR/spool/     runs recorded but not yet committed to it (`testmem.memory.spool`)
DIR/chroma/    the vector index of failure signatures (a projection)
DIR/defects/, DIR/heals/, DIR/reports/   files written by agents and reports

A store named by URL (``s3://BUCKET/PREFIX``) keeps only the log there,
``PREFIX/events``, and its leases, ``PREFIX/locks``; endpoint and credentials
come from the ``AWS_*`` variables, as deltalake reads them. Everything else
is per machine and lives in a local cache directory (`cache_dir`): the files
agents write, the embedding cache, the embedded index (unless
``TESTMEM_CHROMA_URL`` names a shared Chroma server), the defect outbox.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from testmem.memory.errors import StoreError
from testmem.memory.log import EventLog
from testmem.memory.spool import Spool

if TYPE_CHECKING:
    from testmem.memory.config import Settings

ENV_DIR = "TESTMEM_DIR"
ENV_CACHE = "TESTMEM_CACHE_DIR"
DEFAULT_DIR = "data"
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss", "memory")


def is_url(location: str | os.PathLike[str]) -> bool:
    return isinstance(location, str) and bool(_URL.match(location))


def resolve_dir(
    explicit: str | os.PathLike[str] | None = None, settings: Settings | None = None
) -> Path | str:
    """The store: the explicit choice, else ``$TESTMEM_DIR``, else ``dir`` in
    ``[tool.testmem]``, else ini ``memory_dir``, else ``data/`` (see
    `testmem.memory.config`; ``settings`` default: found from the current directory);
    a URL (``s3://BUCKET/PREFIX``) as it is."""
    from testmem.memory.config import Settings

    settings = settings or Settings.discover()
    given = explicit and os.fspath(explicit)
    found = settings.value("memory_dir", given)
    if found is not None and is_url(found.text()):
        return _checked_url(found.text())
    return settings.path("memory_dir", DEFAULT_DIR, given=given)


def _checked_url(url: str) -> str:
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _SCHEMES:
        raise StoreError(f"unsupported store URL {url!r} (use a directory or s3://BUCKET/PREFIX)")
    if not url.split("://", 1)[1].strip("/"):
        raise StoreError(f"store URL {url!r} names no bucket")
    return url.rstrip("/")


def cache_dir(url: str) -> Path:
    """This machine's directory for a remote store's local state:
    ``$TESTMEM_CACHE_DIR``, else ``~/.cache/testmem``, one folder per store URL."""
    base = Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "testmem").expanduser()
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", url.split("://", 1)[1])[:80]
    return base / "stores" / f"{readable}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"


class Store:
    def __init__(self, root: Path | str) -> None:
        if is_url(root):
            self.location = _checked_url(str(root))
            self.remote: str | None = self.location
            self.root = cache_dir(self.location)
            self.events = EventLog(f"{self.location}/events")
        else:
            self.root = Path(root)
            self.location = str(self.root)
            self.remote = None
            self.events = EventLog(self.root / "events", Spool(self.root / "spool"))

    @classmethod
    def open(cls, root: Path | str, *, must_exist: bool = True) -> Store:
        store = cls(root)
        if must_exist and not store.events.exists():
            raise StoreError(
                f"no testmem store at {store.location} (record one with `pytest --memory`, "
                f"or point --dir / ${ENV_DIR} at an existing store)"
            )
        return store

    def subdir(self, name: str) -> Path:
        """A projection's directory (on this machine, for a remote store), created on demand."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextmanager
    def lock(self, name: str, timeout_s: float, busy: str) -> Iterator[None]:
        """Hold the lock ``NAME``, exclusive across processes, and for a remote
        store across machines (a `testmem.memory.lease.Lease` in ``PREFIX/locks``);
        waiting longer than ``timeout_s`` is a `StoreError` saying ``busy``."""
        if self.remote:
            with self._lease(name, timeout_s, busy):
                yield
            return
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.subdir("locks") / f"{name}.lock"), timeout=timeout_s)
        try:
            lock.acquire()
        except Timeout as exc:
            raise StoreError(f"{busy}: {lock.lock_file} held for {timeout_s:g} s") from exc
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def _lease(self, name: str, timeout_s: float, busy: str) -> Iterator[None]:
        from testmem.memory.lease import Lease, object_store

        assert self.remote is not None
        lease = Lease(object_store(self.remote), f"locks/{name}.lease")
        try:
            taken = lease.acquire(timeout_s)
        except Exception as exc:  # obstore's errors: the bucket unreachable, access denied...
            raise StoreError(f"{busy}: cannot take {self.remote}/{lease.key}: {exc}") from exc
        if not taken:
            raise StoreError(f"{busy}: {self.remote}/{lease.key} held for {timeout_s:g} s")
        try:
            yield
        finally:
            lease.release()
