"""Checks a store and repairs what can be repaired.

Four checks, each a `Finding`:

- ``log``: the files of ``_delta_log`` are sound (`log_damage`: the checkpoint
  hint, the checkpoints, and the commits a reader replays after them), the
  Delta table opens, and every file of its snapshot exists and reads;
- ``index``: the Chroma index holds exactly the signatures the log has linked;
- ``orphans``: no Parquet file lies in ``DIR/events`` unreferenced by the snapshot
  (a writer killed between writing and committing), and no stray temp file,
  older than the vacuum window (younger ones may belong to a commit in flight);
- ``outbox``: no defect action is waiting in ``DIR/defects/outbox``.

`repair` mends the log where that loses nothing still readable (`repair_log`),
moves damaged data files aside and commits their removal (`set_aside_damaged`),
clears orphans and rebuilds the index; the outbox is the defect agent's to
deliver (``testmem defects flush``), because memory never imports agents.

Nothing that reads is ever deleted: a damaged file is moved to
``DIR/doctor/damaged-<time>/``, and an orphan is deleted only if the log
tombstoned it (a compaction replaced it: its events live on in another file);
any other orphan (a commit that never landed, an add cut off a torn commit)
is moved to ``DIR/doctor/orphans-<time>/``, where its events can still be read.

What the log can be repaired from, and what not (each found with real damage,
deltalake 1.6): a checkpoint is only a summary of the JSON commits, so a
missing or unreadable checkpoint, or a ``_last_checkpoint`` that is unreadable
or names a missing checkpoint, is rebuilt from the commits (`create_checkpoint`)
as long as the commits it summarised are still there (a missing
``_last_checkpoint`` is no damage: readers list the directory). A torn last
commit (every reader fails on it) is rewritten to its readable part, and so is
a torn append before the last (garbage in a commit after the checkpoint): an
append keeps the data files it names whole; any other operation (compaction, purge)
keeps only its commit info, which undoes it and loses nothing while the files
it replaced are still there (checked). Not repairable: a missing commit in the
middle, an empty commit (what it held is gone), a torn compaction or purge
before the last, and a missing *last* commit, which no reader can tell from a log that ended
one commit earlier (its data files show up as orphans). While the log shows
lost events, repair keeps orphans: they may be the only copy of those events.

A store on S3 gets the same checks and repairs (a torn append rewritten, a
damaged checkpoint or hint rebuilt, a damaged data file set aside and its
removal committed, orphans deleted or set aside) object by object, in
`testmem.memory.remote_repair`; what it sets aside stays in the bucket, under
``PREFIX/doctor/``. Only a torn commit that was not an append is left as it is there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from testmem.memory.errors import DamagedFileWarning, StoreError
from testmem.memory.store import Store

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
    with warnings.catch_warnings():  # readers warn of damage the checks report
        warnings.simplefilter("ignore", DamagedFileWarning)
        return _examine(store, vacuum_hours)


def _examine(store: Store, vacuum_hours: float) -> list[Finding]:
    checks: list[tuple[str, Callable[[], list[str]]]] = [
        ("log", lambda: check_log(store)),
        ("index", lambda: check_index(store)),
        ("orphans", lambda: orphan_names(store, vacuum_hours)),
        ("outbox", lambda: check_outbox(store)),
    ]
    return [Finding(name, _guarded(run)) for name, run in checks]


def repair(store: Store, vacuum_hours: float = VACUUM_HOURS) -> list[Finding]:
    """Examine, fix what can be fixed, and examine again; each finding lists what was done."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedFileWarning)
        return _repair(store, vacuum_hours)


def _repair(store: Store, vacuum_hours: float) -> list[Finding]:
    before = {f.check: f for f in examine(store, vacuum_hours)}
    done: dict[str, list[str]] = {}
    at_risk = [d for d in _guarded_damage(store) if d.kind in _DATA_AT_RISK]
    if before["log"].problems:
        done["log"] = _guarded(lambda: repair_log(store))
        done["log"] += _guarded(lambda: set_aside_damaged(store))
        before = {f.check: f for f in examine(store, vacuum_hours)}  # the log may open now
    if before["orphans"].problems and at_risk:
        done["orphans"] = ["kept: the log lost events, and these files may hold them"]
    elif before["orphans"].problems:
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

    problems = [d.problem for d in log_damage(store)]
    try:
        store.events._table(fallback=False)  # readers read around damage; say it is there
        uris = store.events.files()
    except StoreError as exc:
        return [*problems, str(exc).splitlines()[0][:300]]
    if store.remote:
        return [*problems, *_remote_footers(store)]
    for uri in uris:
        path = _path(uri)
        try:
            pq.read_metadata(path)
        except FileNotFoundError:
            problems.append(f"missing file of the snapshot: {path}")
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...
            problems.append(f"unreadable file {path}: {str(exc).splitlines()[0][:200]}")
    return problems


