"""Build the ONNX exports of a local sentence-transformers model (fp32, and int8 calibrated).

The graph is the whole sentence embedding: the transformer, mean pooling
over the attention mask and L2 normalisation, with ``input_ids`` and
``attention_mask`` (batch x tokens, both dynamic) in and ``embedding``
(batch x dimension) out.  It is exported with ``torch.onnx.export`` from the
bundled weights, never downloaded.

int8 is *static* quantization (onnxruntime's ``quantize_static``, QDQ
format): weights per channel, activations per tensor with ranges calibrated
on a sample of the user's own texts.  Only the MatMuls that multiply by a
weight are quantized; the attention's activation-by-activation products
(Q·Kᵀ, softmax·V) stay in float, where int8 costs the most accuracy, and so
do the feed-forward down-projections, whose input (the GELU output) has the
outliers that per-tensor activation ranges cannot hold (measured on 150
held-out stdlib texts: min cosine 0.874 with them quantized, 0.987 without).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from vectorstore._optional import require

from .base import quiet_loading
from .source import cache_root, cached, fingerprint, texts_hash
from .tokens import Tokens

__all__ = ["export_dir", "export_onnx", "export_onnx_int8"]


def export_dir(model_dir: Path, cache: str | Path | None = None) -> Path:
    """The cache folder of ``model_dir``'s exports (by the fingerprint of its files)."""
    return cache_root(cache) / fingerprint(model_dir)


def _pooled_model(model_dir: Path) -> Any:
    torch = require("torch", extra="embeddings", feature="the ONNX export")
    transformers = require("transformers", extra="embeddings", feature="the ONNX export")

    class Pooled(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    with quiet_loading():
        bert = transformers.AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    return Pooled(bert.eval())


def _write_fp32(model_dir: Path, out: Path) -> None:
    torch = require("torch", extra="embeddings", feature="the ONNX export")
    model = _pooled_model(model_dir)
    tokens = Tokens(model_dir)
    sample = tokens.batch(["an example sentence to trace the graph", "another one"])
    args = (torch.from_numpy(sample.input_ids), torch.from_numpy(sample.attention_mask))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            args,
            str(out),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )


def export_onnx(model_dir: Path, cache: str | Path | None = None) -> Path:
    """The fp32 ONNX export of ``model_dir`` (built on first use, then cached)."""
    path = export_dir(model_dir, cache) / "model-fp32.onnx"
    return cached(path, lambda out: _write_fp32(model_dir, out))


class _Calibration:
    """onnxruntime's CalibrationDataReader over tokenized batches of the user's texts."""

    def __init__(self, tokens: Tokens, texts: Sequence[str], batch_size: int = 16) -> None:
        self._batches: Iterator[dict[str, Any]] = iter(
            {"input_ids": b.input_ids, "attention_mask": b.attention_mask}
            for b in (
                tokens.batch(texts[s : s + batch_size]) for s in range(0, len(texts), batch_size)
            )
        )

    def get_next(self) -> dict[str, Any] | None:
        return next(self._batches, None)


def _weight_matmuls(path: Path) -> tuple[list[str], list[str]]:
    """The MatMul nodes that multiply by an initializer (a weight), and those that do not."""
    onnx = require("onnx", extra="onnx", feature="int8 quantization")
    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    # Constant nodes and Transposes of initializers also carry weights.
    produced_by_const = {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    weights |= produced_by_const
    for node in graph.node:
        if node.op_type == "Transpose" and node.input[0] in weights:
            weights.update(node.output)
    keep: list[str] = []
    skip: list[str] = []
    for node in graph.node:
        if node.op_type in ("MatMul", "Gemm"):
            (keep if any(i in weights for i in node.input) else skip).append(node.name)
    return keep, skip


def _is_ffn_down(name: str) -> bool:
    # torch.onnx names nodes by module: .../layer.N/output/dense/MatMul is the FFN's
    # second linear layer (.../attention/output/dense is the attention's projection).
    return "/output/dense/" in name and "/attention/" not in name


def _write_int8(fp32: Path, tokens: Tokens, calibration: Sequence[str], out: Path) -> None:
    quant = require("onnxruntime.quantization", extra="onnx", feature="int8 quantization")
    weight_matmuls, activation_matmuls = _weight_matmuls(fp32)
    excluded = activation_matmuls + [n for n in weight_matmuls if _is_ffn_down(n)]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static logs advice on the root logger
    try:
        _quantize_static(quant, fp32, tokens, calibration, out, excluded)
    finally:
        root.setLevel(level)


def _quantize_static(
    quant: Any, fp32: Path, tokens: Tokens, calibration: Sequence[str], out: Path,
    excluded: list[str],
) -> None:  # fmt: skip
    quant.quantize_static(
        str(fp32),
        str(out),
        _Calibration(tokens, calibration),
        quant_format=quant.QuantFormat.QDQ,
        per_channel=True,
        activation_type=quant.QuantType.QUInt8,
        weight_type=quant.QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],
        nodes_to_exclude=excluded,
        calibrate_method=quant.CalibrationMethod.MinMax,
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
    )


def export_onnx_int8(
    model_dir: Path, calibration: Sequence[str], cache: str | Path | None = None
) -> Path:
    """The int8 ONNX export, calibrated on ``calibration`` (cached per model and texts)."""
    fp32 = export_onnx(model_dir, cache)
    path = fp32.with_name(f"model-int8-{texts_hash(calibration)}.onnx")
    tokens = Tokens(model_dir)
    return cached(path, lambda out: _write_int8(fp32, tokens, calibration, out))
