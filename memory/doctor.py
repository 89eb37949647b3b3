"""Checks a store and repairs what can be repaired.

Four checks, each a `Finding`:

- ``log``: the Delta table opens and every file of its snapshot exists and reads;
- ``index``: the Chroma index holds exactly the signatures the log has linked;
- ``orphans``: no Parquet file lies in ``DIR/events`` unreferenced by the snapshot
  (a writer killed between writing and committing), and no stray temp file,
  older than the vacuum window (younger ones may belong to a commit in flight);
- ``outbox``: no defect action is waiting in ``DIR/defects/outbox``.

`repair` vacuums orphans and rebuilds the index; the outbox is the defect
agent's to deliver (``testmem defects flush``), because memory never imports agents.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from memory.errors import StoreError
from memory.store import Store

VACUUM_HOURS = 1.0  # the same window `testmem compact` leaves to readers
_TEMP_SUFFIXES = (".tmp", ".temp", ".partial")


@dataclass
class Finding:
    check: str
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def examine(store: Store, vacuum_hours: float = VACUUM_HOURS) -> list[Finding]:
    """Every check, in order; a check that cannot run reports why as a problem."""
    checks: list[tuple[str, Callable[[], list[str]]]] = [
        ("log", lambda: check_log(store)),
        ("index", lambda: check_index(store)),
        ("orphans", lambda: [str(p) for p in orphans(store, vacuum_hours)]),
        ("outbox", lambda: check_outbox(store)),
    ]
    return [Finding(name, _guarded(run)) for name, run in checks]


def repair(store: Store, vacuum_hours: float = VACUUM_HOURS) -> list[Finding]:
    """Examine, fix what can be fixed, and examine again; each finding lists what was done."""
    before = {f.check: f for f in examine(store, vacuum_hours)}
    done: dict[str, list[str]] = {}
    if before["orphans"].problems:
        done["orphans"] = _guarded(lambda: remove_orphans(store, vacuum_hours))
    if before["index"].problems and not before["log"].problems:
        done["index"] = _guarded(lambda: [_reindex(store)])
    if before["outbox"].problems:
        done["outbox"] = ["not delivered here: run `testmem defects flush`"]
    after = examine(store, vacuum_hours)
    for finding in after:
        finding.repaired = done.get(finding.check, [])
    return after


def _guarded(run: Callable[[], list[str]]) -> list[str]:
    try:
        return run()
    except Exception as exc:  # a damaged store raises anything; the doctor reports it
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return [f"{type(exc).__name__}: {first[:300]}"]


# -- the log ---------------------------------------------------------------------


def check_log(store: Store) -> list[str]:
    import pyarrow.parquet as pq

    problems = []
    for uri in store.events.files():  # raises StoreError when the table does not open
        path = _path(uri)
        try:
            pq.read_metadata(path)
        except FileNotFoundError:
            problems.append(f"missing file of the snapshot: {path}")
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...
            problems.append(f"unreadable file {path}: {str(exc).splitlines()[0][:200]}")
    return problems


def _path(uri: str) -> Path:
    from urllib.parse import unquote

    return Path(unquote(uri.removeprefix("file://")))


# -- the index -------------------------------------------------------------------


def check_index(store: Store) -> list[str]:
    """Compare the index's records with the signatures of FailureLinked facts."""
    from memory.query import History

    linked = {
        row[0]
        for row in History(store)
        .sql("SELECT DISTINCT signature FROM facts WHERE type = 'FailureLinked'")
        .rows
        if row[0]
    }
    indexed = _indexed(store) if linked or _index_exists(store) else set()
    missing, extra = linked - indexed, indexed - linked
    problems = [f"{len(missing)} linked signatures missing from the index"] if missing else []
    if extra:
        problems.append(f"{len(extra)} indexed signatures unknown to the log")
    return problems


def _index_exists(store: Store) -> bool:
    from memory.index import SignatureIndex

    return SignatureIndex(store).exists()


def _indexed(store: Store) -> set[str]:
    from memory.index import SignatureIndex

    index = SignatureIndex(store)
    if not index.exists():
        return set()
    return set(index.records())


def _reindex(store: Store) -> str:
    from memory.incidents import reindex

    result = reindex(store)
    return f"rebuilt the index: {result.signatures} signatures of {result.incidents} incidents"


# -- orphan files ----------------------------------------------------------------


def orphans(store: Store, vacuum_hours: float = VACUUM_HOURS) -> list[Path]:
    """Files under DIR/events that no snapshot needs, older than the vacuum window."""
    root = store.events.path
    if not root.is_dir():
        return []
    live = {_path(uri).resolve() for uri in store.events.files()}
    cutoff = time.time() - vacuum_hours * 3600
    found = []
    for path in sorted(root.rglob("*")):
        in_log = "_delta_log" in path.relative_to(root).parts  # checkpoints are Parquet too
        stray = path.suffix == ".parquet" and not in_log and path.resolve() not in live
        if (stray or path.name.endswith(_TEMP_SUFFIXES)) and _older(path, cutoff):
            found.append(path)
    return found


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.is_file() and path.stat().st_mtime < cutoff
    except OSError:
        return False


def remove_orphans(store: Store, vacuum_hours: float = VACUUM_HOURS) -> list[str]:
    """Vacuum (Delta deletes unreferenced files past the window), then stray temp files."""
    import math

    found = orphans(store, vacuum_hours)
    try:
        store.events._table().vacuum(
            retention_hours=math.ceil(vacuum_hours),
            enforce_retention_duration=False,
            dry_run=False,
        )
    except Exception as exc:
        raise StoreError(f"cannot vacuum {store.events.path}: {exc}") from exc
    for path in found:
        path.unlink(missing_ok=True)
    return [f"removed {len(found)} orphan files"]


# -- the defect outbox -----------------------------------------------------------


def check_outbox(store: Store) -> list[str]:
    outbox = store.root / "defects" / "outbox"
    pending = sorted(outbox.glob("*.json")) if outbox.is_dir() else []
    if not pending:
        return []
    return [f"{len(pending)} defect actions waiting in {outbox} (run `testmem defects flush`)"]
