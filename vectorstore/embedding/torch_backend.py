"""The torch backends: sentence-transformers fp32 (the reference) and the half-precision path.

:class:`TorchReference` is today's embedder: ``SentenceTransformer.encode`` in
fp32, the vectors every other backend is gated against.

:class:`TorchHalf` is the GPU path, in fp16 or bf16:

* the transformer runs with PyTorch's scaled-dot-product attention
  (``attn_implementation="sdpa"``), or FlashAttention-2 when the
  ``flash_attn`` package is installed for this torch and the device is CUDA;
* batches are formed from length-sorted texts, so a batch pads to a length
  close to each of its texts (at batch 512 a single long text would
  otherwise make every row 256 tokens);
* tokenization of the next batch runs in a thread while the model computes
  the current one (tokenizers releases the GIL), and the ids are copied to
  the device from pinned memory without blocking;
* mean pooling and normalisation are done in fp32.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from vectorstore._optional import require

from .base import FloatMatrix, quiet_loading
from .provenance import REFERENCE, Provenance
from .tokens import Batch, Tokens

__all__ = ["TorchHalf", "TorchReference", "attention_implementation"]


class TorchReference:
    """sentence-transformers' own ``encode`` in fp32 (the reference backend)."""

    provenance = REFERENCE

    def __init__(self, model: Any, batch_size: int, normalize: bool = True) -> None:
        self.model = model
        self.batch_size = batch_size
        self.normalize = normalize

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def attention_implementation(device: str, precision: str) -> str:
    """``flash_attention_2`` where it runs (CUDA, fp16/bf16, its wheel installed), else sdpa."""
    if (
        device.startswith("cuda")
        and precision in ("fp16", "bf16")
        and importlib.util.find_spec("flash_attn") is not None
    ):
        return "flash_attention_2"
    return "sdpa"


class TorchHalf:
    """The transformer in fp16 / bf16 with SDPA, length-sorted batches, overlapped tokenization."""

    def __init__(
        self,
        model_dir: Path,
        tokens: Tokens,
        *,
        device: str,
        precision: str,
        dimension: int,
        batch_size: int,
    ) -> None:
        torch = require("torch", extra="embeddings", feature="the torch backend")
        transformers = require("transformers", extra="embeddings", feature="the torch backend")
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]
        self.attention = attention_implementation(device, precision)
        with quiet_loading():
            try:
                model = transformers.AutoModel.from_pretrained(
                    str(model_dir), dtype=dtype, attn_implementation=self.attention
                )
            except (ImportError, ValueError):  # FlashAttention-2 refused for this model/build
                self.attention = "sdpa"
                model = transformers.AutoModel.from_pretrained(
                    str(model_dir), dtype=dtype, attn_implementation="sdpa"
                )
        self._torch = torch
        self._model = model.to(device).eval()
        self.tokens = tokens
        self.device = device
        self.dimension = dimension
        self.batch_size = batch_size
        self.provenance = Provenance("torch", precision, admitted=False)
        self._pin = device.startswith("cuda")

    def _to_device(self, batch: Batch) -> tuple[Any, Any]:
        torch = self._torch
        ids = torch.from_numpy(batch.input_ids)
        mask = torch.from_numpy(batch.attention_mask)
        if self._pin:
            ids, mask = ids.pin_memory(), mask.pin_memory()
        return ids.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True)

    def _forward(self, batch: Batch) -> Any:
        torch = self._torch
        ids, mask = self._to_device(batch)
        hidden = self._model(
            input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)
        ).last_hidden_state.float()
        weights = mask.unsqueeze(-1).float()
        mean = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        tokens = self.tokens
        # Sorted by characters, a close proxy of tokens: the texts are tokenized
        # batch by batch in the thread, overlapped with the model.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        groups = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        results: list[tuple[Any, Any]] = []
        with ThreadPoolExecutor(1, thread_name_prefix="vectorstore-tokenize") as pool:

            def padded(rows: Any) -> Batch:
                return tokens.batch([texts[r] for r in rows])

            upcoming: Future[Batch] = pool.submit(padded, groups[0])
            with self._torch.inference_mode():
                for k, rows in enumerate(groups):
                    batch = upcoming.result()
                    if k + 1 < len(groups):
                        upcoming = pool.submit(padded, groups[k + 1])
                    results.append((rows, self._forward(batch)))  # queued on the device
        for rows, vectors in results:
            out[rows] = vectors.cpu().numpy()
        return out
