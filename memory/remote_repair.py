"""The doctor's log checks and repairs for a store on object storage (``s3://``).

What `testmem.memory.doctor` does for a local log, done object by object
through obstore (the object_store crate deltalake itself uses):

- `remote_log_damage`: ``_delta_log`` listed; the checkpoints and the
  ``_last_checkpoint`` hint read, and the commits after the newest readable
  checkpoint read and parsed, as `doctor.log_damage` does for a directory;
- `repair_remote_log`: a torn append (or a torn last append) rewritten to its
  sound part with one PUT, the original first copied aside; a damaged
  checkpoint or hint set aside and the checkpoint rebuilt from the commits;
- `set_aside_damaged_objects`: each snapshot file whose footer does not read
  copied aside, then deleted from the table and its removal committed
  (`DeltaTable.repair`); if that commit fails, the files are put back;
- `remote_orphans`, `remove_remote_orphans`: data files under ``events/``
  that no commit of the snapshot references, older than the vacuum window
  (a writer that died between its PUT and its commit); repair deletes those
  a commit tombstoned and sets the others aside (they may be the only copy
  of their events).

"Aside" is ``PREFIX/doctor/damaged-<time>/`` (``orphans-<time>/``) in the
same bucket, where every machine sharing the store finds it; nothing is
deleted before its copy is written, and the copies are never deleted. Not
done on object storage: a torn commit that was not an append.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

from testmem.memory.doctor import (
    APPENDS,
    CHECKPOINT_NAME,
    COMMIT_NAME,
    HINT,
    LogDamage,
    actions_of,
    checkpoint_damage,
    commit_damage,
    commit_text,
    mendable,
    operation,
    parquet_reads,
    sound_part,
    tombstoned,
)
from testmem.memory.errors import StoreError
from testmem.memory.store import Store

_LOG = "events/_delta_log"


class _Prefix:
    """The store's prefix in its bucket; keys are relative to it."""

    def __init__(self, store: Store) -> None:
        from testmem.memory.lease import object_store

        self.location = store.location
        self.objects = object_store(store.location)

    def keys(self, under: str) -> list[str]:
        return list(self.modified(under))

    def modified(self, under: str) -> dict[str, datetime]:
        """Each key under ``under`` and when its object was last written."""
        import obstore

        listed = obstore.list(self.objects, prefix=under)
        return {meta["path"]: meta["last_modified"] for batch in listed for meta in batch}

    def read(self, key: str) -> bytes | None:
        import obstore

        try:
            return obstore.get(self.objects, key).bytes().to_bytes()
        except FileNotFoundError:  # obstore raises the builtin
            return None

    def write(self, key: str, data: bytes) -> None:
        import obstore

        obstore.put(self.objects, key, data)

    def copy(self, key: str, to: str) -> None:
        import obstore

        obstore.copy(self.objects, key, to)

    def delete(self, key: str) -> None:
        import obstore

        obstore.delete(self.objects, key)

    def reads(self, key: str) -> bool:
        """Whether the object reads as Parquet (its footer, from the whole object)."""
        return parquet_reads(self.read(key))

    def move(self, keys: dict[str, str]) -> None:
        """Each object to its new key: all copied first, then all deleted."""
        for key, to in keys.items():
            self.copy(key, to)
        for key in keys:
            self.delete(key)


def _aside(what: str = "damaged") -> str:
    return f"doctor/{what}-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"


def _log_objects(prefix: _Prefix) -> tuple[dict[int, Path], dict[int, list[Path]]]:
    """The commits and the checkpoints (their parts) of ``_delta_log``, by version."""
    commits: dict[int, Path] = {}
    checkpoints: dict[int, list[Path]] = {}
    for key in prefix.keys(f"{_LOG}/"):
        name = key.rsplit("/", 1)[-1]
        if match := COMMIT_NAME.match(name):
            commits[int(match[1])] = Path(key)
        elif match := CHECKPOINT_NAME.match(name):
            checkpoints.setdefault(int(match[1]), []).append(Path(key))
    return commits, checkpoints


def remote_log_damage(store: Store) -> list[LogDamage]:
    """Damaged checkpoints and hint, then gaps and torn or empty commits after
    the newest readable checkpoint, as for a directory."""
    prefix = _Prefix(store)
    commits, checkpoints = _log_objects(prefix)

    def read(path: Path) -> bytes | None:
        return prefix.read(path.as_posix())

    readable = {p: prefix.reads(p.as_posix()) for parts in checkpoints.values() for p in parts}
    damage = checkpoint_damage(Path(_LOG), checkpoints, read, readable.__getitem__)
    whole = [v for v, parts in checkpoints.items() if all(readable[p] for p in parts)]
    return damage + commit_damage(Path(_LOG), commits, max(whole, default=-1) + 1, read)


