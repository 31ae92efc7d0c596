"""Small frozen result objects returned by the repository."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar, overload

from vectorstore.embedding.provenance import Provenance

__all__ = [
    "AliasInfo",
    "BulkResult",
    "CollectionInfo",
    "CollectionSummary",
    "IngestResult",
    "MergeResult",
    "Page",
    "ResultSet",
    "SearchResult",
]

DocT = TypeVar("DocT")


@dataclass(frozen=True)
class CollectionInfo:
    """A collection as the repository sees it (a detached, immutable copy).

    ``embedding_backend``: the backend and precision that produced its
    vectors, None when not recorded.
    """

    id: int
    name: str
    embedding_model: str
    dimension: int
    #: The alias the collection was reached through (None: by its own name).
    alias: str | None = None
    embedding_backend: Provenance | None = None


@dataclass(frozen=True)
class CollectionSummary:
    """A collection with its size, as :func:`vectorstore.list_collections` reports it.

    Attributes:
        id, name, embedding_model, dimension: as recorded in ``vectorstore_collections``.
        rows: its documents in ``table``.
        table: the (schema-qualified) document table that was counted.
        indexes: the names of the collection's own (per-collection, partial)
            ANN indexes on that table; indexes over the whole table are not listed.
        aliases: the aliases that point to it.
        size_bytes: its size on disk, estimated: its share (by rows) of the
            table with its TOAST data and table-wide indexes, plus its own indexes.
    """

    id: int
    name: str
    embedding_model: str
    dimension: int
    rows: int
    table: str
    indexes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    size_bytes: int = 0


@dataclass(frozen=True)
class AliasInfo:
    """A collection alias, as :func:`vectorstore.list_aliases` reports it.

    Attributes:
        name: the alias.
        collection: the name of the collection it points to.
        collection_id: that collection's id.
        previous: the collection it pointed to before its last switch (what
            :func:`vectorstore.rollback_alias` switches back to), if any.
        table: the document table holding the target's rows, when recorded.
        switched_at: when it was created or last switched.
    """

    name: str
    collection: str
    collection_id: int
    previous: str | None
    table: str | None
    switched_at: datetime | None = None


@dataclass(frozen=True)
class MergeResult:
    """What merging one stage of staged rows did (``DocumentRepository.merge_staged``).

    Attributes:
        inserted, updated, skipped: rows new, overwritten, and left alone
            (their external id existed under ``on_conflict="skip"``, or the
            same id was staged twice: the last staged wins).
        parts: the parts the stage held.
        replayed: the ledger already held this (stream, batch): nothing was
            written, and the counts are those recorded by the first merge.
        stream, batch: the ledger entry, when the merge had one.
        elapsed_s: wall time of the merge in seconds.
    """

    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    parts: int = 0
    replayed: bool = False
    stream: str | None = None
    batch: int | None = None
    elapsed_s: float = 0.0

    @property
    def rows(self) -> int:
        """Rows the merge handled (inserted + updated + skipped)."""
        return self.inserted + self.updated + self.skipped


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
        write_s: seconds spent encoding and sending the COPY (and merging).
        index_s: seconds spent rebuilding indexes after a big load (and ANALYZE).
        big_load: the load ran in big-load mode: secondary indexes (and the
            foreign key) dropped for the COPY and rebuilt after it.
        rebuilt: the indexes and foreign keys dropped and rebuilt, by name.
        big_load_reason: why big-load mode was or was not chosen.
    """

    inserted: int = 0
    skipped: int = 0
    updated: int = 0
    embedded: int = 0
    elapsed_s: float = 0.0
    write_s: float = 0.0
    index_s: float = 0.0
    big_load: bool = False
    rebuilt: tuple[str, ...] = ()
    big_load_reason: str = ""

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


