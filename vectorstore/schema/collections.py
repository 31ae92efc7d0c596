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

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import URL, Engine, Table, delete, func, or_, select, text, update
from sqlalchemy import exc as sa_exc
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
    sqlstate,
)
from vectorstore.models import (
    DEFAULT_MODEL_NAME,
    Collection,
    CollectionAlias,
    Document,
    DocumentMixin,
    embedding_dimension,
)
from vectorstore.results import CollectionInfo, CollectionSummary

from .catalog import forget, list_ann_indexes, qualified_table
from .partitions import create_partition, drop_partition, is_partitioned
from .rls import row_security_enabled, tenant_sql

__all__ = [
    "CollectionSpec",
    "check_compatible",
    "claim_name",
    "collection_info",
    "create_collection",
    "create_or_find",
    "drop_collection",
    "find",
    "list_collections",
    "pin_collection_id",
    "rename_collection",
]


def _info(row: Any, name: str) -> CollectionInfo:
    alias = None if row.name == name else name
    backend = Provenance.from_json(row.embedding_backend)
    return CollectionInfo(
        row.id, row.name, row.embedding_model, row.dimension, alias, embedding_backend=backend
    )


def find(session: Session, name: str, *, lock: bool = False) -> CollectionInfo | None:
    """The collection called ``name``, directly or through an alias, or None (nothing written).

    An alias wins over a collection of the same name (the two name spaces are
    kept apart, see :func:`claim_name`, so that only happens after a race).
    The result's ``alias`` says whether it was reached through one.

    Args:
        lock: in a write's transaction, hold the alias row (``FOR SHARE``)
            until that transaction ends, so a switch of the alias waits for
            the write and the write lands in the collection the alias points
            to when it commits (see :func:`vectorstore.switch_alias`).
    """
    if lock:
        row = session.execute(
            select(Collection.id, Collection.name, Collection.embedding_model,
                   Collection.dimension, Collection.embedding_backend)
            .join(CollectionAlias, CollectionAlias.collection_id == Collection.id)
            .where(CollectionAlias.name == name)
            .with_for_update(read=True, of=CollectionAlias)
        ).one_or_none()  # fmt: skip
        if row is not None:
            return _info(row, name)
        row = session.execute(
            select(Collection.id, Collection.name, Collection.embedding_model,
                   Collection.dimension, Collection.embedding_backend)
            .where(Collection.name == name)
        ).one_or_none()  # fmt: skip
        return None if row is None else _info(row, name)
    aliased = (
        select(CollectionAlias.collection_id).where(CollectionAlias.name == name).scalar_subquery()
    )
    row = session.execute(
        select(
            Collection.id,
            Collection.name,
            Collection.embedding_model,
            Collection.dimension,
            Collection.embedding_backend,
        )
        .where(or_(Collection.name == name, Collection.id == aliased))
        .order_by(Collection.name == name)  # the alias's target (False) first
        .limit(1)
    ).one_or_none()
    return None if row is None else _info(row, name)


def pin_collection_id(session: Session, name: str, info: CollectionInfo) -> int:
    """The id a write in ``session``'s transaction must use for the collection ``info``.

    ``info`` as resolved before the write's transaction began.  Reached by its
    own name, that is its id (a rename keeps the id).  Reached through an
    alias, the alias is resolved again here and held (see :func:`find`), so a
    switch that committed in between is followed and a switch that starts
    now waits for this write.

    Raises:
        CollectionNotFoundError: the alias was dropped meanwhile.
        DimensionMismatchError: the alias now points to vectors of another dimension.
    """
    if info.alias is None:
        return info.id
    found = find(session, name, lock=True)
    if found is None:
        raise CollectionNotFoundError(f"no collection named {name!r}")
    if found.dimension != info.dimension:
        raise DimensionMismatchError(
            f"alias {name!r} now points to {found.name!r}, which holds {found.dimension}-d "
            f"vectors, not {info.dimension}-d"
        )
    return found.id


def _name_lock(session: Session, name: str) -> None:
    session.execute(select(func.pg_advisory_xact_lock(func.hashtext("vectorstore.name:" + name))))


