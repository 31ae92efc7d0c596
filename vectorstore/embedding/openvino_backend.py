"""OpenVINO backend: the ONNX export converted to OpenVINO IR, fp32 or int8 (nncf, static).

fp32 runs with ``INFERENCE_PRECISION_HINT=f32``: on CPUs with bf16 units
OpenVINO would otherwise compute in bf16 behind the caller's back.  int8 is
nncf's post-training static quantization in its transformer preset
(per-channel weights, the sensitive operations such as softmax and layer
norm kept in float), calibrated on a sample of the user's texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vectorstore._optional import require

from .base import TokenBackend
from .export import export_onnx
from .provenance import Provenance
from .source import cached, texts_hash
from .tokens import Batch, Tokens

__all__ = ["OpenVINOBackend", "export_openvino", "export_openvino_int8"]


def _convert(onnx_path: Path, out: Path) -> None:
    ov = require("openvino", extra="openvino", feature="the openvino backend")
    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(out), compress_to_fp16=False)


def export_openvino(model_dir: Path, cache: str | Path | None = None) -> Path:
    """The OpenVINO IR (fp32) of ``model_dir``'s ONNX export, cached beside it."""
    onnx_path = export_onnx(model_dir, cache)
    path = onnx_path.with_name("openvino-fp32.xml")
    return cached(path, lambda out: _convert(onnx_path, out), companions=(".bin",))


def _quantize(fp32: Path, tokens: Tokens, calibration: Sequence[str], out: Path) -> None:
    ov = require("openvino", extra="openvino", feature="the openvino backend")
    nncf = require("nncf", extra="openvino", feature="OpenVINO int8 quantization")
    model = ov.Core().read_model(str(fp32))
    batches = [tokens.batch(calibration[s : s + 1]) for s in range(len(calibration))]
    data = nncf.Dataset(
        [{"input_ids": b.input_ids, "attention_mask": b.attention_mask} for b in batches]
    )
    quantized = nncf.quantize(
        model,
        data,
        model_type=nncf.ModelType.TRANSFORMER,
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(batches),
    )
    ov.save_model(quantized, str(out), compress_to_fp16=False)


def export_openvino_int8(
    model_dir: Path, calibration: Sequence[str], cache: str | Path | None = None
) -> Path:
    """The int8 OpenVINO IR, calibrated on ``calibration`` (cached per model and texts)."""
    fp32 = export_openvino(model_dir, cache)
    path = fp32.with_name(f"openvino-int8-{texts_hash(calibration)}.xml")
    tokens = Tokens(model_dir)
    return cached(path, lambda out: _quantize(fp32, tokens, calibration, out), companions=(".bin",))


class OpenVINOBackend(TokenBackend):
    """Runs an OpenVINO IR on the CPU."""

    def __init__(
        self,
        path: Path,
        tokens: Tokens,
        *,
        precision: str,
        dimension: int,
        batch_size: int,
        threads: int | None = None,
    ) -> None:
        super().__init__(tokens, dimension, batch_size)
        ov = require("openvino", extra="openvino", feature="the openvino backend")
        core = ov.Core()
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self._compiled: Any = core.compile_model(core.read_model(str(path)), "CPU", config)
        self._request: Any = self._compiled.create_infer_request()
        self.path = path
        self.provenance = Provenance("openvino", precision, admitted=False)

    def run(self, batch: Batch) -> npt.NDArray[np.floating]:
        result = self._request.infer(
            {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        )
        return np.asarray(result[self._compiled.output(0)])
