"""ONNX Runtime backend: the exported graph on the CPU execution provider, fp32 or int8."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vectorstore._optional import require

from .base import TokenBackend
from .provenance import Provenance
from .tokens import Batch, Tokens

__all__ = ["OnnxRuntimeBackend"]


class OnnxRuntimeBackend(TokenBackend):
    """Runs an ONNX export (see :mod:`.export`) with onnxruntime."""

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
        ort = require("onnxruntime", extra="onnx", feature="the onnxruntime backend")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self._session: Any = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.path = path
        self.provenance = Provenance("onnxruntime", precision, admitted=False)

    def run(self, batch: Batch) -> npt.NDArray[np.floating]:
        feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        (out,) = self._session.run(["embedding"], feeds)
        return np.asarray(out)