@dataclass(frozen=True)
class ResultSet(Sequence[SearchResult[DocT]]):
    """The hits of one nearest/hybrid call, best first, and how they were found.

    Behaves as a read-only sequence of :class:`SearchResult`.

    Attributes:
        results: the hits, sorted by distance (hybrid: by fused score).
        k: how many were requested.
        strategy: what ran: ``"index"`` (ANN index scan), ``"iterative"`` (ANN
            iterative index scan), ``"exact"`` (exact ranking of the filtered
            rows) or ``"hybrid"``.
        metric: the distance metric.
        settings: the settings applied with SET LOCAL for the query.
        fallback_from: the strategy that returned fewer than k rows and was
            replaced by an exact ranking, if that happened.
        reason: why the strategy was chosen.
        estimated_rows: the planner's estimate of the rows the filter keeps.
        counted_rows: a bounded count of them (capped), when one was taken.
        estimates: what the cost model estimated for the choice, when it ran:
            ``local_share`` (matching share near the query), ``iterative_tuples``,
            ``iterative_ms`` and ``exact_ms`` (``-1`` for unbounded).
        threshold_bounded: a distance threshold cut the result: the rows are
            those of the k nearest that meet it (the scan is bounded by k).
        elapsed_s: wall time of the call.
    """

    results: tuple[SearchResult[DocT], ...] = ()
    k: int = 0
    strategy: str = ""
    metric: str = "cosine"
    settings: dict[str, str] = field(default_factory=dict)
    fallback_from: str | None = None
    reason: str = ""
    estimated_rows: int | None = None
    counted_rows: int | None = None
    estimates: dict[str, float] = field(default_factory=dict)
    threshold_bounded: bool = False
    elapsed_s: float = 0.0

    @property
    def returned(self) -> int:
        """Rows returned (at most ``k``)."""
        return len(self.results)

    @property
    def documents(self) -> list[DocT]:
        return [hit.document for hit in self.results]

    def __len__(self) -> int:
        return len(self.results)

    @overload
    def __getitem__(self, index: int) -> SearchResult[DocT]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[SearchResult[DocT]]: ...
    def __getitem__(self, index: int | slice) -> Any:
        return self.results[index]

    def __iter__(self) -> Iterator[SearchResult[DocT]]:
        return iter(self.results)

    def to_dataframe(self) -> Any:
        """The hits as a pandas DataFrame: one row per hit, best first.

        Columns: ``id``, ``external_id``, ``text``, ``metadata``, ``distance``,
        ``score``, ``rank``, and ``extra`` when a joined row or ranks are attached.
        """
        from ._optional import require

        pd = require("pandas", extra="io", feature="ResultSet.to_dataframe()")
        rows = []
        for rank, hit in enumerate(self.results, start=1):
            doc: Any = hit.document
            row = {
                "id": getattr(doc, "id", None),
                "external_id": getattr(doc, "external_id", None),
                "text": getattr(doc, "text", None),
                "metadata": getattr(doc, "metadata_", None),
                "distance": hit.distance,
                "score": hit.score,
                "rank": rank,
            }
            if hit.extra is not None:
                row["extra"] = hit.extra
            rows.append(row)
        columns = ["id", "external_id", "text", "metadata", "distance", "score", "rank"]
        if any(hit.extra is not None for hit in self.results):
            columns.append("extra")
        return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class IngestResult:
    """What one :func:`ingest` did.

    Attributes:
        rows: rows read from the source.
        known: rows skipped because their text was already stored in the collection.
        embedded: texts embedded by the embedder.
        inserted: rows written as new documents.
        skipped: rows not written because their external id existed (``"skip"``).
        updated: rows that overwrote a document with the same external id.
        embed_s: seconds spent in the embedder.
        write_s: seconds spent encoding and sending COPYs (and merging).
        elapsed_s: wall time of the whole call.
        lookup_s: seconds spent asking which texts the collection already stores.
        index_s, big_load, rebuilt, big_load_reason: as in :class:`BulkResult`.
        embedder: the embedder that embedded the texts, with its backend
            (e.g. ``SentenceTransformerEmbedder(model=..., backend='openvino/fp32',
            chosen by auto)``); empty without one.
    """

    rows: int
    known: int
    embedded: int
    inserted: int
    skipped: int
    updated: int
    embed_s: float
    write_s: float
    elapsed_s: float
    lookup_s: float = 0.0
    index_s: float = 0.0
    big_load: bool = False
    rebuilt: tuple[str, ...] = ()
    big_load_reason: str = ""
    embedder: str = ""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class Page(Generic[DocT]):
    """One keyset page of :meth:`~vectorstore.DocumentRepository.list`.

    Attributes:
        items: the documents, in the order asked.
        next_after: the cursor of the next page (pass it as ``after=``), or
            None when this page is the last.
    """

    items: list[DocT]
    next_after: str | None

    def __iter__(self) -> Iterator[DocT]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
