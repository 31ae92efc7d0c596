"""Embedding off the event loop: every ``embed`` the sync core makes runs in a worker thread.

The async repository hands the sync core an :class:`OffLoopEmbedder` around
the caller's embedder.  The core calls ``embed`` where it always does (a text
query before the query wing, the missing vectors of a write); inside the
greenlet bridge the call is sent to the library's worker pool
(:mod:`vectorstore._async`) and the greenlet waits on it the way it waits on
a socket, so the loop serves other tasks while the model runs.  Called from
a worker thread (the COPY chunk producer embeds there already) it runs in
place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vectorstore._async import await_, in_bridge, run_in_worker
from vectorstore.embedders import Embedder

__all__ = ["OffLoopEmbedder", "off_loop"]

FloatMatrix = np.ndarray[Any, np.dtype[np.float32]]


class OffLoopEmbedder:
    """``inner``'s model name and dimension; its ``embed`` never runs on the event loop."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        if in_bridge():
            matrix: FloatMatrix = await_(run_in_worker(self.inner.embed, list(texts)))
            return matrix
        return self.inner.embed(texts)


def off_loop(embedder: Embedder | None) -> Embedder | None:
    """``embedder`` wrapped in an :class:`OffLoopEmbedder` (None stays None; no double wrap)."""
    if embedder is None or isinstance(embedder, OffLoopEmbedder):
        return embedder
    return OffLoopEmbedder(embedder)