def _remote_footers(store: Store) -> list[str]:
    from testmem.memory.remote_repair import unreadable_objects

    return [f"unreadable file {path}: {why}" for path, why in unreadable_objects(store)]


def _path(uri: str) -> Path:
    from urllib.parse import unquote

    return Path(unquote(uri.removeprefix("file://")))


# -- the files of _delta_log -------------------------------------------------------

COMMIT_NAME = re.compile(r"^(\d{20})\.json$")
CHECKPOINT_NAME = re.compile(r"^(\d{20})\.checkpoint(\.[^.]+)*\.parquet$")
HINT = "_last_checkpoint"
APPENDS = ("WRITE", "CREATE TABLE")  # operations that only add data files


@dataclass(frozen=True)
class LogDamage:
    """One damaged file of ``_delta_log`` and what is wrong with it."""

    kind: str  # hint | checkpoint | torn-tail (repairable); torn | empty | gap (not)
    problem: str
    path: Path

    @property
    def repairable(self) -> bool:
        return self.kind in ("hint", "checkpoint", "torn-tail")


_DATA_AT_RISK = ("torn-tail", "torn", "empty", "gap")


def _guarded_damage(store: Store) -> list[LogDamage]:
    try:
        return log_damage(store)
    except OSError:
        return []


def log_damage(store: Store) -> list[LogDamage]:
    """Damage to the checkpoints and to the commits a reader replays after the
    newest readable one, read without deltalake (which refuses a damaged log)."""
    if store.remote:
        from testmem.memory.remote_repair import remote_log_damage

        return remote_log_damage(store)
    log = store.events.path / "_delta_log"
    if not log.is_dir():
        return []
    commits, checkpoints = _log_files(log)
    damage = checkpoint_damage(log, checkpoints, _read, _reads)
    readable = [v for v, paths in checkpoints.items() if all(map(_reads, paths))]
    return damage + commit_damage(log, commits, max(readable, default=-1) + 1)


def _log_files(log: Path) -> tuple[dict[int, Path], dict[int, list[Path]]]:
    commits: dict[int, Path] = {}
    checkpoints: dict[int, list[Path]] = {}
    for path in log.iterdir():
        if match := COMMIT_NAME.match(path.name):
            commits[int(match[1])] = path
        elif match := CHECKPOINT_NAME.match(path.name):
            checkpoints.setdefault(int(match[1]), []).append(path)
    return commits, checkpoints


def checkpoint_damage(
    log: Path,
    checkpoints: dict[int, list[Path]],
    read: Callable[[Path], bytes | None],
    reads: Callable[[Path], bool],
) -> list[LogDamage]:
    """Checkpoints that do not read as Parquet (``reads``), and a hint
    (``_last_checkpoint``, read by ``read``) that does not parse or names a
    missing checkpoint."""
    damage = [
        LogDamage("checkpoint", f"unreadable checkpoint {path.name}", path)
        for paths in checkpoints.values()
        for path in paths
        if not reads(path)
    ]
    hint = log / HINT
    raw = read(hint)
    if raw is None:
        return damage  # optional: readers then list the directory
    try:
        version = int(json.loads(raw.decode("utf-8"))["version"])
    except (ValueError, TypeError, KeyError) as exc:
        return [*damage, LogDamage("hint", f"unreadable {HINT}: {type(exc).__name__}", hint)]
    if version not in checkpoints:
        damage.append(
            LogDamage("hint", f"{HINT} names checkpoint {version}, which is missing", hint)
        )
    return damage


