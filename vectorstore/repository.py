"""``DocumentRepository``: validates a call, builds a Target, hands it to a wing.

The host app owns the transaction.  A repository bound to a Session works
inside it and never commits it: each write runs in a SAVEPOINT, so a failed
write leaves both the database and the caller's transaction as they were.  A
repository built with :meth:`DocumentRepository.standalone` owns its sessions
and commits each call on its own.

The repository is the only place that knows both wings.  It validates
arguments, resolves the collection, embeds a text query, and passes a frozen
:class:`~vectorstore._target.Target` down to :mod:`vectorstore.write` or
:mod:`vectorstore.query`; nothing below calls back into it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import numpy as np
from sqlalchemy import URL, ColumnElement, Engine, Select, delete, insert, or_, select
from sqlalchemy.orm import Session, sessionmaker

from ._identifiers import check_collection_name, check_model_identifiers
from ._target import CollectionSpec, Sessions, Target
from ._vector import as_query_vector, validate_vector
from .embedders import Embedder
from .errors import (
    CollectionNotFoundError,
    ConfigurationError,
    DimensionMismatchError,
    DocumentNotFoundError,
    ValidationError,
)
from .models import Document, DocumentMixin, embedding_dimension
from .query import diagnostics, listing, run, shadow
from .query import hybrid as hybrid_query
from .query.diagnostics import ExplainReport, RecallReport
from .query.filters import FilterLike, compile_filter
from .query.options import (
    JoinTarget,
    SearchOptions,
    Strategy,
    explicit_settings,
    make_options,
)
from .query.settings import settings_scope
from .query.statement import build_statement
from .results import BulkResult, CollectionInfo, IngestResult, MergeResult, Page, ResultSet
from .schema import indexes
from .schema.catalog import AnnIndex
from .schema.collections import check_compatible, create_or_find, find, pin_collection_id
from .schema.indexes import IndexSpec
from .schema.rls import tenant_sessions
from .write import ingest as ingest_wing
from .write import load
from .write import stage as staging
from .write import update as update_wing
from .write.batch import DEFAULT_CHUNK_ROWS, Record, batches_from_records
from .write.inputs import batches_from, source_total
from .write.load import ConflictPolicy, check_policy, embed_missing
from .write.single import insert_one
from .write.writer import BufferedWriter

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .query.options import NearestOptions, QueryShape

__all__ = ["DocumentRepository", "export_parquet", "ingest"]

DocT = TypeVar("DocT", bound=DocumentMixin)
_DEFAULT_MODEL: Any = Document
_COLUMN_OPTIONS = frozenset(
    {"text_column", "embedding_column", "metadata_column", "id_column", "metadata_columns"}
)
QueryInput = str | Sequence[float] | np.ndarray[Any, Any]


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; use {new}",
        DeprecationWarning,
        stacklevel=3,
    )


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
        self.collection_name = collection
        self.embedder = embedder
        self.model = model
        self._embedding_model = embedding_model
        self._create = create
        self._sessions = Sessions(
            session=session,
            read_factory=(
                sessionmaker(read_engine, expire_on_commit=False)
                if read_engine is not None
                else None
            ),
            label=f"collection {collection!r}",
        )
        self._owned_engine: Engine | None = None
        self._collection: CollectionInfo | None = None
        self._resolved_in: Any = None
        self._target_cache: Target[DocT] | None = None

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
        repo._sessions = Sessions(
            factory=sessionmaker(engine, expire_on_commit=False),
            read_factory=repo._sessions.read_factory,
            label=repo._sessions.label,
        )
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

    @property
    def dimension(self) -> int:
        """The dimension of the model's embedding column."""
        return embedding_dimension(self.model)

    @property
    def owns_transactions(self) -> bool:
        """True for a standalone repository (each call commits); False inside a host Session."""
        return self._sessions.owns_transactions

    # -- collections ---------------------------------------------------------------
    @property
    def collection(self) -> CollectionInfo:
        """The collection (created on first use unless ``create=False``).

        With a host session the lookup is cached per transaction: a collection
        created in a transaction the host later rolls back is looked up again.
        Writes do not go through here: the first write into a new collection
        creates it in the write's own transaction (see :mod:`vectorstore.schema.collections`).
        """
        found = self._known()
        if found is None:
            with self._sessions.write("resolve the collection") as session:
                found = create_or_find(session, self._spec, self.embedder, lock=False)
            self._remember(found)
        return found

    def _known(self) -> CollectionInfo | None:
        """The collection as cached for the current transaction, if it is.

        A collection reached through an alias is never cached by a standalone
        repository (each call resolves the alias again, so a switch is seen
        by the next call; see :mod:`vectorstore.schema.aliases`).
        """
        host = self._sessions.session
        if self._collection is None:
            return None
        if host is None and self._collection.alias is not None:
            return None
        if host is not None and host.get_transaction() is not self._resolved_in:
            return None
        return self._collection

    def _remember(self, info: CollectionInfo) -> None:
        host = self._sessions.session
        self._collection = info
        self._resolved_in = host.get_transaction() if host is not None else None

    @property
    def _spec(self) -> CollectionSpec:
        return CollectionSpec(
            name=self.collection_name, create=self._create, dimension=self.dimension,
            model_label=self.model.__name__, embedding_model=self._embedding_model,
            model=self.model,
        )  # fmt: skip

    def _target(self, embedder: Embedder | None = None) -> Target[DocT]:
        """The frozen value a wing works on: this collection, model, embedder and sessions."""
        info = self.collection
        if embedder is not None and embedder is not self.embedder:
            check_compatible(info, self._spec, embedder)
            return Target(self.model, info, embedder, self._tenant_sessions(info), self._spec)
        cached = self._target_cache
        if cached is None or cached.collection is not info or cached.embedder is not self.embedder:
            sessions = self._tenant_sessions(info)
            cached = Target(self.model, info, self.embedder, sessions, self._spec)
            self._target_cache = cached
        return cached

    def _tenant_sessions(self, info: CollectionInfo) -> Sessions:
        """The sessions, setting ``vectorstore.tenant`` when the table has row-level security."""
        return tenant_sessions(self._sessions, self.model, info.id)

    def _write_target(self, embedder: Embedder | None = None) -> Target[DocT]:
        """A target for a write: a collection that does not exist yet is left to the write.

        The write then creates it inside its own transaction, so a failed first
        write leaves no collection behind (and no model bound to it).  A
        collection reached through an alias is also left to the write, which
        resolves the alias again in its transaction and holds it until it
        commits (see :mod:`vectorstore.schema.aliases`).
        """
        known = self._known()
        if known is not None and known.alias is not None:
            check_compatible(known, self._spec, embedder or self.embedder)
            return Target(self.model, None, embedder or self.embedder, self._sessions, self._spec)
        if known is None:
            with self._sessions.write("resolve the collection") as session:
                found = find(session, self.collection_name)
            if found is None:
                if not self._create:
                    raise CollectionNotFoundError(f"no collection named {self.collection_name!r}")
                chosen = embedder or self.embedder
                if chosen is not None and chosen.dimension != self.dimension:
                    raise DimensionMismatchError(
                        f"embedder {chosen.model_name!r} makes {chosen.dimension}-d vectors; "
                        f"{self.model.__name__}.embedding is {self.dimension}-d"
                    )
                return Target(self.model, None, chosen, self._sessions, self._spec)
            check_compatible(found, self._spec, self.embedder)
            self._remember(found)
            if found.alias is not None:
                chosen = embedder or self.embedder
                check_compatible(found, self._spec, chosen)
                return Target(self.model, None, chosen, self._sessions, self._spec)
        return self._target(embedder)

    # -- embedding -----------------------------------------------------------------
    def _require_embedder(self, why: str) -> Embedder:
        if self.embedder is None:
            raise ConfigurationError(
                f"{why}, but this repository has no embedder; pass embedder=... or give vectors"
            )
        return self.embedder

    def embed_query(self, query: str) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Embed one query text with the repository's embedder."""
        if not isinstance(query, str) or not query.strip():
            raise ValidationError("a text query must be a non-empty string")
        vectors = self._require_embedder("a text query needs embedding").embed([query])
        matrix: np.ndarray[Any, np.dtype[np.float32]] = validate_vector(vectors[0], self.dimension)
        return np.asarray(matrix[0], dtype=np.float32)

    def _query_vector(self, query: QueryInput) -> np.ndarray[Any, np.dtype[np.float32]]:
        """A text query embedded, or a vector validated: what the query wing takes."""
        if isinstance(query, str):
            return self.embed_query(query)
        return as_query_vector(query, self.dimension)

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
        target = self._write_target()
        if batch.needs_embedding:
            self._require_embedder(f"row {batch.start_row}: no embedding given")
        embed_missing(batch, target.embedder)
        sessions = target.sessions
        if sessions.owns_transactions and target.collection is not None and sessions.tenant is None:
            # Standalone: one INSERT on a pooled connection, no Session (see write.single).
            with sessions.errors("add"):
                doc: DocT = insert_one(
                    sessions.write_engine, self.model, batch, target.collection_id
                )
            return doc
        with sessions.write("add") as session:
            # A new collection is created in this transaction, with its first row.
            info = target.collection or create_or_find(session, target.spec, target.embedder)
            values = {
                "collection_id": info.id,
                "external_id": batch.external_ids[0],
                "text": batch.texts[0],
                "content_hash": batch.hashes[0],
                "metadata_": batch.metadata[0],
                "embedding": batch.embeddings[0],
            }
            doc = session.scalars(insert(self.model).returning(self.model), [values]).one()
        self._remember(info)
        return doc

    # -- bulk writes ---------------------------------------------------------------
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
        rebuild_index: bool | None = None,
        index_options: Mapping[str, Any] | None = None,
        text_column: str = "text",
        embedding_column: str | None = "embedding",
        metadata_column: str | None = "metadata",
        id_column: str | None = "external_id",
        metadata_columns: Sequence[str] | None = None,
    ) -> BulkResult:
        """Load many documents with binary ``COPY ... FROM STDIN``, all or nothing.

        ``data`` is a pandas DataFrame, an iterable of records (str, mapping with
        ``text``/``metadata``/``external_id``/``embedding``, or
        :class:`~vectorstore.Record`; generators are streamed in chunks), a
        sequence of texts with parallel ``embeddings``/``metadata``/``external_ids``,
        or a 2-D embedding array with ``texts=``.

        Args:
            on_conflict: what to do with an external id that already exists:
                ``"error"`` (raise, write nothing), ``"skip"`` or ``"update"``.
            chunk_rows: rows encoded and sent per chunk (memory stays flat).
            rebuild_index: big-load mode: drop the table's secondary indexes
                (HNSW, GIN, the content-hash btree) and its foreign key, COPY,
                rebuild them with build settings, then ANALYZE (see
                :mod:`vectorstore.schema.big_load`).  ``None`` (default):
                when the input's size is known and it is large relative to the
                whole table (at least 10,000 rows and as many as the table
                holds); ``True``: always; ``False``: never.  The table (all
                its collections) is locked for the whole call.  The result's
                ``big_load`` / ``rebuilt`` say what was done.  If a rebuild
                fails, the rows stay loaded and
                :class:`~vectorstore.IndexBuildError` says how to rebuild.
            index_options: ``maintenance_work_mem``, ``parallel_workers``,
                ``progress`` (a callable taking
                :class:`~vectorstore.schema.maintenance.IndexBuildProgress`),
                ``min_rows`` and ``ratio`` (the automatic choice's bar).
            text_column: the DataFrame column holding the texts; likewise
                ``embedding_column``, ``metadata_column``, ``id_column`` and
                ``metadata_columns`` (plain columns folded into the metadata).

        Raises:
            ValidationError: a bad row (the message names it); nothing written.
            ConflictError: a duplicate external id with ``on_conflict="error"``.
            IndexBuildError: ``rebuild_index`` was set and the rebuild failed.
        """
        policy = check_policy(on_conflict)
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows <= 0:
            raise ValidationError(f"chunk_rows must be positive, got {chunk_rows}")
        columns = _column_options(
            text_column, embedding_column, metadata_column, id_column, metadata_columns
        )
        batches = batches_from(
            data, self.dimension, chunk_rows=chunk_rows, embeddings=embeddings, texts=texts,
            metadata=metadata, external_ids=external_ids, columns=columns,
        )  # fmt: skip
        result, collection = load.bulk_add(
            self._write_target(), batches, policy,
            rebuild_index=rebuild_index, index_options=index_options,
            expected_rows=source_total(data)[0],
        )  # fmt: skip
        self._remember(collection)
        return result

    # -- staged writes (distributed ingest: vectorstore.write.stage) ---------------
    def stage(
        self,
        data: Any,
        *,
        stage: str,
        part: str = "0",
        embeddings: Any = None,
        texts: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        external_ids: Sequence[str | None] | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> int:
        """Stage rows for a later :meth:`merge_staged`; returns how many were staged.

        For writers on many machines (Spark, Ray, Dask): each worker stages its
        part, one transaction merges the stage.  ``data`` and the parallel
        inputs are as for :meth:`bulk_add`; every row needs an external id.
        Staging the same (``stage``, ``part``) again, e.g. from a retried
        task, replaces the part's rows.  Needs migration 0008.

        Raises:
            ValidationError: a bad row (named) or a row without an external id;
                the part is left as it was.
            SchemaError: the staging tables are missing (run the migrations).
        """
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows <= 0:
            raise ValidationError(f"chunk_rows must be positive, got {chunk_rows}")
        batches = batches_from(
            data, self.dimension, chunk_rows=chunk_rows, embeddings=embeddings, texts=texts,
            metadata=metadata, external_ids=external_ids,
        )  # fmt: skip
        return staging.stage_rows(self._stage_target(), batches, stage, part)

    def merge_staged(
        self,
        stage: str,
        *,
        on_conflict: ConflictPolicy = "skip",
        parts: int | None = None,
        ledger: tuple[str, int] | None = None,
        rebuild_index: bool | None = False,
        index_options: Mapping[str, Any] | None = None,
    ) -> MergeResult:
        """Merge the rows staged under ``stage`` into this collection, once, in one transaction.

        Args:
            on_conflict: ``"skip"`` or ``"update"`` on an existing external id.
            parts: how many parts the stage must hold (else WriteError, nothing merged).
            ledger: ``(stream, batch)`` to record with the merge: a key already
                recorded merges nothing and returns the recorded counts with
                ``replayed=True`` (a batch delivered again).
            rebuild_index: big-load mode, as for :meth:`bulk_add`.
            index_options: the big load's index options, as for :meth:`bulk_add`.
        """
        policy = check_policy(on_conflict)
        result, collection = staging.merge_stage(
            self._write_target(), stage, policy, parts=parts, ledger=ledger,
            rebuild_index=rebuild_index, index_options=index_options,
        )  # fmt: skip
        self._remember(collection)
        return result

    def discard_staged(self, stage: str) -> int:
        """Delete what is staged under ``stage``; returns the rows deleted."""
        return staging.discard_stage(self._stage_target(), stage)

    def ledger(self, stream: str, batch: int | None = None) -> dict[int, MergeResult]:
        """The merges the ingest ledger recorded for ``stream``, by batch number."""
        return staging.ledger_entries(self._stage_target(), stream, batch)

    def forget_ledger(self, stream: str) -> int:
        """Delete the ingest ledger's entries of ``stream``; returns how many."""
        return staging.forget_ledger(self._stage_target(), stream)

    def _stage_target(self) -> Target[DocT]:
        """A target for the staging area: the collection need not exist yet."""
        if self._known() is None:
            return Target(self.model, None, self.embedder, self._sessions, self._spec)
        return self._target()

    def writer(
        self,
        *,
        max_rows: int = 1000,
        max_delay: float | None = 1.0,
        on_conflict: ConflictPolicy = "error",
    ) -> BufferedWriter:
        """A thread-safe buffered writer for event streams (see :mod:`vectorstore.write.writer`).

        It flushes through binary COPY when ``max_rows`` records are buffered,
        when the oldest has waited ``max_delay`` seconds, and on exit.  Each flush
        commits on its own connection (not in this repository's Session).
        """
        policy = check_policy(on_conflict)
        clone: DocumentRepository[DocT] = type(self).standalone(
            self._sessions.write_engine,
            collection=self.collection_name,
            embedder=self.embedder,
            model=self.model,
            embedding_model=self._embedding_model,
            create=self._create,
        )
        # A new collection is created by the writer's first flush, with its first rows.
        return BufferedWriter(
            clone._write_target(), max_rows=max_rows, max_delay=max_delay, on_conflict=policy
        )

    def ingest(
        self,
        source: Any,
        *,
        embedder: Embedder | None = None,
        on_conflict: ConflictPolicy = "skip",
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        skip_known: bool = True,
        progress: bool | None = None,
        rebuild_index: bool | None = None,
        index_options: Mapping[str, Any] | None = None,
        **columns: Any,
    ) -> IngestResult:
        """Embed and store ``source`` in this collection, all or nothing (see :func:`ingest`)."""
        policy = check_policy(on_conflict)
        unknown = set(columns) - _COLUMN_OPTIONS
        if unknown:
            raise TypeError(f"ingest() got unexpected keyword arguments {sorted(unknown)}")
        if embedder is not None and self.embedder is None:
            self.embedder = embedder
        result, collection = ingest_wing.ingest(
            self._write_target(embedder), source, on_conflict=policy, chunk_rows=chunk_rows,
            skip_known=skip_known, progress=progress, rebuild_index=rebuild_index,
            index_options=index_options, columns=columns,
        )  # fmt: skip
        self._remember(collection)
        return result

    def export_parquet(self, path: str | Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> int:
        """Write the collection to a parquet file (see :func:`export_parquet`)."""
        return ingest_wing.export_parquet(self._target(), path, chunk_rows=chunk_rows)

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

    def get_many(
        self, ids: Sequence[int] | None = None, *, external_ids: Sequence[str] | None = None
    ) -> list[DocT]:
        """Documents by ids and/or external ids (missing ones left out), in the order asked."""
        wanted = [_check_id(i) for i in ids or ()]
        keys = [str(e) for e in external_ids or ()]
        if not wanted and not keys:
            return []
        return listing.get_many(self._target(), wanted, keys)

    def get_by_external_id(self, external_id: str) -> DocT:
        """The document with this external id. Raises DocumentNotFoundError."""
        target = self._target()
        model = self.model

        def read() -> DocT | None:
            with target.sessions.read("get") as session:
                return session.scalars(
                    select(model).where(
                        model.collection_id == target.collection_id,
                        model.external_id == str(external_id),
                    )
                ).one_or_none()

        row = target.sessions.retry_read(read)
        if row is None:
            raise DocumentNotFoundError(
                f"no document with external_id {external_id!r} in {self.collection_name!r}"
            )
        return row

    def delete(
        self, ids: Sequence[int] | None = None, *, external_ids: Sequence[str] | None = None
    ) -> int:
        """Delete documents by id and/or external id; returns how many were deleted."""
        if ids is None and external_ids is None:
            raise ValidationError("delete() needs ids or external_ids")
        wanted = [_check_id(i) for i in ids or ()]
        keys = [str(e) for e in external_ids or ()]
        if not wanted and not keys:
            return 0
        target = self._target()
        model = self.model
        conditions = []
        if wanted:
            conditions.append(model.id.in_(wanted))
        if keys:
            conditions.append(model.external_id.in_(keys))
        with target.sessions.write("delete") as session:
            # Through an alias: the collection it points to now, held (schema.aliases).
            info = target.collection
            assert info is not None
            collection_id = pin_collection_id(session, self.collection_name, info)
            result = session.execute(
                delete(model).where(model.collection_id == collection_id, or_(*conditions)),
                execution_options={"synchronize_session": False},
            )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def count(self, filter: FilterLike = None) -> int:
        """Number of documents in the collection, or of those ``filter`` matches."""
        return listing.count(self._target(), filter)

    def exists(self, filter: FilterLike = None) -> bool:
        """True when some document matches ``filter`` (any document without one)."""
        return listing.exists_any(self._target(), filter)

    def iterate(
        self,
        filter: FilterLike = None,
        *,
        chunk: int = listing.DEFAULT_CHUNK,
        with_embedding: bool = True,
    ) -> Iterator[DocT]:
        """Every document ``filter`` matches, in id order, read ``chunk`` rows at a time.

        Memory stays flat (one chunk); each chunk is its own short read.
        ``with_embedding=False`` leaves the vectors out (deferred).
        """
        # Checked now, not at the first next(): a bad call fails where it is made.
        listing.check_positive(chunk, "chunk")
        compile_filter(filter, self.model)
        chunks = listing.iterate(self._target(), filter, chunk=chunk, with_embedding=with_embedding)
        return (doc for rows in chunks for doc in rows)

    # -- changes -------------------------------------------------------------------
    def update(
        self,
        id_or_external_id: int | str,
        *,
        text: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        merge: bool = False,
        embedding: Sequence[float] | np.ndarray[Any, Any] | None = None,
    ) -> DocT:
        """Change one document in place (an integer names its id, a string its external id).

        Args:
            text: the new text; its content hash and full-text column follow, and
                its embedding is ``embedding`` or computed by the embedder.
            metadata: the new metadata; with ``merge=True`` it is merged into the
                stored one (``metadata || patch``: the patch's top-level keys win).
            embedding: a new vector (with or without a new text).

        Returns:
            The updated document.

        Raises:
            DocumentNotFoundError: no such document (nothing changed).
            ValidationError / DimensionMismatchError: a bad value (nothing changed).
            ConfigurationError: a new text without ``embedding=`` and no embedder.
        """
        update_wing.document_key(id_or_external_id)
        target = self._existing_target()
        checks = target or Target(self.model, None, self.embedder, self._sessions, self._spec)
        change = update_wing.prepare_change(
            checks, text=text, metadata=metadata, merge=merge,
            embedding=embedding,
        )  # fmt: skip
        if target is None:
            raise DocumentNotFoundError(
                f"no document {id_or_external_id!r}: collection {self.collection_name!r} is empty"
            )
        doc: DocT = update_wing.update_one(target, id_or_external_id, change)
        return doc

    def update_where(
        self,
        filter: FilterLike,
        *,
        set_metadata: Mapping[str, Any] | None = None,
        merge_metadata: Mapping[str, Any] | None = None,
        batch_size: int = update_wing.DEFAULT_BATCH_ROWS,
    ) -> int:
        """Replace (``set_metadata``) or merge (``merge_metadata``) the metadata of every match.

        ``filter`` is a filter as for :meth:`nearest` (``{}`` matches every
        document).  Rows change ``batch_size`` at a time; standalone, each
        batch commits on its own (see :mod:`vectorstore.write.update`).
        Returns how many documents were updated.
        """
        if (set_metadata is None) == (merge_metadata is None):
            raise ValidationError(
                "update_where needs exactly one of set_metadata=, merge_metadata="
            )
        patch = merge_metadata if set_metadata is None else set_metadata
        target = self._existing_target()
        where, pick = self._where(target, filter, "update_where")
        if target is None or where is None:
            update_wing.check_batch_rows(batch_size)
            update_wing.check_metadata_patch(patch, "metadata")
            return 0
        return update_wing.update_where(target, where, patch, merge=set_metadata is None,
                                        batch_size=batch_size, pick=pick)  # fmt: skip

    def delete_where(
        self, filter: FilterLike, *, batch_size: int = update_wing.DEFAULT_BATCH_ROWS
    ) -> int:
        """Delete every document ``filter`` matches (``{}``: all), in batches; returns the count."""
        target = self._existing_target()
        where, pick = self._where(target, filter, "delete_where")
        if target is None or where is None:
            update_wing.check_batch_rows(batch_size)
            return 0
        return update_wing.delete_where(target, where, batch_size=batch_size, pick=pick)

    def _where(
        self, target: Target[DocT] | None, filter: FilterLike, action: str
    ) -> tuple[ColumnElement[bool] | None, shadow.BatchPicker | None]:
        """``filter`` compiled for a change (checked even when the collection does not exist).

        With the ``metadata_index = "table"`` layout, also where the batches'
        candidate ids come from: the shadow table (:func:`.shadow.shadow_batches`).
        """
        if filter is None:
            raise ValidationError(
                f"{action} needs a filter; pass {{}} to match every document of the collection"
            )
        compile_filter(filter, self.model)  # a malformed filter is an error either way
        if target is None:
            return None, None
        pick = shadow.shadow_batches(target, filter)
        return listing.scope(target, filter, semi_join=pick is None), pick

    def _existing_target(self) -> Target[DocT] | None:
        """The target of an existing collection; None (nothing created) when there is none."""
        if self._known() is None:
            with self._sessions.read("resolve the collection") as session:
                found = find(session, self.collection_name)
            if found is None:
                if not self._create:
                    raise CollectionNotFoundError(f"no collection named {self.collection_name!r}")
                return None
            check_compatible(found, self._spec, self.embedder)
            self._remember(found)
        return self._target()

    # -- search --------------------------------------------------------------------
    def nearest(
        self,
        query: QueryInput,
        k: int = 10,
        *,
        metric: str = "cosine",
        filter: FilterLike = None,
        max_distance: float | None = None,
        min_score: float | None = None,
        offset: int = 0,
        with_embedding: bool = False,
        strategy: str = "auto",
        ef_search: int | None = None,
        probes: int | None = None,
        join: JoinTarget | None = None,
        join_on: ColumnElement[bool] | None = None,
        mmr: float | None = None,
        fetch_k: int | None = None,
        max_scan_tuples: int | None = None,
        exact_threshold: int | None = None,
        precision: str = "vector",
        rerank: int | None = None,
        exact: bool | None = None,
        hybrid: bool | str | None = None,
    ) -> ResultSet[DocT]:
        """The ``k`` documents nearest to ``query`` (a vector, or a text to embed).

        The strategy (ANN index, iterative index scan, or exact ranking of the
        filtered rows) is chosen per query; see :mod:`vectorstore.query.plan`.
        If at least ``k`` documents match the filter, ``k`` come back.

        Args:
            query: a vector (sequence or numpy array) or a text for the embedder.
            k: how many neighbours.
            metric: ``"cosine"`` (default), ``"l2"``, ``"inner_product"`` or ``"l1"``.
            filter: a dictionary filter (see :mod:`vectorstore.query.filters`), a
                SQLAlchemy boolean expression on any mapped column (of the
                document model or of ``join``), or a list of them.
            max_distance: drop hits farther than this (applied to the k nearest).
            min_score: drop hits scoring below this (same).
            offset: skip this many hits first (paging).
            with_embedding: load the embedding column (deferred otherwise).
            strategy: ``"auto"``, ``"index"``, ``"iterative"`` or ``"exact"``
                (``"exact"`` ranks exactly, bypassing ANN indexes: ground truth).
            ef_search: HNSW ``hnsw.ef_search`` for this query (default 200; for an
                iterative scan the planner widens it, from 400 up to 1,000, until
                the candidates hold 100 matching rows at the local share it
                estimates: see ``iterative_ef``).
            probes: IVFFlat ``ivfflat.probes`` for this query (default 10).
            join: a mapped class to join and return alongside (``hit.extra``).
            join_on: the join condition, e.g. ``Product.asin ==
                Document.metadata_["asin"].astext``.
            mmr: re-rank for diversity by maximal marginal relevance with this
                lambda (1 = pure relevance).
            fetch_k: candidates fetched before MMR re-ranking (default 4 x (k + offset)).
            max_scan_tuples: tuples an iterative HNSW scan may visit (default 40,000).
            exact_threshold: a row-count override of the cost-based choice: filters
                keeping at most this many rows are ranked exactly, larger ones by
                an iterative scan (default None: chosen by estimated cost, see
                docs/filtered-search.md).
            precision: ``"vector"``, or ``"halfvec"`` / ``"binary"`` to use a
                quantized index (candidates re-ranked on the full vectors).
            rerank: candidate factor of a quantized scan (candidates = (k + offset) x this).
            exact: deprecated; use ``strategy="exact"``.
            hybrid: deprecated; use :meth:`hybrid`.

        Returns:
            A :class:`~vectorstore.ResultSet`: hits sorted by distance, with
            ``k``, ``returned``, ``strategy`` and ``to_dataframe()``.

        Raises:
            ValidationError: bad k, metric, vector (dimension, NaN), threshold.
            FilterError: a malformed filter.
        """
        if exact is not None:
            _deprecated("nearest(exact=...)", "strategy='exact'")
            if exact:
                strategy = "exact"
        opts = make_options(
            k, metric=metric, filter=filter, max_distance=max_distance, min_score=min_score,
            offset=offset, with_embedding=with_embedding, strategy=strategy,
            ef_search=ef_search, probes=probes, join=join, join_on=join_on, mmr=mmr,
            fetch_k=fetch_k, max_scan_tuples=max_scan_tuples, exact_threshold=exact_threshold,
            precision=precision, rerank=rerank,
        )  # fmt: skip
        if hybrid:
            _deprecated("nearest(hybrid=...)", "repo.hybrid(text, ...)")
            text_query = hybrid if isinstance(hybrid, str) else query
            if not isinstance(text_query, str):
                raise ValidationError("hybrid=True needs a text query; pass hybrid='words'")
            return self._hybrid(text_query, None if isinstance(query, str) else query, opts)
        vector = self._query_vector(query)
        target = self._target()
        # A read: run once more if its pooled connection proved dead (see Sessions.retry_read).
        return target.sessions.retry_read(lambda: run.run(target, vector, opts))

    def nearest_query(
        self,
        query: QueryInput,
        k: int = 10,
        *,
        metric: str = "cosine",
        filter: FilterLike = None,
        offset: int = 0,
        with_embedding: bool = False,
        strategy: Literal["index", "exact"] = "index",
        exact: bool | None = None,
    ) -> Select[Any]:
        """The SELECT behind nearest, for the caller to ``.join()``/``.where()`` and run.

        It selects ``(document, distance)`` ordered by distance ascending (the
        ANN index order; ``strategy="exact"`` orders by ``distance + 0`` so no
        ANN index is used), limited to ``k`` after ``offset``.  Run it inside
        :meth:`search_settings` to give it ``ef_search`` or iterative scans.
        ``exact=`` is deprecated (use ``strategy="exact"``).
        """
        if exact is not None:
            _deprecated("nearest_query(exact=...)", "strategy='exact'")
            strategy = "exact" if exact else "index"
        if strategy not in ("index", "exact"):
            raise ValidationError(
                f"nearest_query strategy must be 'index' or 'exact', got {strategy!r}"
            )
        opts = make_options(k, metric=metric, filter=filter, offset=offset,
                            with_embedding=with_embedding)  # fmt: skip
        vector = self._query_vector(query)
        stmt = build_statement(self._target(), vector, opts, strategy)
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
        settings = explicit_settings(ef_search, probes, iterative, max_scan_tuples)
        sessions = self._sessions
        with (
            sessions.read("search") as session,
            settings_scope(session, settings, owned=sessions.owns_reads),
        ):
            yield session

    def hybrid(
        self,
        text: str,
        k: int = 10,
        *,
        vector: Sequence[float] | np.ndarray[Any, Any] | None = None,
        filter: FilterLike = None,
        metric: str = "cosine",
        offset: int = 0,
        rrf_k: int = hybrid_query.DEFAULT_RRF_K,
        candidates: int | None = None,
        vector_weight: float = 1.0,
        text_weight: float = 1.0,
        ef_search: int | None = None,
    ) -> ResultSet[DocT]:
        """Full-text and vector search fused by reciprocal rank fusion, one SQL statement.

        See :func:`vectorstore.query.hybrid.hybrid_search`; ``score`` is the RRF score.
        """
        opts = make_options(k, metric=metric, filter=filter, offset=offset,
                            ef_search=ef_search)  # fmt: skip
        return self._hybrid(text, vector, opts, rrf_k=rrf_k, candidates=candidates,
                            vector_weight=vector_weight, text_weight=text_weight)  # fmt: skip

    def _hybrid(
        self, text: str, vector: QueryInput | None, opts: SearchOptions, **fusion: Any
    ) -> ResultSet[DocT]:
        # before embedding or reading anything
        hybrid_query.check_fusion(text, opts, model=self.model, **fusion)
        vec = self._query_vector(text if vector is None else vector)
        target = self._target()
        return target.sessions.retry_read(
            lambda: hybrid_query.hybrid_search(target, text, vector=vec, opts=opts, **fusion)
        )

    def explain(
        self, query: QueryInput, *, exact: bool | None = None, **options: Unpack[NearestOptions]
    ) -> ExplainReport:
        """EXPLAIN ANALYZE what ``nearest(query, **options)`` runs (``exact=`` is deprecated)."""
        if exact is not None:
            _deprecated("explain(exact=...)", "strategy='exact'")
            if exact:
                options["strategy"] = "exact"
        opts = make_options(**options)
        return diagnostics.explain(self._target(), self._query_vector(query), opts)

    def measure_recall(
        self,
        queries: Sequence[QueryInput],
        *,
        k: int = 10,
        ef_search: Sequence[int] = (40, 100, 200),
        probes: Sequence[int] = (),
        strategy: Strategy = "index",
        **options: Unpack[QueryShape],
    ) -> RecallReport:
        """Recall@k and latency of the index at each ``ef_search`` / ``probes`` value.

        Args:
            queries: sample query vectors or texts (texts are embedded once).
            k: neighbours per query.
            ef_search: HNSW ``ef_search`` values to try.
            probes: IVFFlat ``probes`` values to try.
            strategy: the strategy to measure (``"index"``, ``"iterative"`` or ``"auto"``).
            **options: as for :meth:`nearest` (``metric``, ``filter``, ``precision``, ...).
        """
        if not queries:
            raise ValidationError("measure_recall needs at least one sample query")
        base = make_options(k, strategy=strategy, **options)
        vectors = [self._query_vector(q) for q in queries]
        return diagnostics.measure_recall(
            self._target(), vectors, base, ef_search=ef_search, probes=probes, strategy=strategy
        )

    # -- indexes -------------------------------------------------------------------
    def create_index(
        self,
        spec: IndexSpec | None = None,
        *,
        concurrently: bool | None = None,
        maintenance_work_mem: str | None = None,
    ) -> str:
        """Build an ANN index (an :class:`~vectorstore.IndexSpec`); returns its name.

        See :func:`vectorstore.schema.indexes.create_index` for ``concurrently``
        and ``maintenance_work_mem``.
        """
        if spec is None:
            spec = IndexSpec()
        if not isinstance(spec, IndexSpec):
            raise ValidationError(f"create_index takes an IndexSpec, got {type(spec).__name__}")
        return indexes.create_index(
            self._sessions, self.model, spec,
            collection_id=self.collection.id if spec.per_collection else None,
            concurrently=concurrently, maintenance_work_mem=maintenance_work_mem,
        )  # fmt: skip

    def drop_index(self, name: str, *, concurrently: bool | None = None) -> bool:
        """Drop an ANN index by name; False when it did not exist."""
        return indexes.drop_index(self._sessions, self.model, name, concurrently=concurrently)

    def list_indexes(self) -> list[AnnIndex]:
        """The HNSW/IVFFlat indexes on the document table."""
        return indexes.list_indexes(self._sessions, self.model)

    # Last in the class: below it, ``list`` in an annotation would name this method.
    def list(
        self,
        filter: FilterLike = None,
        *,
        order_by: str = "id",
        limit: int = listing.DEFAULT_PAGE_SIZE,
        after: str | None = None,
        with_embedding: bool = False,
    ) -> Page[DocT]:
        """One keyset page of the documents ``filter`` matches (:mod:`vectorstore.query.listing`).

        Args:
            filter: a filter as for :meth:`nearest` (None: every document).
            order_by: ``"id"``, ``"created_at"``, or either with ``"-"`` (descending).
            limit: documents per page.
            after: the ``next_after`` cursor of the previous page.
            with_embedding: load the embedding column (deferred otherwise, as in nearest).

        Returns:
            A :class:`~vectorstore.Page`: ``items`` and ``next_after`` (None on the last page).
        """
        return listing.list_page(self._target(), filter, order_by=order_by, limit=limit,
                                 after=after, with_embedding=with_embedding)  # fmt: skip


def _check_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValidationError(f"document ids are integers, got {type(value).__name__}")
    return int(value)


def _column_options(
    text_column: str,
    embedding_column: str | None,
    metadata_column: str | None,
    id_column: str | None,
    metadata_columns: Sequence[str] | None,
) -> dict[str, Any]:
    """The DataFrame column options a caller changed from their defaults."""
    given = {
        "text_column": (text_column, "text"),
        "embedding_column": (embedding_column, "embedding"),
        "metadata_column": (metadata_column, "metadata"),
        "id_column": (id_column, "external_id"),
        "metadata_columns": (metadata_columns, None),
    }
    return {name: value for name, (value, default) in given.items() if value != default}


def ingest(
    source: Any,
    embedder: Embedder | None = None,
    *,
    repository: DocumentRepository[Any],
    on_conflict: ConflictPolicy = "skip",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    skip_known: bool = True,
    progress: bool | None = None,
    rebuild_index: bool | None = None,
    index_options: Mapping[str, Any] | None = None,
    **columns: Any,
) -> IngestResult:
    """Embed and store ``source`` in ``repository``'s collection, all or nothing.

    The embedding pipeline: source -> skip known texts -> embed (in a worker
    thread, overlapped with the COPY of the previous chunk) -> COPY, one
    transaction (see :mod:`vectorstore.write.ingest`).

    Args:
        source: texts or records (any iterable; see ``bulk_add``), a pandas
            DataFrame, or a path to a ``.parquet``, ``.csv`` or ``.jsonl`` file
            (columns ``text`` and optionally ``embedding``, ``metadata``,
            ``external_id``; rename with the column options below).
        embedder: embeds texts given without a vector; default: the
            repository's.  Its model must match the collection's.
        repository: the :class:`~vectorstore.DocumentRepository` to write to.
        on_conflict: policy for external ids already stored (default ``"skip"``,
            so re-running an ingest is harmless).
        chunk_rows: rows read, embedded and sent per step.
        skip_known: skip rows whose text (content hash) the collection already
            stores: they are neither embedded nor written again.
        progress: show a tqdm bar; None (default) shows it only on a terminal.
        rebuild_index: big-load mode (see ``bulk_add``); ``None`` (default)
            chooses by the source's size when known, else switches once the
            rows written cross the bar; the content-hash index stays while
            ``skip_known`` reads it.
        index_options: options of the rebuild (``maintenance_work_mem``, ...).
        **columns: ``text_column``, ``embedding_column``, ``metadata_column``,
            ``id_column``, ``metadata_columns`` for DataFrames and files.

    Raises:
        ValidationError: a bad row (named) or source; nothing is written.
        IndexBuildError: the index rebuild failed; the rows stay loaded.
    """
    return repository.ingest(
        source, embedder=embedder, on_conflict=on_conflict, chunk_rows=chunk_rows,
        skip_known=skip_known, progress=progress, rebuild_index=rebuild_index,
        index_options=index_options, **columns,
    )  # fmt: skip


def export_parquet(
    repository: DocumentRepository[Any], path: str | Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> int:
    """Write the collection (external_id, text, metadata, embedding) to a parquet file.

    Rows are streamed with a server-side cursor and written one row group per
    ``chunk_rows``, so memory stays flat.  Metadata is stored as JSON text and
    embeddings as ``fixed_size_list<float32>``; :func:`ingest` reads the file
    back as it is.  Returns the number of rows written.
    """
    return repository.export_parquet(path, chunk_rows=chunk_rows)
