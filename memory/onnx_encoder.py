"""A sentence-transformers model run by ONNX Runtime, int8-quantized.

On two CPU cores sentence-transformers on PyTorch embeds about 80 failure
texts a second with all-MiniLM-L6-v2; the same weights exported to ONNX, fused
and quantized to int8 (dynamic, per channel — what sentence-transformers' own
``export_dynamic_quantized_onnx_model`` does) run about twice as fast
(`bench/embed_speed.py`), and a process that finds the export never imports
torch, which takes ~10 s off a cold start. The vectors differ from PyTorch's
by a cosine of about 0.01; `bench/eval_matching.py` measures matching with them.

Choices in the export, each measured in CPU time per text (~55 tokens):
attention is exported in its plain ("eager") form, which ONNX Runtime fuses
into one quantized Attention op with a packed QKV projection (PyTorch's SDPA
form does not fuse: ~8% slower); residual add + layer norm stay two ops,
because ONNX Runtime's fused SkipLayerNormalization is ~10% slower on these
shapes; GELU is its tanh approximation (FastGelu, ~4% faster; vectors as close
to PyTorch's as before); the word-embedding table stays float (quantizing it
saves no time). Batches of texts would save only ~5-8% more, at the price of
vectors that depend on their neighbours (see `OnnxEncoder.encode`).

The export happens once per model, on first use, into the user's cache
(``$XDG_CACHE_HOME/testmem/onnx``); it needs torch and sentence-transformers,
which testmem depends on anyway. Only the common shape of sentence models is
exported — a BERT-style transformer, mean pooling, normalisation (`supported`);
anything else is run by sentence-transformers as it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
VARIANT = "int8-attention-fastgelu"  # part of the cache key: vectors of two variants never mix
SLOWER_FUSIONS = ["SkipLayerNormFusion"]  # ONNX Runtime would redo it at load (see above)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "testmem" / "onnx"


def supported(model_dir: Path) -> bool:
    """Whether the model is a transformer + mean pooling (+ normalisation)."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text())
    except (OSError, ValueError, KeyError, IndexError):
        return False
    modes = {key for key, value in pooling.items() if key.startswith("pooling_mode_") and value}
    return (
        kinds[:2] == ["Transformer", "Pooling"]
        and set(kinds[2:]) <= {"Normalize"}
        and modes == {"pooling_mode_mean_tokens"}
    )


class OnnxEncoder:
    """``encode(texts) -> unit vectors``, the interface `testmem.memory.embed` needs."""

    def __init__(self, model_dir: Path, onnx_file: Path) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        settings = json.loads((model_dir / "sentence_bert_config.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(int(settings.get("max_seq_length", 256)))
        self.tokenizer.no_padding()  # tokenizer.json may pad to a fixed length
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one text is too small to split: texts go in parallel
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(onnx_file),
            options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=SLOWER_FUSIONS,
        )

    def encode(self, texts: list[str]) -> list[list[float]]:
        """One text per call, as many calls at once as there are cores: int8
        quantization scales activations per call, so in a batch a text's vector
        would depend on its neighbours; alone, the same text always gets the
        same vector (and no padding is computed)."""
        from concurrent.futures import ThreadPoolExecutor

        encodings = self.tokenizer.encode_batch(texts)
        if len(encodings) < 2:
            return [self._vector(e) for e in encodings]
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # ONNX Runtime drops the GIL
            return list(pool.map(self._vector, encodings))

    def _vector(self, encoding: Any) -> list[float]:
        import numpy as np

        feed = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
        }
        pooled = self.session.run(None, feed)[0][0].mean(axis=0)  # mean over the tokens
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).tolist()


def exported(model_dir: Path) -> Path:
    """The quantized ONNX file of the model, exported now if not cached yet."""
    weights = sorted(p for p in model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin"))
    identity = [str(model_dir.resolve())] + [f"{p.name}:{p.stat().st_size}" for p in weights]
    key = hashlib.sha256("\n".join([VARIANT, *identity]).encode()).hexdigest()[:16]
    target = cache_root() / key / f"model-{VARIANT}.onnx"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        _export(model_dir, target)
    return target


def _export(model_dir: Path, target: Path) -> None:
    """Export the transformer to ONNX and quantize it, written atomically."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model
    from sentence_transformers import SentenceTransformer

    eager = {"attn_implementation": "eager"}  # the form ONNX Runtime fuses into Attention
    model = SentenceTransformer(str(model_dir), device="cpu", model_kwargs=eager)
    transformer: Any = model[0].auto_model
    transformer.eval()
    fusions = FusionOptions("bert")
    fusions.enable_skip_layer_norm = False
    fusions.enable_gelu_approximation = True

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer  # a submodule, so its weights export as weights

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])  # one padded row
    sample = (ids, (ids > 0).long(), torch.zeros_like(ids))
    quiet = logging.getLogger()  # the quantizer logs advice at WARNING on the root logger
    level = quiet.level
    with (
        tempfile.TemporaryDirectory(dir=target.parent) as work,
        warnings.catch_warnings(),  # tracer warnings about shapes taken as constants
    ):
        warnings.simplefilter("ignore")
        quiet.setLevel(logging.ERROR)
        plain, fused, quantized = (Path(work) / n for n in ("plain.onnx", "fused.onnx", "q.onnx"))
        with torch.no_grad():
            torch.onnx.export(
                LastHiddenState(),
                sample,
                str(plain),
                input_names=list(INPUTS),
                output_names=["last_hidden_state"],
                dynamic_axes={
                    name: {0: "batch", 1: "tokens"} for name in [*INPUTS, "last_hidden_state"]
                },
                opset_version=17,
                dynamo=False,
            )
        try:
            # Fuse BERT's attention, layer norms and GELUs first (ONNX Runtime's
            # transformer optimizer, `fusions`); then int8 weights, per channel.
            optimize_model(
                str(plain), model_type="bert", optimization_options=fusions,
                num_heads=transformer.config.num_attention_heads,
                hidden_size=transformer.config.hidden_size,
            ).save_model_to_file(str(fused))  # fmt: skip
            quantize_dynamic(
                str(fused), str(quantized), weight_type=QuantType.QInt8, per_channel=True,
                op_types_to_quantize=["MatMul", "Attention"],
                extra_options={"DefaultTensorType": 1},  # FLOAT, for fused ops' outputs
            )  # fmt: skip
        finally:
            quiet.setLevel(level)
        os.replace(quantized, target)  # concurrent exporters: the last one wins, whole