def commit_damage(
    log: Path,
    commits: dict[int, Path],
    start: int,
    read: Callable[[Path], bytes | None] | None = None,
) -> list[LogDamage]:
    """Gaps from ``start`` (the first commit no readable checkpoint covers) to the
    last commit, and commits that are empty or do not parse (each read by ``read``:
    a local file by default)."""
    last = max(commits, default=-1)
    missing = [v for v in range(start, last + 1) if v not in commits]
    damage = []
    if missing:
        what = f"commit {missing[0]}" + (f" and {len(missing) - 1} more" if missing[1:] else "")
        problem = f"{what} missing, and no readable checkpoint covers them: the log stops there"
        damage.append(LogDamage("gap", problem, log))
    for version in sorted(v for v in commits if v >= start):
        path = commits[version]
        actions, torn = actions_of((read or _read)(path))
        if torn:
            kind = "torn-tail" if version == last else "torn"
            damage.append(LogDamage(kind, f"commit {version} is unreadable (torn)", path))
        elif not actions:
            problem = f"commit {version} is empty: what it recorded is lost"
            damage.append(LogDamage("empty", problem, path))
    return damage


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def actions_of(raw: bytes | None) -> tuple[list[dict[str, Any]], bool]:
    """A commit's actions that parse, and whether any line did not (or it did not read)."""
    if raw is None:
        return [], True
    actions, torn = [], False
    for line in filter(None, (line.strip() for line in raw.splitlines())):
        try:
            action = json.loads(line)
        except ValueError:
            torn = True
            continue
        if isinstance(action, dict):
            actions.append(action)
        else:
            torn = True
    return actions, torn


