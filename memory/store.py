"""A store: one directory holding the event log and its projections.

DIR/events/    the Delta table of events (the truth)
DIR/chroma/    the vector index of failure signatures (a projection)
DIR/defects/, DIR/heals/, DIR/reports/   files written by agents and reports
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from memory.errors import StoreError
from memory.log import EventLog

if TYPE_CHECKING:
    from memory.config import Settings

ENV_DIR = "TESTMEM_DIR"
DEFAULT_DIR = "data"


def resolve_dir(
    explicit: str | os.PathLike[str] | None = None, settings: Settings | None = None
) -> Path:
    """The store directory: the explicit choice, else ``$TESTMEM_DIR``, else
    ``dir`` in ``[tool.testmem]``, else ini ``memory_dir``, else ``data/``
    (see `memory.config`; ``settings`` default: found from the current directory)."""
    from memory.config import Settings

    settings = settings or Settings.discover()
    return settings.path("memory_dir", DEFAULT_DIR, given=explicit and os.fspath(explicit))


class Store:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.events = EventLog(self.root / "events")

    @classmethod
    def open(cls, root: Path, *, must_exist: bool = True) -> Store:
        store = cls(root)
        if must_exist and not store.events.exists():
            raise StoreError(
                f"no testmem store at {store.root} (record one with `pytest --memory`, "
                f"or point --dir / ${ENV_DIR} at an existing store)"
            )
        return store

    def subdir(self, name: str) -> Path:
        """A projection's directory inside the store, created on demand."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextmanager
    def lock(self, name: str, timeout_s: float, busy: str) -> Iterator[None]:
        """Hold ``DIR/locks/NAME.lock``, exclusive across processes; waiting
        longer than ``timeout_s`` is a `StoreError` saying ``busy``."""
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
