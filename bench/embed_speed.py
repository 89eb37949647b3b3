"""Embedding speed: new texts through testmem's backend and through
sentence-transformers on PyTorch (what a user would reach for), and cache hits,
in one run.

testmem runs the model as an int8 ONNX export (`memory/onnx_encoder.py`); a user
without testmem's cache re-embeds every failure each time it recurs; with it,
a recurring failure is a SQLite lookup by signature. Texts are what testmem embeds
for the failures of bench/failures/labelled.jsonl (`Fingerprint.text` of the whole
failure: route, status and the normalised message), each made distinct.

    .venv/bin/python bench/embed_speed.py [-n 1000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testmem.memory.embed import Embedder, _model
from testmem.memory.incidents import fingerprint_of

LABELLED = Path(__file__).parent / "failures" / "labelled.jsonl"


def failure_texts(count: int) -> dict[str, str]:
    """``count`` distinct normalised failure texts by signature-like key."""
    texts: dict[str, str] = {}
    records = [json.loads(line) for line in LABELLED.read_text().splitlines()]
    for i in range(count):
        record = records[i % len(records)]
        # The occurrence number makes each text new, as new failures are.
        text = f"{fingerprint_of(record).text} #{i}"
        texts[hashlib.sha256(text.encode()).hexdigest()[:16]] = text
    return texts


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds: on a shared machine the CPU time is the steadier figure."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="texts per measurement")
    args = parser.parse_args()
    texts = failure_texts(args.n)
    with tempfile.TemporaryDirectory() as cache:
        embedder = Embedder(cache_dir=Path(cache))
        load = timed(lambda: _model(embedder.model_path, embedder.model_key))
        torch_load = timed(lambda: _model(embedder.model_path, embedder.model_path))
        torch = _model(embedder.model_path, embedder.model_path)  # sentence-transformers
        new = timed(lambda: embedder.embed(texts))
        plain = timed(
            lambda: torch.encode(list(texts.values()), batch_size=16, normalize_embeddings=True)
        )
        fresh = Embedder(cache_dir=Path(cache))  # a new process's view: nothing in memory
        hits = timed(lambda: fresh.embed(texts))
    n = len(texts)
    print(
        f"{n} texts; start-up not counted below: testmem's model {load[0]:.1f}s, "
        f"sentence-transformers on PyTorch {torch_load[0]:.1f}s"
    )
    print(f"{'':55} {'texts/s wall':>12} {'texts/CPU-s':>12}")
    for name, (wall, cpu) in (
        (f"testmem ({embedder.model_key.rsplit('#', 1)[-1]}), new texts, cached", new),
        ("sentence-transformers on PyTorch", plain),
        ("testmem, the same texts again (cache hits)", hits),
    ):
        print(f"{name:55} {n / wall:12.0f} {n / cpu:12.0f}")
    print(f"testmem vs PyTorch on new texts: {plain[0] / new[0]:.1f}x faster (wall)")


if __name__ == "__main__":
    main()
