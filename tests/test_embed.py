"""The embedder: the real MiniLM model, loaded lazily, and a cache that spares it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from testmem.memory import onnx_encoder
from testmem.memory.embed import (
    CACHE_FILE,
    Embedder,
    EmbeddingError,
    _VectorCache,
    default_model_path,
)
from testmem.memory.fingerprint import fingerprint

FAILURES = {
    "500 assert": "GET /orders/{id} | status 500 | assert 500 == 200",
    "500 raised": "GET /orders/{id} | status 500 | Server error '500 Internal Server Error'",
    "timeout": "POST /payments | httpx.ReadTimeout: The read operation timed out",
    "missing key": "GET /users/{id} | status 200 | KeyError: 'name'",
}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[float]]]:
    """The failures embedded once by the real model (loading it costs seconds)."""
    cache = tmp_path_factory.mktemp("embeddings")
    return cache, Embedder(cache_dir=cache).embed(FAILURES)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_are_unit_length(embedded: tuple[Path, dict[str, list[float]]]) -> None:
    _, vectors = embedded
    assert set(vectors) == set(FAILURES)
    for vector in vectors.values():
        assert len(vector) == 384
        assert cosine(vector, vector) == pytest.approx(1.0, abs=1e-4)


def test_one_cause_reworded_is_closer_than_another_cause(
    embedded: tuple[Path, dict[str, list[float]]],
) -> None:
    _, v = embedded
    assert cosine(v["500 assert"], v["500 raised"]) > cosine(v["500 assert"], v["timeout"])
    assert cosine(v["500 assert"], v["500 raised"]) > cosine(v["500 assert"], v["missing key"])


def test_a_cached_signature_never_loads_the_model_in_a_fresh_process(
    embedded: tuple[Path, dict[str, list[float]]],
) -> None:
    cache, vectors = embedded
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from testmem.memory.embed import Embedder
        embedder = Embedder(cache_dir=Path({str(cache)!r}))
        vectors = embedder.embed({{"500 assert": "text is not read on a hit"}})
        print(json.dumps([embedder.loaded, "sentence_transformers" in sys.modules,
                          vectors["500 assert"]]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    loaded, imported, vector = json.loads(done.stdout)
    assert (loaded, imported) == (False, False)
    assert vector == pytest.approx(vectors["500 assert"], abs=1e-6)


def test_signatures_embed_their_fingerprint_text(tmp_path: Path) -> None:
    first = fingerprint("assert 500 == 200", route="/orders/1", status=500)
    again = fingerprint("assert 500 == 200", route="/orders/2", status=500)
    assert first.signature == again.signature
    embedder = Embedder(cache_dir=tmp_path)
    vectors = embedder.embed({first.signature: first.text, again.signature: again.text})
    assert list(vectors) == [first.signature]


def test_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    embedder = Embedder(model_path=str(tmp_path / "no-such-model"))
    with pytest.raises(EmbeddingError, match="embedding model not found"):
        embedder.embed({"s": "text"})


def test_the_model_path_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTMEM_MODEL", str(tmp_path))
    assert Embedder().model_path == str(tmp_path.resolve())


def test_a_damaged_cache_warns_and_still_embeds(
    tmp_path: Path, embedded: tuple[Path, dict[str, list[float]]]
) -> None:
    (tmp_path / CACHE_FILE).mkdir()  # a directory where the SQLite file should be
    with pytest.warns(RuntimeWarning, match="embedding without the cache"):
        embedder = Embedder(cache_dir=tmp_path)
        vectors = embedder.embed({"timeout": FAILURES["timeout"]})
    assert vectors["timeout"] == pytest.approx(embedded[1]["timeout"], abs=1e-5)


def test_processes_share_the_cache_without_losing_vectors(tmp_path: Path) -> None:
    writer = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from testmem.memory.embed import CACHE_FILE, _VectorCache
        cache = _VectorCache(Path({str(tmp_path)!r}) / CACHE_FILE, "model")
        for i in range(50):
            cache.put({{f"{{sys.argv[1]}}-{{i}}": [float(i)] * 4}})
        """
    )
    writers = [subprocess.Popen([sys.executable, "-c", writer, str(n)]) for n in range(4)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    found = _VectorCache(tmp_path / CACHE_FILE, "model").get(
        [f"{n}-{i}" for n in range(4) for i in range(50)]
    )
    assert len(found) == 200
    assert found["3-7"] == [7.0] * 4


def test_the_onnx_backend_agrees_with_pytorch_and_needs_no_torch(tmp_path: Path) -> None:
    """The default backend runs the int8 ONNX export of the same model: its
    vectors point where sentence-transformers' PyTorch vectors point, and a
    process that finds the export embeds without importing torch."""
    script = textwrap.dedent(
        f"""
        import json, os, sys
        os.environ["TESTMEM_EMBED_BACKEND"] = sys.argv[1]
        from testmem.memory.embed import Embedder
        vectors = Embedder().embed({FAILURES!r})
        print(json.dumps({{"vectors": vectors, "torch": "torch" in sys.modules}}))
        """
    )
    onnx, torch = (
        json.loads(
            subprocess.run(
                [sys.executable, "-c", script, backend],
                capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1],
            ).stdout
        )
        for backend in ("onnx", "torch")
    )  # fmt: skip
    assert not onnx["torch"] and torch["torch"]  # the export exists: the fixture made it
    for name in FAILURES:
        assert cosine(onnx["vectors"][name], torch["vectors"][name]) > 0.97
    assert Embedder().model_key != Embedder(model_path=str(tmp_path)).model_key


def test_the_export_has_one_attention_op_per_layer_and_plain_layer_norms(
    embedded: tuple[Path, dict[str, list[float]]],
) -> None:
    """The shape that makes the export fast on a CPU (see `testmem.memory.onnx_encoder`)."""
    import onnx

    model = Path(default_model_path())
    layers = json.loads((model / "config.json").read_text())["num_hidden_layers"]
    graph = onnx.load(str(onnx_encoder.exported(model))).graph  # the fixture exported it
    ops = Counter(node.op_type for node in graph.node)
    assert ops["QAttention"] == layers
    assert ops["SkipLayerNormalization"] == 0


def test_the_backend_is_part_of_the_cache_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = Embedder().model_key
    monkeypatch.setenv("TESTMEM_EMBED_BACKEND", "torch")
    assert Embedder().model_key != default  # PyTorch vectors never answer for ONNX ones
