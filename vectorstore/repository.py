"""``DocumentRepository``: a thin orchestrator over the write and query paths.

The host app owns the transaction.  A repository bound to a Session works
inside it and never commits it: each write runs in a SAVEPOINT, so a failed
write leaves both the database and the caller's transaction as they were.  A
repository built with :meth:`DocumentRepository.standalone` owns its sessions
and commits each call on its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Generic, Literal, TypeVar

import numpy as np
from sqlalchemy import URL, Engine, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, sessionmaker

from ._batch import (
    DEFAULT_CHUNK_ROWS,
    Batch,
    Record,
    batches_from_arrays,
    batches_from_dataframe,
    batches_from_records,
    validate_vector,
)
from ._identifiers import check_collection_name, check_model_identifiers
from ._retry import retry_read
from ._single import insert_one
from .embedders import Embedder
from .errors import (
    CollectionNotFoundError,
    ConfigurationError,
    DimensionMismatchError,
    DocumentNotFoundError,
    EmbeddingModelMismatchError,
    ValidationError,
    db_errors,
)
from .models import Collection, Document, DocumentMixin
from .results import BulkResult, CollectionInfo, ResultSet
from .writer import BufferedWriter

__all__ = ["ConflictPolicy", "DocumentRepository"]

DocT = TypeVar("DocT", bound=DocumentMixin)
ConflictPolicy = Literal["error", "skip", "update"]
_POLICIES = ("error", "skip", "update")
_DEFAULT_MODEL: Any = Document


class DocumentRepository(Generic[DocT]):
    """Documents of one collection, stored in ``model``'s table.

    Args:
        session: the host app's Session; the repository never commits it.
        collection: the collection's name.
        embedder: computes embeddings for texts given without one, and for
            text queries.  Its model name and dimension must match the collection's.
        model: the mapped document class (default :class:`~vectorstore.Document`);
            any class using :class:`~vectorstore.DocumentMixin`.
        embedding_model: the model name to record when creating the collection
            without an embedder (vectors computed elsewhere).
        create: create the collection if it does not exist (default).  With
            False, a missing collection raises :class:`CollectionNotFoundError`.
        read_engine: optional engine for reads (e.g. a streaming replica).
    """

    def __init__(
        self,
        session: Session | None,
        *,
        collection: str = "default",
        embedder: Embedder | None = None,
        model: type[DocT] = _DEFAULT_MODEL,
        embedding_model: str | None = None,
        create: bool = True,
        read_engine: Engine | None = None,
    ) -> None:
        check_collection_name(collection)
        check_model_identifiers(model)
        self._session = session
        self._factory: sessionmaker[Session] | None = None
        self._owned_engine: Engine | None = None
        self._read_factory: sessionmaker[Session] | None = (
            sessionmaker(read_engine, expire_on_commit=False) if read_engine is not None else None
        )
        self.collection_name = collection
        self.embedder = embedder
        self.model = model
        self._embedding_model = embedding_model
        self._create = create
        self._collection: CollectionInfo | None = None
        self._resolved_in: Any = None

    @classmethod
    def standalone(
        cls,
        bind: str | URL | Engine | None = None,
        **kwargs: Any,
    ) -> DocumentRepository[DocT]:
        """A repository that owns its sessions and commits every call.

        Args:
            bind: an Engine, or a URL (default: environment, then embedded).
            **kwargs: as for the constructor (collection, embedder, model, ...).
        """
        from .config import make_engine

        engine = bind if isinstance(bind, Engine) else make_engine(bind)
        repo: DocumentRepository[DocT] = cls(None, **kwargs)
        repo._factory = sessionmaker(engine, expire_on_commit=False)
        if not isinstance(bind, Engine):
            repo._owned_engine = engine
        return repo

    def close(self) -> None:
        """Dispose of the engine a standalone repository created from a URL.

        An engine or Session handed in by the caller is left alone.  Also used
        by ``with DocumentRepository.standalone(url) as repo: ...``.
        """
        engine = self._owned_engine
        if engine is not None:
            engine.dispose()
            self._owned_engine = None

    def __enter__(self) -> DocumentRepository[DocT]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sessions ----------------------------------------------------------------
    @property
    def dimension(self) -> int:
        """The dimension of the model's embedding column."""
        return int(self.model.__table__.c.embedding.type.dim)  # type: ignore[attr-defined]

    @contextmanager
    def _write(self, action: str) -> Iterator[Session]:
        with db_errors(f"{action} in collection {self.collection_name!r}"):
            if self._factory is not None:
                with self._factory.begin() as session:
                    yield session
            else:
                assert self._session is not None
                with self._session.begin_nested():
                    yield self._session

    @contextmanager
    def _read(self, action: str) -> Iterator[Session]:
        with db_errors(f"{action} in collection {self.collection_name!r}"):
            factory = self._read_factory or self._factory
            if factory is not None:
                with factory.begin() as session:
                    yield session
            else:
                assert self._session is not None
                yield self._session

    # -- collections ---------------------------------------------------------------
    @property
    def collection(self) -> CollectionInfo:
        """The collection (created on first use unless ``create=False``).

        With a host session the lookup is cached per transaction: a collection
        created in a transaction the host later rolls back is looked up again.
        """
        transaction = self._session.get_transaction() if self._session is not None else None
        if self._collection is None or (
            self._session is not None and transaction is not self._resolved_in
        ):
            with self._write("resolve the collection") as session:
                self._collection = self._resolve_collection(session)
            self._resolved_in = self._session.get_transaction() if self._session else None
        return self._collection

    def _resolve_collection(self, session: Session) -> CollectionInfo:
        row = session.execute(
            select(Collection).where(Collection.name == self.collection_name)
        ).scalar_one_or_none()
        if row is None:
            if not self._create:
                raise CollectionNotFoundError(f"no collection named {self.collection_name!r}")
            model_name = (
                self.embedder.model_name if self.embedder is not None else self._embedding_model
            ) or "unspecified"
            session.execute(
                pg_insert(Collection)
                .values(
                    name=self.collection_name,
                    embedding_model=model_name,
                    dimension=self.dimension,
                )
                .on_conflict_do_nothing(index_elements=["name"])
            )
            row = session.execute(
                select(Collection).where(Collection.name == self.collection_name)
            ).scalar_one()
        info = CollectionInfo(row.id, row.name, row.embedding_model, row.dimension)
        self._check_compatible(info)
        return info

    def _check_compatible(self, info: CollectionInfo) -> None:
        if info.dimension != self.dimension:
            raise DimensionMismatchError(
                f"collection {info.name!r} holds {info.dimension}-d vectors but "
                f"{self.model.__name__}.embedding is {self.dimension}-d"
            )
        if self.embedder is not None:
            if self.embedder.dimension != info.dimension:
                raise DimensionMismatchError(
                    f"embedder {self.embedder.model_name!r} makes {self.embedder.dimension}-d "
                    f"vectors; collection {info.name!r} holds {info.dimension}-d vectors"
                )
            if self.embedder.model_name != info.embedding_model:
                raise EmbeddingModelMismatchError(
                    f"collection {info.name!r} was embedded with {info.embedding_model!r}; "
                    f"refusing to mix in vectors from {self.embedder.model_name!r}"
                )

    # -- embedding -----------------------------------------------------------------
    def _require_embedder(self, why: str) -> Embedder:
        if self.embedder is None:
            raise ConfigurationError(
                f"{why}, but this repository has no embedder; pass embedder=... or give vectors"
            )
        return self.embedder

    def _fill_embeddings(self, batch: Batch) -> int:
        if not batch.needs_embedding:
            return 0
        embedder = self._require_embedder(f"row {batch.start_row}: no embedding given")
        rows = np.flatnonzero(batch.missing)
        vectors = embedder.embed([batch.texts[i] for i in rows.tolist()])
        batch.set_embeddings(rows, vectors)
        return len(rows)

    def embed_query(self, query: str) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Embed one query text with the repository's embedder."""
        if not isinstance(query, str) or not query.strip():
            raise ValidationError("a text query must be a non-empty string")
        vectors = self._require_embedder("a text query needs embedding").embed([query])
        matrix: np.ndarray[Any, np.dtype[np.float32]] = validate_vector(vectors[0], self.dimension)
        return np.asarray(matrix[0], dtype=np.float32)

    # -- single-row writes ---------------------------------------------------------
    def add(
        self,
        text: str,
        *,
        embedding: Sequence[float] | np.ndarray[Any, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        external_id: str | None = None,
    ) -> DocT:
        """Write one document; embed ``text`` with the embedder when no embedding is given.

        Returns:
            The stored row, with its ``id`` and ``created_at``.

        Raises:
            ValidationError: bad text, metadata, embedding or external id.
            ConflictError: ``external_id`` already exists in the collection.
        """
        batch = next(
            batches_from_records(
                [Record(text, metadata, external_id, embedding)], self.dimension, chunk_rows=1
            )
        )
        info = self.collection
        self._fill_embeddings(batch)
        if self._factory is not None:
            # Standalone: one INSERT on a pooled connection, no Session (see _single).
            with db_errors(f"add in collection {self.collection_name!r}"):
                doc: DocT = insert_one(self._factory.kw["bind"], self.model, batch, info.id)
            return doc
        values = self._row_values(batch, 0, info.id)
        with self._write("add") as session:
            doc = session.scalars(insert(self.model).returning(self.model), [values]).one()
        return doc

    @staticmethod
    def _row_values(batch: Batch, i: int, collection_id: int) -> dict[str, Any]:
        return {
            "collection_id": collection_id,
            "external_id": batch.external_ids[i],
            "text": batch.texts[i],
            "content_hash": batch.hashes[i],
            "metadata_": batch.metadata[i],
            "embedding": batch.embeddings[i],
        }

    # -- bulk writes ---------------------------------------------------------------
    def _batches(self, data: Any, chunk_rows: int, **options: Any) -> Iterator[Batch]:
        dim = self.dimension
        embeddings = options.pop("embeddings", None)
        texts = options.pop("texts", None)
        metadata = options.pop("metadata", None)
        external_ids = options.pop("external_ids", None)
        if hasattr(data, "iloc") and hasattr(data, "columns"):
            return batches_from_dataframe(
                data, dim, embeddings=embeddings, chunk_rows=chunk_rows, **options
            )
        if isinstance(data, np.ndarray):
            if texts is None:
                raise ValidationError("an embedding array needs texts=[...] beside it")
            return batches_from_arrays(
                texts, data, dim, metadata=metadata, external_ids=external_ids,
                chunk_rows=chunk_rows,
            )  # fmt: skip
        if embeddings is not None or metadata is not None or external_ids is not None:
            if not isinstance(data, Sequence) or isinstance(data, str):
                raise ValidationError("parallel arrays need a sequence of texts")
            return batches_from_arrays(
                data, embeddings, dim, metadata=metadata, external_ids=external_ids,
                chunk_rows=chunk_rows,
            )  # fmt: skip
        if isinstance(data, (str, bytes)):
            raise ValidationError("bulk_add takes many records; use add() for one text")
        return batches_from_records(data, dim, chunk_rows=chunk_rows)

    def bulk_add(
        self,
        data: Any,
        *,
        embeddings: Any = None,
        texts: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        external_ids: Sequence[str | None] | None = None,
        on_conflict: ConflictPolicy = "error",
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        rebuild_index: bool = False,
        index_options: Mapping[str, Any] | None = None,
        **columns: Any,
    ) -> BulkResult:
        """Load many documents with binary ``COPY ... FROM STDIN``, all or nothing.

        ``data`` is a pandas DataFrame, an iterable of records (str, mapping with
        ``text``/``metadata``/``external_id``/``embedding``, or
        :class:`~vectorstore.Record`; generators are streamed in chunks), a
        sequence of texts with parallel ``embeddings``/``metadata``/``external_ids``,
        or a 2-D embedding array with ``texts=``.  DataFrame column names are set
        with ``text_column``, ``embedding_column``, ``metadata_column``,
        ``id_column`` and ``metadata_columns``.

        Args:
            on_conflict: what to do with an external id that already exists:
                ``"error"`` (raise, write nothing), ``"skip"`` or ``"update"``.
            chunk_rows: rows encoded and sent per chunk (memory stays flat).
            rebuild_index: the fast path for big loads: drop the collection
                table's ANN indexes, load, rebuild them with build settings,
                then ANALYZE (see :mod:`vectorstore.maintenance`).  The table is
                locked for the whole call.  If the rebuild fails, the rows stay
                loaded and :class:`~vectorstore.IndexBuildError` says how to
                rebuild with one call.
            index_options: ``maintenance_work_mem``, ``parallel_workers`` and
                ``progress`` for the rebuild.

        Raises:
            ValidationError: a bad row (the message names it); nothing written.
            ConflictError: a duplicate external id with ``on_conflict="error"``.
            IndexBuildError: ``rebuild_index`` was set and the rebuild failed.
        """
        if on_conflict not in _POLICIES:
            raise ValidationError(f"on_conflict must be one of {_POLICIES}, got {on_conflict!r}")
        if chunk_rows <= 0:
            raise ValidationError(f"chunk_rows must be positive, got {chunk_rows}")
        allowed = {"text_column", "embedding_column", "metadata_column", "id_column",
                   "metadata_columns"}  # fmt: skip
        unknown = set(columns) - allowed
        if unknown:
            raise TypeError(f"bulk_add() got unexpected keyword arguments {sorted(unknown)}")
        batches = self._batches(
            data, chunk_rows, embeddings=embeddings, texts=texts, metadata=metadata,
            external_ids=external_ids, **columns,
        )  # fmt: skip
        from ._bulk import run_bulk_add

        result: BulkResult = run_bulk_add(
            self, batches, on_conflict,
            rebuild_index=rebuild_index, index_options=dict(index_options or {}),
        )  # fmt: skip
        return result

    def writer(
        self,
        *,
        max_rows: int = 1000,
        max_delay: float | None = 1.0,
        on_conflict: ConflictPolicy = "error",
    ) -> BufferedWriter:
        """A thread-safe buffered writer for event streams (see :mod:`vectorstore.writer`).

        It flushes through binary COPY when ``max_rows`` records are buffered,
        when the oldest has waited ``max_delay`` seconds, and on exit.  Each flush
        commits on its own connection (not in this repository's Session).
        """
        return BufferedWriter(self, max_rows=max_rows, max_delay=max_delay, on_conflict=on_conflict)

    # -- reads ---------------------------------------------------------------------
    def get(self, id: int) -> DocT:
        """The document with primary key ``id`` in this collection.

        Raises:
            DocumentNotFoundError: no such document in this collection.
        """
        found = self.get_many([id])
        if not found:
            raise DocumentNotFoundError(
                f"no document with id {id!r} in collection {self.collection_name!r}"
            )
        return found[0]

    def get_many(self, ids: Sequence[int]) -> list[DocT]:
        """Documents with these ids (missing ones are left out), in the order asked."""
        wanted = [self._check_id(i) for i in ids]
        if not wanted:
            return []
        info = self.collection

        def read() -> Sequence[DocT]:
            with self._read("get") as session:
                return session.scalars(
                    select(self.model).where(
                        self.model.collection_id == info.id, self.model.id.in_(wanted)
                    )
                ).all()

        rows = retry_read(self, read)
        by_id = {row.id: row for row in rows}
        return [by_id[i] for i in wanted if i in by_id]

    def get_by_external_id(self, external_id: str) -> DocT:
        """The document with this external id. Raises DocumentNotFoundError."""
        info = self.collection

        def read() -> DocT | None:
            with self._read("get") as session:
                return session.scalars(
                    select(self.model).where(
                        self.model.collection_id == info.id,
                        self.model.external_id == str(external_id),
                    )
                ).one_or_none()

        row = retry_read(self, read)
        if row is None:
            raise DocumentNotFoundError(
                f"no document with external_id {external_id!r} in {self.collection_name!r}"
            )
        return row

    @staticmethod
    def _check_id(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValidationError(f"document ids are integers, got {type(value).__name__}")
        return int(value)

    def delete(
        self, ids: Sequence[int] | None = None, *, external_ids: Sequence[str] | None = None
    ) -> int:
        """Delete documents by id and/or external id; returns how many were deleted."""
        if ids is None and external_ids is None:
            raise ValidationError("delete() needs ids or external_ids")
        wanted = [self._check_id(i) for i in ids or ()]
        keys = [str(e) for e in external_ids or ()]
        if not wanted and not keys:
            return 0
        info = self.collection
        conditions = []
        if wanted:
            conditions.append(self.model.id.in_(wanted))
        if keys:
            conditions.append(self.model.external_id.in_(keys))
        from sqlalchemy import or_

        with self._write("delete") as session:
            result = session.execute(
                delete(self.model).where(self.model.collection_id == info.id, or_(*conditions)),
                execution_options={"synchronize_session": False},
            )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def count(self) -> int:
        """Number of documents in the collection."""
        info = self.collection

        def read() -> int:
            with self._read("count") as session:
                return int(
                    session.execute(
                        select(func.count())
                        .select_from(self.model)
                        .where(self.model.collection_id == info.id)
                    ).scalar_one()
                )

        return retry_read(self, read)

    # -- search --------------------------------------------------------------------
    def nearest(
        self,
        query: str | Sequence[float] | np.ndarray[Any, Any],
        k: int = 10,
        *,
        metric: str = "cosine",
        filter: Any = None,
        max_distance: float | None = None,
        min_score: float | None = None,
        offset: int = 0,
        with_embedding: bool = False,
        exact: bool = False,
        strategy: str = "auto",
        ef_search: int | None = None,
        probes: int | None = None,
        join: Any = None,
        join_on: Any = None,
        hybrid: bool | str = False,
        mmr: float | None = None,
        **tuning: Any,
    ) -> ResultSet[DocT]:
        """The ``k`` documents nearest to ``query`` (a vector, or a text to embed).

        The strategy (ANN index, iterative index scan, or exact ranking of the
        filtered rows) is chosen per query; see :mod:`vectorstore.search`.  If at
        least ``k`` documents match the filter, ``k`` come back.

        Args:
            query: a vector (sequence or numpy array) or a text for the embedder.
            k: how many neighbours.
            metric: ``"cosine"`` (default), ``"l2"``, ``"inner_product"`` or ``"l1"``.
            filter: a dictionary filter (see :mod:`vectorstore.filters`), a
                SQLAlchemy boolean expression on any mapped column (of the
                document model or of ``join``), or a list of them.
            max_distance: drop hits farther than this (applied to the k nearest).
            min_score: drop hits scoring below this (same).
            offset: skip this many hits first (paging).
            with_embedding: load the embedding column (deferred otherwise).
            exact: rank exactly, bypassing ANN indexes (ground truth).
            strategy: ``"auto"``, ``"index"``, ``"iterative"`` or ``"exact"``.
            ef_search: HNSW ``hnsw.ef_search`` for this query (default 200; 400 for an
                iterative scan under a filter, see ``DEFAULT_FILTERED_EF_SEARCH``).
            probes: IVFFlat ``ivfflat.probes`` for this query (default 10).
            join: a mapped class to join and return alongside (``hit.extra``).
            join_on: the join condition, e.g. ``Product.asin ==
                Document.metadata_["asin"].astext``.
            hybrid: True (use the query text) or a text: fuse full-text and
                vector rankings by RRF (see :meth:`hybrid`).
            mmr: re-rank for diversity by maximal marginal relevance with this
                lambda (1 = pure relevance); ``fetch_k=`` sets the candidates.
            **tuning: ``max_scan_tuples``, ``exact_threshold``, ``precision``
                (``"halfvec"``/``"binary"`` to use a quantized index),
                ``rerank``, ``fetch_k``.

        Returns:
            A :class:`~vectorstore.ResultSet`: hits sorted by distance, with
            ``k``, ``returned``, ``strategy`` and ``to_dataframe()``.

        Raises:
            ValidationError: bad k, metric, vector (dimension, NaN), threshold.
            FilterError: a malformed filter.
        """
        from . import search

        allowed = {"max_scan_tuples", "exact_threshold", "precision", "rerank", "fetch_k"}
        unknown = set(tuning) - allowed
        if unknown:
            raise TypeError(f"nearest() got unexpected keyword arguments {sorted(unknown)}")
        opts = search.make_options(
            k, metric=metric, filter=filter, max_distance=max_distance, min_score=min_score,
            offset=offset, with_embedding=with_embedding, strategy=strategy, exact=exact,
            ef_search=ef_search, probes=probes, join=join, join_on=join_on, mmr=mmr, **tuning,
        )  # fmt: skip
        if hybrid:
            from .hybrid import hybrid_search

            text_query = hybrid if isinstance(hybrid, str) else query
            if not isinstance(text_query, str):
                raise ValidationError("hybrid=True needs a text query; pass hybrid='words'")
            return retry_read(self, lambda: hybrid_search(
                self, text_query, vector=None if isinstance(query, str) else query, opts=opts
            ))  # fmt: skip
        # A read: run once more if its pooled connection proved dead (see _retry).
        return retry_read(self, lambda: search.run(self, query, opts))

    def nearest_query(
        self,
        query: str | Sequence[float] | np.ndarray[Any, Any],
        k: int = 10,
        *,
        metric: str = "cosine",
        filter: Any = None,
        offset: int = 0,
        with_embedding: bool = False,
        exact: bool = False,
    ) -> Any:
        """The SELECT behind nearest, for the caller to ``.join()``/``.where()`` and run.

        It selects ``(document, distance)`` ordered by distance ascending (the
        ANN index order; ``exact=True`` orders by ``distance + 0`` so no ANN index
        is used), limited to ``k`` after ``offset``.  Run it inside
        :meth:`search_settings` to give it ``ef_search`` or iterative scans.
        """
        from . import search

        opts = search.make_options(k, metric=metric, filter=filter, offset=offset,
                                   with_embedding=with_embedding)  # fmt: skip
        vector = search.query_vector(self, query)
        stmt = search.build_statement(self, vector, opts, "exact" if exact else "index")
        return stmt.limit(k).offset(offset) if offset else stmt

    @contextmanager
    def search_settings(
        self,
        *,
        ef_search: int | None = None,
        probes: int | None = None,
        iterative: bool = False,
        max_scan_tuples: int | None = None,
    ) -> Iterator[Session]:
        """A session whose pgvector settings hold for this block only (SET LOCAL).

        Example::

            with repo.search_settings(ef_search=200, iterative=True) as session:
                rows = session.execute(repo.nearest_query(q).join(Product, ...)).all()
        """
        from . import search

        settings = search.explicit_settings(ef_search, probes, iterative, max_scan_tuples)
        with (
            self._read("search") as session,
            search.settings_scope(session, settings, owned=search.owns_sessions(self)),
        ):
            yield session

    def hybrid(
        self,
        text: str,
        k: int = 10,
        *,
        vector: Sequence[float] | np.ndarray[Any, Any] | None = None,
        filter: Any = None,
        metric: str = "cosine",
        offset: int = 0,
        rrf_k: int = 60,
        candidates: int | None = None,
        vector_weight: float = 1.0,
        text_weight: float = 1.0,
        ef_search: int | None = None,
    ) -> ResultSet[DocT]:
        """Full-text and vector search fused by reciprocal rank fusion, one SQL statement.

        See :func:`vectorstore.hybrid.hybrid_search`; ``score`` is the RRF score.
        """
        from . import search
        from .hybrid import hybrid_search

        opts = search.make_options(k, metric=metric, filter=filter, offset=offset,
                                   ef_search=ef_search)  # fmt: skip
        return retry_read(self, lambda: hybrid_search(
            self, text, vector=vector, opts=opts, rrf_k=rrf_k, candidates=candidates,
            vector_weight=vector_weight, text_weight=text_weight,
        ))  # fmt: skip

    def explain(self, query: str | Sequence[float] | np.ndarray[Any, Any], **options: Any) -> Any:
        """EXPLAIN ANALYZE what ``nearest(query, **options)`` runs: an ExplainReport."""
        from .diagnostics import explain

        return explain(self, query, **options)

    def measure_recall(self, queries: Sequence[Any], **options: Any) -> Any:
        """Recall@k and latency per ef_search/probes: see vectorstore.diagnostics."""
        from .diagnostics import measure_recall

        return measure_recall(self, queries, **options)

    def create_index(self, spec: Any = None, **options: Any) -> str:
        """Build an ANN index (an :class:`~vectorstore.IndexSpec`); returns its name."""
        from .indexes import IndexSpec, create_index

        return create_index(self, spec if spec is not None else IndexSpec(), **options)

    def drop_index(self, name: str, *, concurrently: bool | None = None) -> bool:
        """Drop an ANN index by name; False when it did not exist."""
        from .indexes import drop_index

        return drop_index(self, name, concurrently=concurrently)

    def list_indexes(self) -> list[Any]:
        """The HNSW/IVFFlat indexes on the document table."""
        from .indexes import list_indexes

        with self._read("list indexes") as session:
            return list_indexes(session, self.model.__table__)  # type: ignore[attr-defined]
