"""Answers of the quick commands, kept until the log moves.

A listing (`testmem runs`, `failures`, `incidents`, `decisions`, `defects`,
`heals`, `similar`) is a projection of the log like the others. Computed
with DuckDB over the snapshot, its rows are kept in ``DIR/answers/answers.sqlite``
under the question, its arguments and the log version it read (the newest
commit file in ``DIR/events/_delta_log``, its name, size and time: a
directory listing away). Asked
again while that version is still the newest, it is answered from there with
the standard library alone, without the ~0.3 s that importing DuckDB and
deltalake takes. Any commit (a run, a triage, a label, a purge) leaves every
kept answer behind; the next question computes afresh and keeps its answer.

Only a local store keeps answers (a remote log's version costs what the answer
does). An answer computed while something warned (a damaged file skipped) is
not kept, nor one holding a value JSON cannot say exactly; losing the file,
or failing to write it, loses nothing.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import warnings
from collections.abc import Callable, Iterable
from contextlib import closing
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from testmem.memory.query import Rows
    from testmem.memory.store import Store

_COMMIT = re.compile(r"\d{20}\.json")
_SCHEMA = "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, version TEXT, rows TEXT)"


def answer(
    store: Store,
    question: str,
    arguments: dict[str, Any],
    compute: Callable[[], Rows],
    inputs: Iterable[Path] = (),
) -> Rows:
    """The rows ``compute`` gives, kept under the question, its ``arguments``
    and the log version; ``inputs``: directories besides the log the answer
    reads (their listing is part of the key)."""
    version = _version(store)
    if version is None:
        return compute()
    key = _key(question, arguments, inputs)
    kept = _read(store, key, version)
    if kept is not None:
        return kept
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = compute()
    for warning in caught:
        warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    if not caught and _version(store) == version:  # no commit landed while computing
        _keep(store, key, version, rows)
    return rows


def kept(store: Store, question: str, arguments: dict[str, Any]) -> Rows | None:
    """The answer kept for the log's newest version, if there is one (never computed)."""
    version = _version(store)
    return _read(store, _key(question, arguments, ()), version) if version else None


def _key(question: str, arguments: dict[str, Any], inputs: Iterable[Path]) -> str:
    return json.dumps([question, arguments, _listing(inputs)], sort_keys=True, default=str)


def _version(store: Store) -> str | None:
    """The log's newest version, from its commit files' names, with that
    file's size and time (a log deleted and begun again reaches the same
    numbers); None for a remote store or a log not yet begun."""
    if store.remote:
        return None
    log = store.root / "events" / "_delta_log"
    try:
        newest = max((n for n in os.listdir(log) if _COMMIT.fullmatch(n)), default=None)
        found = os.stat(log / newest) if newest else None
    except OSError:
        return None
    return f"{newest[:20]}:{found.st_size}:{found.st_mtime_ns}" if newest and found else None


def _listing(directories: Iterable[Path]) -> list[list[Any]]:
    found = []
    for directory in directories:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        found += [[e.path, e.stat().st_size, e.stat().st_mtime_ns] for e in entries]
    return found


def _read(store: Store, key: str, version: str) -> Rows | None:
    from testmem.memory.query import Rows

    path = store.root / "answers" / "answers.sqlite"
    if not path.exists():
        return None
    try:
        with closing(sqlite3.connect(path, timeout=1)) as db:
            found = db.execute(
                "SELECT rows FROM answers WHERE key = ? AND version = ?", [key, version]
            ).fetchone()
    except sqlite3.Error:
        return None
    if found is None:
        return None
    kept = json.loads(found[0], object_hook=_decoded)
    return Rows(kept["columns"], [tuple(row) for row in kept["rows"]])


def _keep(store: Store, key: str, version: str, rows: Rows) -> None:
    try:
        text = json.dumps({"columns": rows.columns, "rows": [_encoded(r) for r in rows.rows]})
    except _Unsayable:
        return
    try:
        with closing(sqlite3.connect(store.subdir("answers") / "answers.sqlite", timeout=1)) as db:
            db.execute(_SCHEMA)
            with db:
                db.execute("DELETE FROM answers WHERE version <> ?", [version])
                db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)", [key, version, text])
    except (sqlite3.Error, OSError):
        pass  # a read-only or busy store answers all the same, only not faster next time


class _Unsayable(TypeError):
    """A value JSON would not give back as it was."""


def _encoded(value: Any) -> Any:
    """A value as JSON that `_decoded` turns back into the same value and type."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, list):
        return [_encoded(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [_encoded(v) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        # as pairs: a dict's own keys never pass for a tag on the way back
        return {"$dict": [[k, _encoded(v)] for k, v in value.items()]}
    raise _Unsayable(type(value).__name__)


def _decoded(obj: dict[str, Any]) -> Any:
    if "$datetime" in obj:
        return datetime.fromisoformat(obj["$datetime"])
    if "$date" in obj:
        return date.fromisoformat(obj["$date"])
    if "$tuple" in obj:
        return tuple(obj["$tuple"])
    if "$dict" in obj:
        return dict(obj["$dict"])
    return obj
