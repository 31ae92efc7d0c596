"""What every backend shares: length-sorted batches of tokenized texts in, unit vectors out."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

from .provenance import Provenance
from .tokens import Batch, Tokens, length_sorted

__all__ = ["FloatMatrix", "TokenBackend", "embed_sorted", "quiet_loading"]

FloatMatrix = npt.NDArray[np.float32]


@contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers' "Loading weights" progress bar off while a model loads (restored after)."""
    from transformers.utils import logging

    hf: Any = logging
    was_enabled = hf.is_progress_bar_enabled()
    hf.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf.enable_progress_bar()


def embed_sorted(
    tokens: Tokens,
    texts: Sequence[str],
    batch_size: int,
    dimension: int,
    run: Callable[[Batch], npt.NDArray[np.floating]],
) -> FloatMatrix:
    """Run ``run`` over length-sorted padded batches of ``texts``; rows back in input order."""
    out = np.empty((len(texts), dimension), dtype=np.float32)
    if not texts:
        return out
    ids = tokens.ids(texts)
    for rows in length_sorted(ids, batch_size):
        out[rows] = run(tokens.pad([ids[r] for r in rows]))
    return out


class TokenBackend:
    """A backend that runs a tokenized graph (ONNX Runtime, OpenVINO)."""

    provenance: Provenance

    def __init__(self, tokens: Tokens, dimension: int, batch_size: int) -> None:
        self.tokens = tokens
        self.dimension = dimension
        self.batch_size = batch_size

    def run(self, batch: Batch) -> npt.NDArray[np.floating]:
        raise NotImplementedError

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        return embed_sorted(self.tokens, texts, self.batch_size, self.dimension, self.run)
