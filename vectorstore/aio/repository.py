"""``AsyncDocumentRepository``: the sync repository, run through SQLAlchemy's greenlet bridge.

There is one implementation of the logic.  Every method awaits the matching
method of a :class:`~vectorstore.DocumentRepository` run by
``AsyncSession.run_sync`` (bound to the host's AsyncSession) or by
``greenlet_spawn`` (standalone: the same call ``run_sync`` makes, on the
AsyncEngine's sync facade).  The sync core runs on the event loop's thread,
in a greenlet; each driver call suspends it and the loop runs on.  So the
planning, the filter compiler, the batch validation, the COPY encoder, the
SAVEPOINT per write, the error translation and every row-naming message are
the sync ones, not a copy.

Why the bridge rather than a second, generated async copy of the code: the
measured cost of the bridge is a few microseconds per call (a greenlet switch
per driver round trip), against hundreds for the query itself; a generated
copy would double the code that has to stay right.  See ``docs/async.md``
for the figures.

What must not run on the loop, does not: embedding goes to a worker thread
(:mod:`vectorstore.aio.embedding`), COPY chunks are produced in one
(:mod:`vectorstore.write.copy_async`).  The library never starts a thread
that runs an event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast

from sqlalchemy import URL, Select

from vectorstore._async import greenlet_spawn
from vectorstore.embedders import Embedder
from vectorstore.errors import ConfigurationError
from vectorstore.models import Document, DocumentMixin
from vectorstore.query import listing
from vectorstore.query.diagnostics import ExplainReport, RecallReport
from vectorstore.query.filters import FilterLike
from vectorstore.query.options import Strategy
from vectorstore.repository import DocumentRepository, QueryInput
from vectorstore.results import BulkResult, CollectionInfo, IngestResult, Page, ResultSet
from vectorstore.schema.catalog import AnnIndex
from vectorstore.schema.indexes import IndexSpec
from vectorstore.write.batch import DEFAULT_CHUNK_ROWS
from vectorstore.write.load import ConflictPolicy, check_policy
from vectorstore.write.update import DEFAULT_BATCH_ROWS

from .embedding import off_loop
from .engine import make_async_engine, sqlalchemy_asyncio
from .writer import AsyncBufferedWriter

if TYPE_CHECKING:
    import numpy as np
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
    from typing_extensions import Unpack

    from vectorstore.query.options import NearestOptions, QueryShape

__all__ = ["AsyncDocumentRepository", "export_parquet_async", "ingest_async"]

DocT = TypeVar("DocT", bound=DocumentMixin)
T = TypeVar("T")
_DEFAULT_MODEL: Any = Document


class AsyncDocumentRepository(Generic[DocT]):
    """Documents of one collection, for asyncio code; the vocabulary of ``DocumentRepository``.

    Bound to the host app's ``AsyncSession`` it never commits it: each write
    runs in a SAVEPOINT, exactly as the sync repository does in a Session.
    :meth:`standalone` owns its connections and commits each call.

    Args:
        session: the host app's AsyncSession; the repository never commits it.
        collection: the collection's name.
        embedder: embeds texts without a vector, and text queries (in a
            worker thread, never on the event loop).
        model: the mapped document class (default :class:`~vectorstore.Document`).
        embedding_model: the model name to record without an embedder.
        create: create the collection if it does not exist (default).
        read_engine: optional AsyncEngine for reads (e.g. a streaming replica).
    """

    def __init__(
        self,
        session: AsyncSession | None,
        *,
        collection: str = "default",
        embedder: Embedder | None = None,
        model: type[DocT] = _DEFAULT_MODEL,
        embedding_model: str | None = None,
        create: bool = True,
        read_engine: AsyncEngine | None = None,
    ) -> None:
        self._session = session
        self.embedder = embedder
        self._options: dict[str, Any] = {
            "collection": collection, "model": model, "embedding_model": embedding_model,
            "create": create,
            "read_engine": read_engine.sync_engine if read_engine is not None else None,
        }  # fmt: skip
        self._sync: DocumentRepository[DocT] = DocumentRepository(
            session.sync_session if session is not None else None,
            embedder=off_loop(embedder),
            **self._options,
        )
        self._engine: AsyncEngine | None = None
        self._owned_engine = False

    @classmethod
    def standalone(
        cls, bind: str | URL | AsyncEngine | None = None, **kwargs: Any
    ) -> AsyncDocumentRepository[DocT]:
        """A repository that owns its connections and commits every call.

        Args:
            bind: an AsyncEngine, or a URL (``postgresql+asyncpg://`` or
                ``postgresql+psycopg://``; default: environment, then embedded).
            **kwargs: as for the constructor (collection, embedder, model, ...).
        """
        owned = not isinstance(bind, sqlalchemy_asyncio().AsyncEngine)
        engine = (
            make_async_engine(cast("str | URL | None", bind))
            if owned
            else cast("AsyncEngine", bind)
        )
        repo: AsyncDocumentRepository[DocT] = cls(None, **kwargs)
        sync_kwargs = dict(repo._options)
        repo._sync = DocumentRepository.standalone(
            engine.sync_engine, embedder=off_loop(repo.embedder), **sync_kwargs
        )
        repo._engine = engine
        repo._owned_engine = owned
        return repo

    async def close(self) -> None:
        """Dispose of the engine a standalone repository created from a URL (idempotent)."""
        if self._engine is not None and self._owned_engine:
            await self._engine.dispose()
            self._owned_engine = False

    async def __aenter__(self) -> AsyncDocumentRepository[DocT]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in the greenlet bridge: the host's session, or our engine."""
        session = self._session
        if session is not None:
            return await session.run_sync(lambda _sync_session: fn(*args, **kwargs))
        return await greenlet_spawn(fn, *args, **kwargs)

    # -- what needs no I/O -----------------------------------------------------------
    @property
    def collection_name(self) -> str:
        """The collection's name."""
        return self._sync.collection_name

    @property
    def model(self) -> type[DocT]:
        """The mapped document class."""
        return self._sync.model

    @property
    def dimension(self) -> int:
        """The dimension of the model's embedding column."""
        return self._sync.dimension

    @property
    def owns_transactions(self) -> bool:
        """True for a standalone repository (each call commits); False inside a host session."""
        return self._sync.owns_transactions

    @property
    def sync(self) -> DocumentRepository[DocT]:
        """The sync repository every call runs (usable only inside the greenlet bridge)."""
        return self._sync

    # -- collections -----------------------------------------------------------------
    async def collection(self) -> CollectionInfo:
        """The collection (created on first use unless ``create=False``); sync: a property."""
        return await self._run(lambda: self._sync.collection)

    # -- writes ----------------------------------------------------------------------
    async def add(
        self,
        text: str,
        *,
        embedding: Sequence[float] | np.ndarray[Any, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        external_id: str | None = None,
    ) -> DocT:
        """Write one document (see :meth:`DocumentRepository.add`)."""
        return await self._run(
            self._sync.add, text, embedding=embedding, metadata=metadata, external_id=external_id
        )

    async def bulk_add(self, data: Any, **options: Any) -> BulkResult:
        """Load many documents with binary COPY through the async driver, all or nothing.

        Arguments and errors as for :meth:`DocumentRepository.bulk_add`: the
        same validation, conflict policies and row-naming errors.  Texts
        without a vector are embedded and chunks encoded in worker threads.
        """
        return await self._run(self._sync.bulk_add, data, **options)

    def writer(
        self,
        *,
        max_rows: int = 1000,
        max_delay: float | None = 1.0,
        on_conflict: ConflictPolicy = "error",
    ) -> AsyncBufferedWriter:
        """An async buffered writer: ``async with repo.writer() as w: await w.add(...)``.

        It flushes through COPY when ``max_rows`` records are buffered, when the
        oldest has waited ``max_delay`` seconds (a timer on the loop), and on
        exit.  Each flush commits on its own connection, as the sync writer's.
        """
        policy = check_policy(on_conflict)
        engine = self._engine
        if engine is None:
            assert self._session is not None
            bind = self._session.bind
            if bind is None:
                raise ConfigurationError("writer() needs an AsyncSession bound to an engine")
            engine = cast(
                "AsyncEngine",
                bind if isinstance(bind, sqlalchemy_asyncio().AsyncEngine) else bind.engine,
            )
        clone: AsyncDocumentRepository[DocT] = type(self).standalone(
            engine, embedder=self.embedder, **self._options_async()
        )
        return AsyncBufferedWriter(
            clone, max_rows=max_rows, max_delay=max_delay, on_conflict=policy
        )

    async def ingest(
        self, source: Any, *, embedder: Embedder | None = None, **options: Any
    ) -> IngestResult:
        """Embed and store ``source``, all or nothing (see :func:`vectorstore.ingest`)."""
        if embedder is not None and self.embedder is None:
            self.embedder = embedder
        return await self._run(self._sync.ingest, source, embedder=off_loop(embedder), **options)

    async def export_parquet(
        self, path: str | Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
    ) -> int:
        """Write the collection to a parquet file (see :func:`vectorstore.export_parquet`)."""
        return await self._run(self._sync.export_parquet, path, chunk_rows=chunk_rows)

    async def delete(
        self, ids: Sequence[int] | None = None, *, external_ids: Sequence[str] | None = None
    ) -> int:
        """Delete documents by id and/or external id; returns how many were deleted."""
        return await self._run(self._sync.delete, ids, external_ids=external_ids)

    # -- reads -----------------------------------------------------------------------
    async def get(self, id: int) -> DocT:
        """The document with primary key ``id``. Raises DocumentNotFoundError."""
        return await self._run(self._sync.get, id)

    async def get_many(
        self, ids: Sequence[int] | None = None, *, external_ids: Sequence[str] | None = None
    ) -> list[DocT]:
        """Documents by ids and/or external ids (missing ones left out), in the order asked."""
        return await self._run(self._sync.get_many, ids, external_ids=external_ids)

    async def get_by_external_id(self, external_id: str) -> DocT:
        """The document with this external id. Raises DocumentNotFoundError."""
        return await self._run(self._sync.get_by_external_id, external_id)

    async def count(self, filter: FilterLike = None) -> int:
        """Number of documents in the collection, or of those ``filter`` matches."""
        return await self._run(self._sync.count, filter)

    async def exists(self, filter: FilterLike = None) -> bool:
        """True when some document matches ``filter`` (any document without one)."""
        return await self._run(self._sync.exists, filter)

    async def iterate(
        self,
        filter: FilterLike = None,
        *,
        chunk: int = listing.DEFAULT_CHUNK,
        with_embedding: bool = True,
    ) -> AsyncIterator[DocT]:
        """Every document ``filter`` matches, in id order, ``chunk`` rows per round trip."""
        listing.check_positive(chunk, "chunk")
        after: str | None = None
        while True:
            page = await self.list(
                filter, order_by="id", limit=chunk, after=after, with_embedding=with_embedding
            )
            for doc in page.items:
                yield doc
            if page.next_after is None:
                return
            after = page.next_after

    # -- changes ---------------------------------------------------------------------
    async def update(
        self,
        id_or_external_id: int | str,
        *,
        text: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        merge: bool = False,
        embedding: Sequence[float] | np.ndarray[Any, Any] | None = None,
    ) -> DocT:
        """Change one document in place (see :meth:`DocumentRepository.update`)."""
        return await self._run(
            self._sync.update, id_or_external_id, text=text, metadata=metadata, merge=merge,
            embedding=embedding,
        )  # fmt: skip

    async def update_where(
        self,
        filter: FilterLike,
        *,
        set_metadata: Mapping[str, Any] | None = None,
        merge_metadata: Mapping[str, Any] | None = None,
        batch_size: int = DEFAULT_BATCH_ROWS,
    ) -> int:
        """Replace or merge every match's metadata (see :meth:`DocumentRepository.update_where`)."""
        return await self._run(
            self._sync.update_where, filter, set_metadata=set_metadata,
            merge_metadata=merge_metadata, batch_size=batch_size,
        )  # fmt: skip

    async def delete_where(
        self, filter: FilterLike, *, batch_size: int = DEFAULT_BATCH_ROWS
    ) -> int:
        """Delete every document ``filter`` matches, in batches; returns the count."""
        return await self._run(self._sync.delete_where, filter, batch_size=batch_size)

    # -- search ----------------------------------------------------------------------
    async def nearest(self, query: QueryInput, k: int = 10, **options: Any) -> ResultSet[DocT]:
        """The ``k`` nearest documents (see :meth:`DocumentRepository.nearest` for the options).

        A text query is embedded in a worker thread, never on the loop.
        """
        return await self._run(self._sync.nearest, query, k, **options)

    async def nearest_query(
        self,
        query: QueryInput,
        k: int = 10,
        *,
        metric: str = "cosine",
        filter: FilterLike = None,
        offset: int = 0,
        with_embedding: bool = False,
        strategy: Literal["index", "exact"] = "index",
    ) -> Select[Any]:
        """The SELECT behind nearest, for the caller to extend and run on its AsyncSession."""
        return await self._run(
            self._sync.nearest_query, query, k, metric=metric, filter=filter, offset=offset,
            with_embedding=with_embedding, strategy=strategy,
        )  # fmt: skip

    @asynccontextmanager
    async def search_settings(
        self,
        *,
        ef_search: int | None = None,
        probes: int | None = None,
        iterative: bool = False,
        max_scan_tuples: int | None = None,
    ) -> AsyncIterator[AsyncSession]:
        """An AsyncSession whose pgvector settings hold for this block only (SET LOCAL).

        Bound, it is the host's session (the settings are undone at the end of
        the block); standalone, a session of our own, committed at the end.
        """
        session = self._session
        if session is None:
            assert self._engine is not None
            session_type = sqlalchemy_asyncio().AsyncSession
            async with session_type(self._engine, expire_on_commit=False) as own:
                options = self._options_async()
                bound = AsyncDocumentRepository(own, embedder=self.embedder, **options)
                async with bound.search_settings(
                    ef_search=ef_search, probes=probes, iterative=iterative,
                    max_scan_tuples=max_scan_tuples,
                ) as scoped:  # fmt: skip
                    yield scoped
                await own.commit()
            return
        scope = self._sync.search_settings(
            ef_search=ef_search, probes=probes, iterative=iterative,
            max_scan_tuples=max_scan_tuples,
        )  # fmt: skip
        await session.run_sync(lambda _s: scope.__enter__())
        try:
            yield session
        except BaseException as exc:
            error = exc
            await session.run_sync(
                lambda _s: scope.__exit__(type(error), error, error.__traceback__)
            )
            raise
        await session.run_sync(lambda _s: scope.__exit__(None, None, None))

    def _options_async(self) -> dict[str, Any]:
        """The constructor options, less the read engine (kept in its sync form)."""
        return {k: v for k, v in self._options.items() if k != "read_engine"}

    async def hybrid(self, text: str, k: int = 10, **options: Any) -> ResultSet[DocT]:
        """Full-text and vector search fused by RRF (see :meth:`DocumentRepository.hybrid`)."""
        return await self._run(self._sync.hybrid, text, k, **options)

    async def explain(self, query: QueryInput, **options: Unpack[NearestOptions]) -> ExplainReport:
        """EXPLAIN ANALYZE what ``nearest(query, **options)`` runs."""
        return await self._run(self._sync.explain, query, **options)

    async def measure_recall(
        self,
        queries: Sequence[QueryInput],
        *,
        k: int = 10,
        ef_search: Sequence[int] = (40, 100, 200),
        probes: Sequence[int] = (),
        strategy: Strategy = "index",
        **options: Unpack[QueryShape],
    ) -> RecallReport:
        """Recall@k and latency of the index at each ``ef_search`` / ``probes`` value."""
        return await self._run(
            self._sync.measure_recall, queries, k=k, ef_search=ef_search, probes=probes,
            strategy=strategy, **options,
        )  # fmt: skip

    # -- indexes ---------------------------------------------------------------------
    async def create_index(
        self,
        spec: IndexSpec | None = None,
        *,
        concurrently: bool | None = None,
        maintenance_work_mem: str | None = None,
    ) -> str:
        """Build an ANN index (see :meth:`DocumentRepository.create_index`); returns its name."""
        return await self._run(
            self._sync.create_index, spec, concurrently=concurrently,
            maintenance_work_mem=maintenance_work_mem,
        )  # fmt: skip

    async def drop_index(self, name: str, *, concurrently: bool | None = None) -> bool:
        """Drop an ANN index by name; False when it did not exist."""
        return await self._run(self._sync.drop_index, name, concurrently=concurrently)

    async def list_indexes(self) -> list[AnnIndex]:
        """The HNSW/IVFFlat indexes on the document table."""
        return await self._run(self._sync.list_indexes)

    # Last in the class: below it, ``list`` in an annotation would name this method.
    async def list(
        self,
        filter: FilterLike = None,
        *,
        order_by: str = "id",
        limit: int = listing.DEFAULT_PAGE_SIZE,
        after: str | None = None,
        with_embedding: bool = False,
    ) -> Page[DocT]:
        """One keyset page (see :meth:`DocumentRepository.list`)."""
        return await self._run(
            self._sync.list, filter, order_by=order_by, limit=limit, after=after,
            with_embedding=with_embedding,
        )  # fmt: skip


async def ingest_async(
    source: Any,
    embedder: Embedder | None = None,
    *,
    repository: AsyncDocumentRepository[Any],
    **options: Any,
) -> IngestResult:
    """The async form of :func:`vectorstore.ingest` (same arguments)."""
    return await repository.ingest(source, embedder=embedder, **options)


async def export_parquet_async(
    repository: AsyncDocumentRepository[Any],
    path: str | Path,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> int:
    """The async form of :func:`vectorstore.export_parquet`."""
    return await repository.export_parquet(path, chunk_rows=chunk_rows)