def parquet_reads(data: bytes | None) -> bool:
    """Whether these bytes read as Parquet (their footer); None (no file) does not."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(pa.BufferReader(data or b""))
        return True
    except Exception:  # pyarrow raises ArrowInvalid, OSError...
        return False


def _reads(path: Path) -> bool:
    """Whether a Parquet file's footer reads (a torn or missing file's does not)."""
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
        return True
    except Exception:  # pyarrow raises ArrowInvalid, OSError...
        return False


def repair_log(store: Store) -> list[str]:
    """Mend what loses nothing (see the module doc); each line says what was done.
    Damaged files are first copied to ``DIR/doctor/damaged-<time>/``."""
    damage = log_damage(store)
    if store.remote:
        from testmem.memory.remote_repair import repair_remote_log

        return repair_remote_log(store, damage)
    aside = _aside(store, "damaged")
    torn = [d.path for d in damage if mendable(d, actions_of(_read(d.path))[0])]
    done = [_mend_commit(store, path, aside) for path in torn]
    stale = [d.path for d in damage if d.kind in ("hint", "checkpoint")]
    if stale:
        done.append(_rebuild_checkpoint(store, stale, aside))
    return done


def _aside(store: Store, what: str) -> Path:
    """Where repair keeps what it takes out of the store: never deleted."""
    return store.root / "doctor" / f"{what}-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"


def mendable(damage: LogDamage, actions: list[dict[str, Any]]) -> bool:
    """Whether a torn commit can be rewritten: the last one, or one that only
    added files (undoing anything else before the last commit could undo what
    later commits built on)."""
    return damage.kind == "torn-tail" or (damage.kind == "torn" and operation(actions) in APPENDS)


def operation(actions: list[dict[str, Any]]) -> str:
    info: dict[str, Any] = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
    return str(info.get("operation") or "unknown")


def set_aside_damaged(store: Store) -> list[str]:
    """Move each snapshot file that does not read to ``DIR/doctor/damaged-*``
    and commit its removal, so every reader reads whole files again."""
    if store.remote:
        from testmem.memory.remote_repair import set_aside_damaged_objects

        return set_aside_damaged_objects(store)
    table = store.events._table(fallback=False)  # commit after the newest version only
    damaged = [p for p in map(_path, table.file_uris()) if p.exists() and not _reads(p)]
    if not damaged:
        return []
    aside = _aside(store, "damaged")
    aside.mkdir(parents=True, exist_ok=True)
    for path in damaged:
        shutil.move(path, aside / path.name)
    try:
        table.repair(dry_run=False)  # removes the adds of missing files
    except Exception as exc:
        for path in damaged:
            shutil.move(aside / path.name, path)
        raise StoreError(f"cannot commit the removal of damaged files: {exc}") from exc
    return [f"moved {len(damaged)} damaged data files to {aside} and committed their removal"]


def _mend_commit(store: Store, path: Path, aside: Path) -> str:
    """Rewrite a torn last commit to its sound part, atomically: an append keeps
    the data files it fully names, anything else only its commit info."""
    actions, _ = actions_of(_read(path))
    info = next((a["commitInfo"] for a in actions if "commitInfo" in a), None)
    operation = str((info or {}).get("operation") or "unknown")
    root = store.events.path
    kept = sound_part(actions, lambda p: _reads(root / p)) if operation in APPENDS else []
    aside.mkdir(parents=True, exist_ok=True)
    original = Path(shutil.copy2(path, aside / path.name))
    temp = path.with_name(f".{path.name}.doctor.tmp")
    temp.write_bytes(commit_text(info, kept))
    os.replace(temp, path)
    if operation in APPENDS:
        adds = sum(1 for a in kept if "add" in a)
        what = f"kept {adds} data files (those it names whole and that read)"
    elif _missing_files(store):  # replaced files already vacuumed: undoing cannot restore them
        os.replace(original, path)
        return f"could not undo torn commit {int(path.stem)} ({operation}): its old files are gone"
    else:
        what = f"undid it (a {operation} commit: the files it replaced are still live)"
    return f"commit {int(path.stem)} was torn: rewrote it, {what}; the original is in {aside}"


def _missing_files(store: Store) -> list[Path]:
    """Files of the snapshot that do not exist (none known if the log does not open)."""
    try:
        return [p for p in map(_path, store.events.files()) if not p.exists()]
    except StoreError:
        return []


def sound_part(actions: list[dict[str, Any]], reads: Callable[[str], bool]) -> list[dict[str, Any]]:
    """An append's actions less its commit info and the adds whose file (its
    path in the table, given to ``reads``) does not read."""
    from urllib.parse import unquote

    return [
        a
        for a in actions
        if "commitInfo" not in a
        and "remove" not in a
        and ("add" not in a or reads(unquote(str(a["add"].get("path")))))
    ]


def commit_text(info: dict[str, Any] | None, kept: list[dict[str, Any]]) -> bytes:
    """A rewritten commit: its commit info (or one saying none was readable), then ``kept``."""
    head = info or {"operation": "unknown", "testmem": "doctor: none of it was readable"}
    return "".join(json.dumps(a) + "\n" for a in [{"commitInfo": head}, *kept]).encode()


def _rebuild_checkpoint(store: Store, stale: list[Path], aside: Path) -> str:
    """Move the damaged checkpoints (every part of their versions) and the hint
    aside, then write a checkpoint from the commits; put all back if that fails."""
    log = store.events.path / "_delta_log"
    versions = {p.name.split(".")[0] for p in stale if p.name != HINT}
    parts = [p for p in log.iterdir() if CHECKPOINT_NAME.match(p.name)]
    moved = sorted([p for p in parts if p.name.split(".")[0] in versions] + [
        p for p in [log / HINT] if p.exists()
    ])  # fmt: skip
    aside.mkdir(parents=True, exist_ok=True)
    for path in moved:
        shutil.move(path, aside / path.name)
    try:
        table = store.events._table(fallback=False)  # a checkpoint of the newest version only
        table.create_checkpoint()
    except Exception as exc:
        for path in moved:
            shutil.move(aside / path.name, path)
        first = str(exc).splitlines()[0][:200]
        return f"could not rebuild the checkpoint, left the log as it was: {first}"
    names = ", ".join(p.name for p in moved)
    return (
        f"rebuilt the checkpoint at version {table.version()} from the commits; "
        f"moved {names} to {aside}"
    )


# -- the index -------------------------------------------------------------------


def check_index(store: Store) -> list[str]:
    """Compare the index's records with the signatures of FailureLinked facts,
    and the incident each record names with the incident the log gives it."""
    from testmem.memory.incidents import Known
    from testmem.memory.query import History

    known = Known.load(History(store))
    linked = set(known.signatures)
    records = _indexed(store)
    missing, extra = linked - set(records), set(records) - linked
    problems = [f"{len(missing)} linked signatures missing from the index"] if missing else []
    if extra:
        problems.append(f"{len(extra)} indexed signatures unknown to the log")
    misnamed = [
        s
        for s in linked & set(records)
        if records[s].get("incident_id")
        not in (known.signatures[s].incident_id, known.live_record(s).incident_id)
    ]
    if misnamed:
        problems.append(f"{len(misnamed)} indexed signatures name another incident than the log")
    return problems


def _indexed(store: Store) -> dict[str, dict[str, Any]]:
    from testmem.memory.index import SignatureIndex

    index = SignatureIndex(store)
    return index.records() if index.exists() else {}


def _reindex(store: Store) -> str:
    from testmem.memory.incidents import reindex

    result = reindex(store)
    return f"rebuilt the index: {result.signatures} signatures of {result.incidents} incidents"


# -- orphan files ----------------------------------------------------------------


def orphan_names(store: Store, vacuum_hours: float = VACUUM_HOURS) -> list[str]:
    """The orphans of a directory or of a prefix on object storage, by name."""
    if store.remote:
        from testmem.memory.remote_repair import remote_orphans

        return [f"{store.location}/{key}" for key in remote_orphans(store, vacuum_hours)]
    return [str(p) for p in orphans(store, vacuum_hours)]


def orphans(store: Store, vacuum_hours: float = VACUUM_HOURS) -> list[Path]:
    """Files under DIR/events that no snapshot needs, older than the vacuum window
    (for a store on object storage: `testmem.memory.remote_repair.remote_orphans`)."""
    root = store.events.path
    if store.remote or not root.is_dir():
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
    """Delete orphans the log tombstoned (a compaction replaced them) and stray
    temp files; move every other orphan to ``DIR/doctor/orphans-*``: a file
    that never made it into a commit may be the only copy of its events."""
    if store.remote:
        from testmem.memory.remote_repair import remove_remote_orphans

        return remove_remote_orphans(store, vacuum_hours)
    found = orphans(store, vacuum_hours)
    tombstoned = _tombstoned(store)
    root = store.events.path
    kept = [p for p in found if p.suffix == ".parquet" and _relative(p, root) not in tombstoned]
    aside = _aside(store, "orphans")
    for path in kept:
        target = aside / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
    for path in found:
        if path not in kept:
            path.unlink(missing_ok=True)
    done = [f"removed {len(found) - len(kept)} orphan files"]
    if kept:
        done.append(f"moved {len(kept)} never-committed data files to {aside}")
    return done


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _tombstoned(store: Store) -> set[str]:
    """Paths of data files some commit or checkpoint of the log removed."""
    log = store.events.path / "_delta_log"
    commits, checkpoints = _log_files(log)
    parts = [p for paths in checkpoints.values() for p in paths]
    return tombstoned(map(_read, commits.values()), map(_read, parts))


def tombstoned(commits: Iterable[bytes | None], checkpoints: Iterable[bytes | None]) -> set[str]:
    """Paths (in the table) of the data files these commits and checkpoints
    (their bytes) removed; checkpoints that do not read are passed over."""
    from urllib.parse import unquote

    import pyarrow as pa
    import pyarrow.parquet as pq

    removed = {
        unquote(str(a["remove"].get("path")))
        for raw in commits
        for a in actions_of(raw)[0]
        if isinstance(a.get("remove"), dict)
    }
    for data in (d for d in checkpoints if parquet_reads(d)):
        source = pa.BufferReader(data or b"")
        column = pq.read_table(source, columns=["remove"]).column("remove").to_pylist()
        removed |= {unquote(r["path"]) for r in column if r and r.get("path")}
    return removed


# -- the defect outbox -----------------------------------------------------------


def check_outbox(store: Store) -> list[str]:
    """Actions waiting, and damaged entries, which `testmem defects flush` sets
    aside in outbox/damaged/: so both count the same actions waiting."""
    outbox = store.root / "defects" / "outbox"
    files = sorted(outbox.glob("*.json")) if outbox.is_dir() else []
    damaged = [p.name for p in files if not _outbox_entry(p)]
    problems = []
    if len(files) > len(damaged):
        waiting = len(files) - len(damaged)
        problems.append(
            f"{waiting} defect actions waiting in {outbox} (run `testmem defects flush`)"
        )
    if damaged:
        problems.append(
            f"{len(damaged)} damaged outbox entries ({', '.join(damaged[:5])}): "
            f"`testmem defects flush` moves them to {outbox / 'damaged'}"
        )
    return problems


_OUTBOX_NAME = re.compile(r"^(create|update)-def-[0-9a-f]{12}\.json$")


def _outbox_entry(path: Path) -> bool:
    """The outbox's own rule (testmem.agents.defects), restated: memory never imports agents."""
    try:
        entry = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return (
        _OUTBOX_NAME.match(path.name) is not None
        and isinstance(entry, dict)
        and entry.get("action") in ("create", "update")
        and isinstance(entry.get("defect_id"), str)
        and isinstance(entry.get("report"), dict)
    )