def repair_remote_log(store: Store, damage: list[LogDamage]) -> list[str]:
    """Rewrite each torn append to its sound part; say what was left as it was."""
    prefix = _Prefix(store)
    aside = _aside()
    done = []
    for found in damage:
        key = found.path.as_posix()
        actions, _ = actions_of(prefix.read(key))
        version = int(found.path.stem) if found.path.suffix == ".json" else None
        if version is None or not mendable(found, actions):
            continue
        if operation(actions) not in APPENDS:
            done.append(f"commit {version} was torn and is not an append: not mended on S3")
            continue
        kept = sound_part(actions, lambda path: prefix.reads(f"events/{path}"))
        info = next((a["commitInfo"] for a in actions if "commitInfo" in a), None)
        original = f"{aside}/{found.path.name}"
        prefix.copy(key, original)
        prefix.write(key, commit_text(info, kept))
        adds = sum(1 for a in kept if "add" in a)
        done.append(
            f"commit {version} was torn: rewrote it, kept {adds} data files (those it names "
            f"whole and that read); the original is in {store.location}/{original}"
        )
    stale = [d.path for d in damage if d.kind in ("hint", "checkpoint")]
    if stale:
        done.append(_rebuild_checkpoint(store, prefix, stale, aside))
    return done


def _rebuild_checkpoint(store: Store, prefix: _Prefix, stale: list[Path], aside: str) -> str:
    """Move the damaged checkpoints (every part of their versions) and the hint
    aside, then write a checkpoint from the commits; put all back if that fails."""
    versions = {p.name.split(".")[0] for p in stale if p.name != HINT}
    _, checkpoints = _log_objects(prefix)
    keys = [p.as_posix() for v, parts in checkpoints.items() if f"{v:020d}" in versions
            for p in parts]  # fmt: skip
    hint = f"{_LOG}/{HINT}"
    keys += [hint] if prefix.read(hint) is not None else []
    moved = {key: f"{aside}/{key.rsplit('/', 1)[-1]}" for key in sorted(keys)}
    prefix.move(moved)
    try:
        table = store.events._table(fallback=False)  # a checkpoint of the newest version only
        table.create_checkpoint()
    except Exception as exc:
        prefix.move({copy: key for key, copy in moved.items()})
        first = str(exc).splitlines()[0][:200]
        return f"could not rebuild the checkpoint, left the log as it was: {first}"
    names = ", ".join(key.rsplit("/", 1)[-1] for key in moved)
    return (
        f"rebuilt the checkpoint at version {table.version()} from the commits; "
        f"moved {names} to {store.location}/{aside}"
    )


def unreadable_objects(store: Store) -> list[tuple[str, str]]:
    """Each snapshot file whose footer does not read (its path in the table, and why)."""
    found = []
    for fragment in store.events.dataset().get_fragments():
        try:
            fragment.ensure_complete_metadata()
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...
            found.append((str(fragment.path), str(exc).splitlines()[0][:200]))
    return found


def set_aside_damaged_objects(store: Store) -> list[str]:
    """Copy each unreadable snapshot file aside, delete it, and commit its removal."""
    table = store.events._table(fallback=False)  # commit after the newest version only
    damaged = [f"events/{path}" for path, _ in unreadable_objects(store)]
    if not damaged:
        return []
    prefix = _Prefix(store)
    aside = _aside()
    kept = {key: f"{aside}/{key.rsplit('/', 1)[-1]}" for key in damaged}
    prefix.move(kept)
    try:
        table.repair(dry_run=False)  # removes the adds of missing files
    except Exception as exc:
        for key, copy in kept.items():
            prefix.copy(copy, key)
        raise StoreError(f"cannot commit the removal of damaged files: {exc}") from exc
    return [
        f"moved {len(damaged)} damaged data files to {store.location}/{aside} "
        "and committed their removal"
    ]


def remote_orphans(store: Store, vacuum_hours: float) -> list[str]:
    """Data files under ``events/`` (their keys) that no commit of the snapshot
    references, written longer than ``vacuum_hours`` ago (a younger one may
    belong to a commit in flight)."""
    if not store.events.exists():
        return []
    root = f"{store.location}/"
    live = {unquote(uri.removeprefix(root)) for uri in store.events.files()}
    cutoff = datetime.now(UTC) - timedelta(hours=vacuum_hours)
    return sorted(
        key
        for key, written in _Prefix(store).modified("events/").items()
        if key.endswith(".parquet")
        and not key.startswith(f"{_LOG}/")  # checkpoints are Parquet too
        and unquote(key) not in live
        and written < cutoff
    )


def remove_remote_orphans(store: Store, vacuum_hours: float) -> list[str]:
    """Delete the orphans a commit tombstoned (a compaction replaced them, their
    events live on in another file); move every other one aside."""
    found = remote_orphans(store, vacuum_hours)
    prefix = _Prefix(store)
    commits, checkpoints = _log_objects(prefix)
    removed = tombstoned(
        (prefix.read(p.as_posix()) for p in commits.values()),
        (prefix.read(p.as_posix()) for parts in checkpoints.values() for p in parts),
    )
    gone = [key for key in found if unquote(key).removeprefix("events/") in removed]
    aside = _aside("orphans")
    kept = {key: f"{aside}/{key.removeprefix('events/')}" for key in found if key not in gone}
    prefix.move(kept)
    for key in gone:
        prefix.delete(key)
    done = [f"removed {len(gone)} orphan files"]
    if kept:
        done.append(f"moved {len(kept)} never-committed data files to {store.location}/{aside}")
    return done