def claim_name(session: Session, name: str, *, kind: str) -> None:
    """Reserve ``name`` for a new collection or alias in this transaction, or refuse.

    Collections and aliases share one name space.  A transaction-scoped
    advisory lock on the name serialises two transactions that create the
    same name, then both tables are checked.

    Raises:
        ConflictError: a collection or an alias has the name already.
    """
    _name_lock(session, name)
    if session.execute(select(CollectionAlias.name).where(CollectionAlias.name == name)).first():
        raise ConflictError(f"an alias named {name!r} exists already; a {kind} cannot take it")
    if session.execute(select(Collection.id).where(Collection.name == name)).first():
        raise ConflictError(f"a collection named {name!r} exists already")


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
    session: Session, spec: CollectionSpec, embedder: Embedder | None, *, lock: bool = True
) -> CollectionInfo:
    """The collection, created in ``session``'s transaction if it does not exist yet.

    Two writers creating the same collection at once both succeed: the insert
    does nothing when the name exists, and both read the one row.  A name
    that is an alias resolves to the collection it points to (never created);
    with ``lock`` (the writes' default) the alias is held until the
    transaction ends (see :func:`find`).

    Raises:
        CollectionNotFoundError: it does not exist and ``spec.create`` is False.
        DimensionMismatchError, EmbeddingModelMismatchError: it exists, for
            other vectors (see :func:`check_compatible`).
    """
    info = find(session, spec.name, lock=lock)
    if info is None:
        if not spec.create:
            raise CollectionNotFoundError(f"no collection named {spec.name!r}")
        _name_lock(session, spec.name)  # against a create_alias of the same name
        if session.execute(
            select(CollectionAlias.name).where(CollectionAlias.name == spec.name)
        ).first():  # an alias created since the lookup: follow it
            info = find(session, spec.name, lock=lock)
            assert info is not None
            check_compatible(info, spec, embedder)
            return info
        created = session.execute(
            pg_insert(Collection)
            .values(
                name=spec.name,
                embedding_model=spec.recorded_model(embedder),
                dimension=spec.dimension,
                embedding_backend=_recorded(embedder),
            )
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(Collection.id)
        ).scalar_one_or_none()
        if created is not None and spec.model is not None:
            # Tenants as partitions: the new collection's partition, in this transaction.
            table = spec.model.__table__
            if is_partitioned(session, table):
                create_partition(session, table, int(created), spec.model)
        info = find(session, spec.name, lock=lock)
        assert info is not None  # inserted or found: the name is unique
    check_compatible(info, spec, embedder)
    if spec.model is not None and row_security_enabled(session, spec.model.__table__):
        session.execute(text(tenant_sql(info.id)))  # the write's rows pass the policy
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
    own_bytes: dict[int, int] = {}
    shared_bytes = table_rows = 0
    if session.execute(select(func.to_regclass(qualified))).scalar_one() is not None:
        for ix in list_ann_indexes(session, table):
            if ix.collection_id is not None:
                own.setdefault(ix.collection_id, []).append(ix.name)
        found: list[tuple[Any, Any]] = [tuple(row) for row in session.execute(query).all()]
        own_bytes, shared_bytes = _sizes(session, qualified)
        table_rows = int(session.execute(select(func.count()).select_from(model)).scalar_one())
    else:  # the model's table does not exist (yet): its collections hold nothing there
        found = [(c, 0) for c in session.execute(query.with_only_columns(Collection)).scalars()]
    aliases: dict[int, list[str]] = {}
    for alias, target in session.execute(
        select(CollectionAlias.name, CollectionAlias.collection_id).order_by(CollectionAlias.name)
    ):
        aliases.setdefault(int(target), []).append(str(alias))
    return [
        CollectionSummary(
            id=c.id,
            name=c.name,
            embedding_model=c.embedding_model,
            dimension=c.dimension,
            rows=int(n),
            table=qualified,
            indexes=tuple(own.get(c.id, ())),
            aliases=tuple(aliases.get(c.id, ())),
            size_bytes=own_bytes.get(c.id, 0)
            + (shared_bytes * int(n) // table_rows if table_rows else 0),
        )
        for c, n in found
    ]


def _sizes(session: Session, qualified: str) -> tuple[dict[int, int], int]:
    """Bytes of each collection's own indexes on the table, and of everything else of it.

    "Everything else" is the heap, its TOAST data and the table-wide indexes
    (``pg_total_relation_size`` less the per-collection indexes).
    """
    rows = session.execute(
        text(
            "SELECT pg_get_expr(i.indpred, i.indrelid), pg_relation_size(i.indexrelid) "
            "FROM pg_index i WHERE i.indrelid = CAST(:t AS regclass) AND i.indpred IS NOT NULL"
        ),
        {"t": qualified},
    ).all()
    own: dict[int, int] = {}
    for predicate, size in rows:
        match = _OWN_PREDICATE.fullmatch(str(predicate))
        if match:
            key = int(match.group(1))
            own[key] = own.get(key, 0) + int(size)
    total = session.execute(
        text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": qualified}
    ).scalar_one()
    return own, max(0, int(total) - sum(own.values()))


#: The predicate of a per-collection (partial) index, as ``pg_get_expr`` prints it.
_OWN_PREDICATE = re.compile(r"\(?collection_id = (\d+)\)?")


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
    """One collection with its size (see :func:`list_collections`); ``name`` may be an alias.

    Raises:
        CollectionNotFoundError: there is no collection called ``name``.
    """
    check_collection_name(name)
    with _transaction(bind, f"read collection {name!r}") as session:
        resolved = find(session, name)
        found = [] if resolved is None else _summaries(session, model, resolved.name)
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
        ConflictError: a collection or an alias called ``name`` exists already.
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
        claim_name(session, name, kind="collection")
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
    """Delete a collection, its documents and its own indexes, at once; refuse while it is written.

    One transaction: the collection's row is locked without waiting (a
    writer that is adding documents holds it: the drop is refused rather
    than queued behind it, and writers that come later wait for the drop and
    then find no collection), its per-collection (partial) indexes on every
    document table are dropped, its documents deleted and its row removed;
    on any error, nothing is.  Returns the number of documents deleted from
    ``model``'s table (rows of other document tables go with the collection
    too, through their foreign key).

    Args:
        missing_ok: a collection that does not exist is no error (0 deleted).

    Raises:
        CollectionNotFoundError: there is no collection called ``name`` (and
            ``missing_ok`` is False).  An alias is not dropped here: drop it
            with :func:`vectorstore.drop_alias`.
        ConflictError: a writer holds the collection, or an alias points to it.
    """
    check_collection_name(name)
    table = _document_table(model)
    try:
        with _transaction(bind, f"drop collection {name!r}") as session:
            info = _lock_for_drop(session, name)
            if info is None:
                if missing_ok:
                    return 0
                raise CollectionNotFoundError(f"no collection named {name!r}")
            pointing = session.execute(
                select(CollectionAlias.name).where(CollectionAlias.collection_id == info)
            ).scalars().all()  # fmt: skip
            if pointing:
                raise ConflictError(
                    f"collection {name!r} is the target of alias(es) {', '.join(pointing)}; "
                    "switch or drop them first"
                )
            for index in own_indexes(session, info):
                session.execute(text(f"DROP INDEX {index}"))
            if is_partitioned(
                session, table
            ):  # its partition's rows are counted, then dropped with it
                deleted = session.execute(
                    select(func.count()).where(model.collection_id == info)
                ).scalar_one()
                drop_partition(session, table, info)
            else:
                done: Any = session.execute(delete(model).where(model.collection_id == info))
                deleted = done.rowcount
            session.execute(delete(Collection).where(Collection.id == info))
    finally:
        forget(table)
    return int(deleted or 0)


def _lock_for_drop(session: Session, name: str) -> int | None:
    """Lock the collection's row (NOWAIT) and return its id, or None when there is none."""
    try:
        with session.begin_nested():
            found = session.execute(
                select(Collection.id).where(Collection.name == name).with_for_update(nowait=True)
            ).scalar_one_or_none()
    except sa_exc.DBAPIError as exc:
        if sqlstate(exc) != "55P03":
            raise
        raise ConflictError(
            f"collection {name!r} is being written (a writer holds it); "
            "drop it when the write is done"
        ) from exc
    return None if found is None else int(found)


def own_indexes(session: Session, collection_id: int) -> list[str]:
    """The quoted names of the collection's own (partial) indexes, on every document table.

    A document table is any table with a foreign key to the collections
    table; an index is the collection's own when its predicate is exactly
    ``collection_id = <id>``.
    """
    rows = session.execute(
        text(
            "SELECT DISTINCT quote_ident(n.nspname) || '.' || quote_ident(c.relname), "
            "pg_get_expr(i.indpred, i.indrelid) "
            "FROM pg_constraint f JOIN pg_index i ON i.indrelid = f.conrelid "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE f.contype = 'f' AND f.confrelid = CAST(:collections AS regclass) "
            "AND i.indpred IS NOT NULL ORDER BY 1"
        ),
        {"collections": Collection.__tablename__},
    ).all()
    return [
        str(index)
        for index, predicate in rows
        if (match := _OWN_PREDICATE.fullmatch(str(predicate)))
        and int(match.group(1)) == collection_id
    ]


def rename_collection(bind: Bindable, old: str, new: str, *, alias: bool = False) -> CollectionInfo:
    """Give collection ``old`` the name ``new`` (its documents and indexes stay as they are).

    Args:
        alias: also leave an alias ``old`` -> ``new`` in the same transaction,
            so repositories that use the old name go on working, unchanged
            (the usual first step of an online re-embedding: the old name
            becomes an alias that :func:`vectorstore.reembed` can switch).

    Raises:
        CollectionNotFoundError: there is no collection called ``old``.
        ConflictError: a collection or an alias called ``new`` exists already.
    """
    check_collection_name(old)
    check_collection_name(new)
    with _transaction(bind, f"rename collection {old!r}") as session:
        if old != new:
            claim_name(session, new, kind="collection")
        row = session.execute(
            update(Collection).where(Collection.name == old).values(name=new)
            .returning(Collection.id, Collection.embedding_model, Collection.dimension)
        ).one_or_none()  # fmt: skip
        if row is None:
            raise CollectionNotFoundError(f"no collection named {old!r}")
        if alias and old != new:
            session.execute(pg_insert(CollectionAlias).values(name=old, collection_id=row.id))
    return CollectionInfo(int(row.id), new, str(row.embedding_model), int(row.dimension))
