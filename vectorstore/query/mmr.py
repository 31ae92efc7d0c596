"""Maximal marginal relevance: re-rank nearest's candidates for diversity.

Each pick maximises ``lambda * sim(query, d) - (1 - lambda) * max sim(d, picked)``
(cosine similarities), trading relevance for diversity; ``lambda`` = 1 is pure
relevance.  Pure numpy on the candidates' embeddings, no I/O.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vectorstore.results import SearchResult

__all__ = ["mmr_select"]


def mmr_select(
    query: Any, hits: list[SearchResult[Any]], k: int, lam: float, metric: str
) -> list[SearchResult[Any]]:
    """Pick ``k`` of ``hits`` by maximal marginal relevance (``lam`` = 1: pure relevance)."""
    if not hits:
        return []
    matrix = np.asarray([np.asarray(h.document.embedding, dtype=np.float32) for h in hits])
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.where(norms == 0, 1.0, norms)
    q = np.asarray(query, dtype=np.float32)
    q = q / (float(np.linalg.norm(q)) or 1.0)
    relevance = unit @ q
    similarity = unit @ unit.T
    picked: list[int] = []
    left = list(range(len(hits)))
    while left and len(picked) < k:
        redundancy = similarity[np.ix_(left, picked)].max(axis=1) if picked else np.zeros(len(left))
        gains = lam * relevance[left] - (1.0 - lam) * redundancy
        best = left[int(np.argmax(gains))]
        picked.append(best)
        left.remove(best)
    return [hits[i] for i in picked]
