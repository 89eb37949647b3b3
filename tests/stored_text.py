"""What a store holds, as text a secret could be found in: every file's bytes,
and every Parquet cell (compressed pages hide a value from a byte search),
with cells that are base64 (bodies that are not UTF-8) decoded too."""

from __future__ import annotations

import base64
import binascii
import contextlib
from pathlib import Path

import duckdb


def file_texts(root: Path) -> dict[str, str]:
    """Each file under ``root`` (relative path) and the text it holds."""
    db = duckdb.connect()
    texts = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        parts = [path.read_bytes().decode("latin-1")]
        if path.suffix == ".parquet":
            parts += _cells(db, path)
        texts[str(path.relative_to(root))] = "\n".join(parts)
    return texts


def files_containing(root: Path, secret: str) -> list[str]:
    return [name for name, text in file_texts(root).items() if secret in text]


def _cells(db: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    cells = []
    for row in db.execute("SELECT * FROM read_parquet(?)", [str(path)]).fetchall():
        for cell in map(str, row):
            cells.append(cell)
            with contextlib.suppress(binascii.Error, ValueError):
                cells.append(base64.b64decode(cell, validate=True).decode("latin-1"))
    return cells
