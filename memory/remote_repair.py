"""The doctor's log checks and repairs for a store on object storage (``s3://``).

What `testmem.memory.doctor` does for a local log, done object by object
through obstore (the object_store crate deltalake itself uses):

- `remote_log_damage`: ``_delta_log`` listed, and the commits after the
  newest checkpoint read and parsed, as `doctor.log_damage` does for a directory;
- `repair_remote_log`: a torn append (or a torn last append) rewritten to its
  sound part with one PUT, the original first copied aside;
- `set_aside_damaged_objects`: each snapshot file whose footer does not read
  copied aside, then deleted from the table and its removal committed
  (`DeltaTable.repair`); if that commit fails, the files are put back.

"Aside" is ``PREFIX/doctor/damaged-<time>/`` in the same bucket, where every
machine sharing the store finds it; nothing is deleted before its copy is
written, and the copies are never deleted. Not done on object storage: a
damaged checkpoint (its readability is not checked: the commits after the
newest one are), a torn commit that was not an append, and orphans.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from testmem.memory.doctor import (
    APPENDS,
    CHECKPOINT_NAME,
    COMMIT_NAME,
    LogDamage,
    actions_of,
    commit_damage,
    commit_text,
    mendable,
    operation,
    sound_part,
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
        import obstore

        return [
            meta["path"] for batch in obstore.list(self.objects, prefix=under) for meta in batch
        ]

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
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = self.read(key)
        try:
            pq.read_metadata(pa.BufferReader(data or b""))
            return True
        except Exception:  # pyarrow raises ArrowInvalid, OSError...
            return False


def _aside() -> str:
    return f"doctor/damaged-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"


def remote_log_damage(store: Store) -> list[LogDamage]:
    """Gaps and torn or empty commits after the newest checkpoint, as for a directory."""
    prefix = _Prefix(store)
    commits: dict[int, Path] = {}
    checkpoints: set[int] = set()
    for key in prefix.keys(f"{_LOG}/"):
        name = key.rsplit("/", 1)[-1]
        if match := COMMIT_NAME.match(name):
            commits[int(match[1])] = Path(key)
        elif match := CHECKPOINT_NAME.match(name):
            checkpoints.add(int(match[1]))
    start = max(checkpoints, default=-1) + 1
    return commit_damage(Path(_LOG), commits, start, lambda path: prefix.read(path.as_posix()))


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
    return done


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
    for key, copy in kept.items():
        prefix.copy(key, copy)
    for key in damaged:
        prefix.delete(key)
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
