"""Collections: find one, create one in the caller's transaction, check what may write to it.

A collection records which embedding model and dimension produced its
vectors.  It is created by the first write into it, *in that write's
transaction*: a first ``bulk_add`` that fails on its last row leaves no
collection behind, bound to a model that never stored a vector.  Reads of a
missing collection create it at once (they have no transaction to share),
unless the repository was built with ``create=False``.

The functions at the end manage collections as a whole (list, create, drop,
rename, describe); ``vectorstore collection ...`` calls them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import URL, Engine, Table, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from vectorstore._identifiers import check_collection_name, check_model_identifiers
from vectorstore._target import CollectionSpec
from vectorstore.config import make_engine
from vectorstore.embedders import Embedder
from vectorstore.embedding.provenance import AUTO_PENDING, Provenance, compatible
from vectorstore.errors import (
    CollectionNotFoundError,
    ConflictError,
    DimensionMismatchError,
    EmbeddingModelMismatchError,
    ValidationError,
    db_errors,
)
from vectorstore.models import (
    DEFAULT_MODEL_NAME,
    Collection,
    Document,
    DocumentMixin,
    embedding_dimension,
)
from vectorstore.results import CollectionInfo, CollectionSummary

from .catalog import forget, list_ann_indexes, qualified_table

__all__ = [
    "CollectionSpec",
    "check_compatible",
    "collection_info",
    "create_collection",
    "create_or_find",
    "drop_collection",
    "find",
    "list_collections",
    "rename_collection",
]


def find(session: Session, name: str) -> CollectionInfo | None:
    """The collection called ``name``, or None (one query, nothing written)."""
    row = session.execute(select(Collection).where(Collection.name == name)).scalar_one_or_none()
    if row is None:
        return None
    backend = Provenance.from_json(row.embedding_backend)
    return CollectionInfo(row.id, row.name, row.embedding_model, row.dimension, backend)


def provenance_of(embedder: Embedder | None) -> Provenance | None:
    """The embedder's backend and precision, when it tells (``SentenceTransformerEmbedder`` does).

    Read without loading a model: ``claimed_provenance`` when the embedder
    has it, else ``provenance``.
    """
    for attribute in ("claimed_provenance", "provenance"):
        found = getattr(embedder, attribute, None)
        if isinstance(found, Provenance):
            return found
    return None


def _recorded(embedder: Embedder | None) -> dict[str, Any] | None:
    found = provenance_of(embedder)
    return None if found is None or found == AUTO_PENDING else found.to_json()


def create_or_find(
    session: Session, spec: CollectionSpec, embedder: Embedder | None
) -> CollectionInfo:
    """The collection, created in ``session``'s transaction if it does not exist yet.

    Two writers creating the same collection at once both succeed: the insert
    does nothing when the name exists, and both read the one row.

    Raises:
        CollectionNotFoundError: it does not exist and ``spec.create`` is False.
        DimensionMismatchError, EmbeddingModelMismatchError: it exists, for
            other vectors (see :func:`check_compatible`).
    """
    info = find(session, spec.name)
    if info is None:
        if not spec.create:
            raise CollectionNotFoundError(f"no collection named {spec.name!r}")
        session.execute(
            pg_insert(Collection)
            .values(
                name=spec.name,
                embedding_model=spec.recorded_model(embedder),
                dimension=spec.dimension,
                embedding_backend=_recorded(embedder),
            )
            .on_conflict_do_nothing(index_elements=["name"])
        )
        info = find(session, spec.name)
        assert info is not None  # inserted or found: the name is unique
    check_compatible(info, spec, embedder)
    return info


def check_compatible(info: CollectionInfo, spec: CollectionSpec, embedder: Embedder | None) -> None:
    """Refuse a model, dimension or embedder that would mix other vectors into ``info``.

    Raises:
        DimensionMismatchError: the column or the embedder makes vectors of
            another dimension than the collection holds.
        EmbeddingModelMismatchError: the embedder's model, or the explicit
            ``embedding_model``, is not the collection's.
    """
    if info.dimension != spec.dimension:
        raise DimensionMismatchError(
            f"collection {info.name!r} holds {info.dimension}-d vectors but "
            f"{spec.model_label}.embedding is {spec.dimension}-d"
        )
    if embedder is not None:
        if embedder.dimension != info.dimension:
            raise DimensionMismatchError(
                f"embedder {embedder.model_name!r} makes {embedder.dimension}-d "
                f"vectors; collection {info.name!r} holds {info.dimension}-d vectors"
            )
        if embedder.model_name != info.embedding_model:
            raise EmbeddingModelMismatchError(
                f"collection {info.name!r} was embedded with {info.embedding_model!r}; "
                f"refusing to mix in vectors from {embedder.model_name!r}"
            )
        backend = provenance_of(embedder)
        if not compatible(info.embedding_backend, backend):
            raise EmbeddingModelMismatchError(
                f"collection {info.name!r} was embedded by {info.embedding_backend}; refusing "
                f"to mix in vectors from {backend}: only backends admitted by the quality "
                "gate share a collection"
            )
    if spec.embedding_model is not None and spec.embedding_model != info.embedding_model:
        raise EmbeddingModelMismatchError(
            f"collection {info.name!r} was embedded with {info.embedding_model!r}; "
            f"refusing vectors declared as {spec.embedding_model!r} (embedding_model=)"
        )


# -- managing collections (the library face of `vectorstore collection ...`) ----------------
Bindable = Engine | Session | str | URL | None


@contextmanager
def _transaction(bind: Bindable, action: str) -> Iterator[Session]:
    """A Session in one transaction: the caller's (a SAVEPOINT in it), else one committed here.

    With a Session, nothing is committed: the changes are the caller's to
    commit or roll back, like every write of a repository bound to a Session.
    Anything else is resolved as :func:`vectorstore.make_engine` does; an
    engine made here is disposed of afterwards.
    """
    if isinstance(bind, Session):
        with db_errors(action), bind.begin_nested():
            yield bind
        return
    engine = bind if isinstance(bind, Engine) else make_engine(bind)
    try:
        with db_errors(action), Session(engine) as session, session.begin():
            yield session
    finally:
        if engine is not bind:
            engine.dispose()


def _document_table(model: Any) -> Table:
    check_model_identifiers(model)
    if not (isinstance(model, type) and issubclass(model, DocumentMixin)):
        raise ValidationError(f"{model!r} is not a DocumentMixin model")
    table = getattr(model, "__table__", None)
    assert isinstance(table, Table)
    return table


def _summaries(session: Session, model: Any, name: str | None) -> list[CollectionSummary]:
    table = _document_table(model)
    qualified = qualified_table(session, table)
    rows = select(func.count()).where(model.collection_id == Collection.id).scalar_subquery()
    query = select(Collection, rows).order_by(Collection.name)
    if name is not None:
        query = query.where(Collection.name == name)
    own: dict[int, list[str]] = {}
    if session.execute(select(func.to_regclass(qualified))).scalar_one() is not None:
        for ix in list_ann_indexes(session, table):
            if ix.collection_id is not None:
                own.setdefault(ix.collection_id, []).append(ix.name)
        found: list[tuple[Any, Any]] = [tuple(row) for row in session.execute(query).all()]
    else:  # the model's table does not exist (yet): its collections hold nothing there
        found = [(c, 0) for c in session.execute(query.with_only_columns(Collection)).scalars()]
    return [
        CollectionSummary(
            id=c.id,
            name=c.name,
            embedding_model=c.embedding_model,
            dimension=c.dimension,
            rows=int(n),
            table=qualified,
            indexes=tuple(own.get(c.id, ())),
        )
        for c, n in found
    ]


def list_collections(bind: Bindable = None, *, model: Any = Document) -> list[CollectionSummary]:
    """Every collection, by name, with its rows in ``model``'s table and its own indexes.

    Args:
        bind: an Engine, a Session, a URL, or None (``VECTORSTORE_DATABASE_URL``,
            else the embedded server).
        model: the document model whose table is counted (a ``DocumentMixin``
            subclass; default :class:`~vectorstore.Document`).
    """
    with _transaction(bind, "list collections") as session:
        return _summaries(session, model, None)


def collection_info(bind: Bindable, name: str, *, model: Any = Document) -> CollectionSummary:
    """One collection with its size (see :func:`list_collections`).

    Raises:
        CollectionNotFoundError: there is no collection called ``name``.
    """
    check_collection_name(name)
    with _transaction(bind, f"read collection {name!r}") as session:
        found = _summaries(session, model, name)
    if not found:
        raise CollectionNotFoundError(f"no collection named {name!r}")
    return found[0]


def create_collection(
    bind: Bindable,
    name: str,
    *,
    embedding_model: str = DEFAULT_MODEL_NAME,
    dimension: int | None = None,
    model: Any = Document,
) -> CollectionInfo:
    """Create an empty collection for vectors of ``embedding_model`` (``model``'s dimension).

    A repository creates its collection on its first write anyway; this is for
    declaring one up front (``vectorstore collection create``).

    Raises:
        ConflictError: a collection called ``name`` exists already.
        ValidationError: a bad name, model name or dimension.
    """
    check_collection_name(name)
    if not isinstance(embedding_model, str) or not embedding_model.strip():
        raise ValidationError("embedding_model must be a non-empty string")
    _document_table(model)
    column = embedding_dimension(model)
    if dimension is None:
        dimension = column
    if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension <= 0:
        raise ValidationError(f"dimension must be a positive integer, got {dimension!r}")
    if dimension != column:
        raise DimensionMismatchError(
            f"{model.__name__}.embedding is {column}-d; a {dimension}-d collection needs a "
            "DocumentMixin model with embedding_dimension = "
            f"{dimension}"
        )
    with _transaction(bind, f"create collection {name!r}") as session:
        created = session.execute(
            pg_insert(Collection)
            .values(name=name, embedding_model=embedding_model, dimension=dimension)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(Collection.id)
        ).scalar_one_or_none()
        if created is None:
            raise ConflictError(f"a collection named {name!r} exists already")
    return CollectionInfo(int(created), name, embedding_model, dimension)


def drop_collection(
    bind: Bindable, name: str, *, model: Any = Document, missing_ok: bool = False
) -> int:
    """Delete a collection, its documents in ``model``'s table and its own indexes, at once.

    One transaction: the per-collection (partial) ANN indexes are dropped, the
    documents deleted and the collection's row removed, or, on any error,
    nothing is.  Returns the number of documents deleted.

    Args:
        missing_ok: a collection that does not exist is no error (0 deleted).

    Raises:
        CollectionNotFoundError: there is no collection called ``name`` (and
            ``missing_ok`` is False).
    """
    check_collection_name(name)
    table = _document_table(model)
    try:
        with _transaction(bind, f"drop collection {name!r}") as session:
            info = session.execute(
                select(Collection.id).where(Collection.name == name).with_for_update()
            ).scalar_one_or_none()
            if info is None:
                if missing_ok:
                    return 0
                raise CollectionNotFoundError(f"no collection named {name!r}")
            schema = table.schema
            for ix in list_ann_indexes(session, table):
                if ix.collection_id == info:
                    qualified = f'"{schema}"."{ix.name}"' if schema else f'"{ix.name}"'
                    session.execute(text(f"DROP INDEX {qualified}"))
            done: Any = session.execute(delete(model).where(model.collection_id == info))
            deleted = done.rowcount
            session.execute(delete(Collection).where(Collection.id == info))
    finally:
        forget(table)
    return int(deleted or 0)


def rename_collection(bind: Bindable, old: str, new: str) -> CollectionInfo:
    """Give collection ``old`` the name ``new`` (its documents and indexes stay as they are).

    Raises:
        CollectionNotFoundError: there is no collection called ``old``.
        ConflictError: a collection called ``new`` exists already.
    """
    check_collection_name(old)
    check_collection_name(new)
    with _transaction(bind, f"rename collection {old!r}") as session:
        if old != new and find(session, new) is not None:
            raise ConflictError(f"a collection named {new!r} exists already")
        row = session.execute(
            update(Collection).where(Collection.name == old).values(name=new)
            .returning(Collection.id, Collection.embedding_model, Collection.dimension)
        ).one_or_none()  # fmt: skip
        if row is None:
            raise CollectionNotFoundError(f"no collection named {old!r}")
    return CollectionInfo(int(row.id), new, str(row.embedding_model), int(row.dimension))
