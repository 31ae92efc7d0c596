"""Small frozen result objects returned by the repository."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["BulkResult", "CollectionInfo", "SearchResult"]

DocT = TypeVar("DocT")


@dataclass(frozen=True)
class CollectionInfo:
    """A collection as the repository sees it (a detached, immutable copy)."""

    id: int
    name: str
    embedding_model: str
    dimension: int


@dataclass(frozen=True)
class BulkResult:
    """What one ``bulk_add`` (or pipeline write) did.

    Attributes:
        inserted: new rows written.
        skipped: rows not written because their external id already existed
            (``on_conflict="skip"``) or their text was already stored (pipeline).
        updated: existing rows overwritten (``on_conflict="update"``).
        embedded: texts embedded by the repository's embedder during the call.
        elapsed_s: wall time of the call in seconds.
    """

    inserted: int = 0
    skipped: int = 0
    updated: int = 0
    embedded: int = 0
    elapsed_s: float = 0.0

    @property
    def rows(self) -> int:
        """Rows seen: inserted + skipped + updated."""
        return self.inserted + self.skipped + self.updated

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class SearchResult(Generic[DocT]):
    """One neighbour: the document, its distance to the query, and a similarity score.

    ``score`` is ``1 - distance`` for cosine, ``-distance`` for inner product
    (pgvector's ``<#>`` returns the negated product), and ``1 / (1 + distance)``
    for L2 and L1; higher is always more similar.
    """

    document: DocT
    distance: float
    score: float
    extra: Any = None
