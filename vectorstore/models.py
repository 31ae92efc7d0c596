"""The schema as typed SQLAlchemy 2.0 models.

Two tables by default: ``vectorstore_collections`` (a namespace that records
which embedding model and dimension produced its vectors) and
``vectorstore_documents``.  Apps that want their own table name, PostgreSQL
schema or dimension subclass :class:`DocumentMixin` on their own declarative
base and hand the class to :class:`~vectorstore.DocumentRepository`::

    class ProductDoc(DocumentMixin, AppBase):
        __tablename__ = "product_docs"
        table_schema = "catalog"
        embedding_dimension = 768

Why each index exists (names are deterministic via the naming convention):

* ``uq_<table>_collection_id_external_id`` (btree, unique): idempotent
  re-ingest; the ``ON CONFLICT`` target of ``bulk_add`` and lookups by external id.
  NULL external ids never conflict.
* ``ix_<table>_collection_id_content_hash`` (btree): "is this text already
  embedded in this collection?", the pipeline's skip check.
* ``ix_<table>_metadata`` (GIN, ``jsonb_path_ops``): metadata filters on
  equality and containment (``@>``).  ``jsonb_path_ops`` hashes each value
  with its path, so ``{"tenant": 7}`` finds only the rows where *tenant* is 7
  (``jsonb_ops`` indexes keys and values apart and rechecks every row where
  any key is 7); it cannot serve key existence (``?``, the ``$exists``
  filter), which is rarely selective.
* ``ix_<table>_embedding_hnsw`` (HNSW, ``vector_cosine_ops``): approximate
  nearest neighbours by cosine distance, the default metric.
* ``ix_<table>_text_search`` (GIN): full-text search for hybrid ranking.
  Its layout is the model's ``full_text_search`` choice.  ``"stored"`` (the
  default): a generated, stored ``text_search`` tsvector column
  (``to_tsvector('english'::regconfig, text)``) with the GIN index on it; a
  COPY computes the tsvector for every row it writes, and the text arm of a
  hybrid query reads it ready-made.  ``"expression"``: no column, the GIN
  index is on the expression itself; a COPY runs near the speed of a bare
  table, but the text arm computes the tsvector again for every row the index
  matched, so a broad query is about 7-16x slower (measured:
  ``docs/full-text-search.md``).  ``False``: no full text, no hybrid search.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Computed,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from vectorstore.column_storage import declare_column_storage
from vectorstore.errors import ConfigurationError
from vectorstore.metadata_keys import declared_keys, key_indexes
from vectorstore.metadata_table import MetadataIndex, declare_metadata_table, metadata_index_layout

__all__ = [
    "DEFAULT_DIMENSION",
    "DEFAULT_MODEL_NAME",
    "INGEST_LEDGER",
    "NAMING_CONVENTION",
    "STAGE_PARTS",
    "STAGE_ROWS",
    "Base",
    "Collection",
    "CollectionAlias",
    "Document",
    "DocumentMixin",
    "FullTextSearch",
    "embedding_dimension",
    "full_text_layout",
    "partitioned_by_collection",
    "secondary_indexes",
    "text_search_vector",
]

DEFAULT_DIMENSION = 384
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
TEXT_SEARCH_CONFIG = "english"
#: The full-text expression: the stored column's generation expression, or the
#: indexed expression of the ``"expression"`` layout (hybrid spells it exactly).
TEXT_SEARCH_SQL = f"to_tsvector('{TEXT_SEARCH_CONFIG}'::regconfig, text)"

#: A model's full-text layout: ``DocumentMixin.full_text_search``.
FullTextSearch = Literal["stored", "expression", False]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of vectorstore's own tables (the migrations' target metadata)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Collection(Base):
    """A namespace of documents embedded by one model at one dimension."""

    __tablename__ = "vectorstore_collections"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    embedding_model: Mapped[str] = mapped_column(Text)
    dimension: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    #: The backend and precision that produced the vectors (revision 0009; NULL: not recorded).
    embedding_backend: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)

    def __repr__(self) -> str:
        return (
            f"Collection(id={self.id!r}, name={self.name!r}, "
            f"embedding_model={self.embedding_model!r}, dimension={self.dimension!r})"
        )


class CollectionAlias(Base):
    """A second name for a collection: readers and writers resolve it at each call.

    ``previous_collection_id`` is the collection the alias pointed to before
    its last switch (what a rollback switches back to); ``table_name`` is the
    document table that holds the target's rows, when the switch knew it.
    """

    __tablename__ = "vectorstore_aliases"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey(
            Collection.__table__.c.id, ondelete="RESTRICT", name="fk_vectorstore_aliases_collection"
        ),
        index=True,
    )
    table_name: Mapped[str | None] = mapped_column(Text)
    previous_collection_id: Mapped[int | None] = mapped_column(
        ForeignKey(
            Collection.__table__.c.id, ondelete="SET NULL", name="fk_vectorstore_aliases_previous"
        )
    )
    previous_table_name: Mapped[str | None] = mapped_column(Text)
    switched_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    def __repr__(self) -> str:
        return f"CollectionAlias(name={self.name!r}, collection_id={self.collection_id!r})"


def full_text_layout(model: Any) -> FullTextSearch:
    """``model``'s ``full_text_search`` layout, checked (ConfigurationError if unknown)."""
    layout = getattr(model, "full_text_search", "stored")
    if layout is False:
        return False
    if layout == "stored" or layout == "expression":
        return "stored" if layout == "stored" else "expression"
    raise ConfigurationError(
        f"{getattr(model, '__name__', model)!s}.full_text_search must be "
        f"'stored', 'expression' or False, got {layout!r}"
    )


class DocumentMixin:
    """The columns and indexes of a document table; mix into a mapped class.

    Class attributes to override: ``embedding_dimension`` (default 384),
    ``table_schema`` (default: the connection's search path) and
    ``full_text_search``, the full-text layout that hybrid search uses:
    ``"stored"`` (default: a generated stored ``text_search`` tsvector column
    and a GIN index on it), ``"expression"`` (a GIN index on
    ``to_tsvector('english', text)``, no column: cheaper loads, a slower
    text arm on broad hybrid queries) or ``False`` (no full text; hybrid
    search on the model is refused).  ``partition_by_collection = True``
    (default False): the table is LIST-partitioned by collection, one
    partition per tenant with its own HNSW and GIN indexes (see
    ``docs/tenants.md``).  Defining your own ``__table_args__`` replaces the
    indexes declared here.
    """

    embedding_dimension: ClassVar[int] = DEFAULT_DIMENSION
    table_schema: ClassVar[str | None] = None
    full_text_search: ClassVar[FullTextSearch] = "stored"
    partition_by_collection: ClassVar[bool] = False
    #: ``"inline"`` (default: a GIN index on the table's ``metadata``) or
    #: ``"table"`` (the GIN index on a shadow table kept by triggers, so
    #: metadata updates are HOT: see :mod:`vectorstore.metadata_table`).
    metadata_index: ClassVar[MetadataIndex] = "inline"
    #: Top-level metadata keys with a btree index of their own on
    #: ``(collection_id, metadata -> 'key')``: filters on them (equality, ``$in``,
    #: ranges) use it instead of the GIN index (see :mod:`vectorstore.metadata_keys`).
    indexed_metadata_keys: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)  # declarative maps the class here
        table = cls.__dict__.get("__table__")
        if not isinstance(table, Table):
            return
        declare_column_storage(table)
        if metadata_index_layout(cls) != "table":
            return
        if declared_keys(cls):
            raise ConfigurationError(
                f"{cls.__name__}: metadata_index = 'table' cannot be combined with "
                f"indexed_metadata_keys (their indexes would be on the documents table, "
                f"which the 'table' layout keeps free of metadata indexes); use one or the other"
            )
        if partitioned_by_collection(cls):
            raise ConfigurationError(
                f"{cls.__name__}: metadata_index = 'table' cannot be combined with "
                f"partition_by_collection = True (the metadata table is not partitioned); "
                f"use one or the other"
            )
        declare_metadata_table(table, table.metadata)

    @declared_attr
    def id(cls) -> Mapped[int]:
        # Partitioned: the primary key is (collection_id, id), declared in __table_args__.
        return mapped_column(
            BigInteger, Identity(), primary_key=not partitioned_by_collection(cls), sort_order=-1
        )

    external_id: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[bytes] = mapped_column(LargeBinary)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, server_default=sql_text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    @declared_attr
    def collection_id(cls) -> Mapped[int]:
        # A Column object (not a string) so an app's own metadata can reference our table.
        return mapped_column(
            ForeignKey(Collection.__table__.c.id, ondelete="CASCADE"), nullable=False
        )

    @declared_attr
    def embedding(cls) -> Mapped[list[float]]:
        return mapped_column(Vector(cls.embedding_dimension), nullable=False)

    @declared_attr
    def text_search(cls) -> Mapped[Any]:
        # Only the "stored" layout has the column (None: not mapped, not in the table).
        if full_text_layout(cls) != "stored":
            return None  # type: ignore[return-value]
        return mapped_column(TSVECTOR, Computed(TEXT_SEARCH_SQL, persisted=True), deferred=True)

    @declared_attr.directive
    def __table_args__(cls) -> Any:
        table = cls.__tablename__  # type: ignore[attr-defined]
        unique = UniqueConstraint("collection_id", "external_id")
        keys = declared_keys(cls)  # checked here, when the class is defined
        if partitioned_by_collection(cls):
            # LIST-partitioned by collection: the key is part of the primary key
            # (PostgreSQL requires it); the secondary indexes live on each
            # tenant's partition (vectorstore.schema.partitions), not here.
            args: tuple[Any, ...] = (PrimaryKeyConstraint("collection_id", "id"), unique)
            options: dict[str, Any] = {"postgresql_partition_by": "LIST (collection_id)"}
        else:
            inline = metadata_index_layout(cls) == "inline"
            args = (unique, *secondary_indexes(table, full_text_layout(cls), metadata=inline,
                                               keys=keys))  # fmt: skip
            options = {}
        if cls.table_schema:
            options["schema"] = cls.table_schema
        return (*args, options) if options else args

    @declared_attr.directive
    def __mapper_args__(cls) -> Any:
        # A partitioned table's primary key is (collection_id, id); ids stay
        # unique across tenants (one identity sequence) and identify a row.
        if partitioned_by_collection(cls):
            return {"primary_key": [cls.__table__.c.id]}  # type: ignore[attr-defined]
        return {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(id={self.id!r}, external_id={self.external_id!r}, "
            f"text={self.text[:40]!r})"
        )


def partitioned_by_collection(model: Any) -> bool:
    """``model``'s ``partition_by_collection`` choice (ConfigurationError if not a bool)."""
    chosen = getattr(model, "partition_by_collection", False)
    if chosen is not True and chosen is not False:
        raise ConfigurationError(
            f"{getattr(model, '__name__', model)!s}.partition_by_collection must be True or "
            f"False, got {chosen!r}"
        )
    return chosen


def secondary_indexes(
    table: str, layout: FullTextSearch, *, metadata: bool = True, keys: tuple[str, ...] = ()
) -> tuple[Index, ...]:
    """The btree, GIN and HNSW indexes of a document table called ``table`` (unbound).

    The default layout declares them on the table; the partitioned layout
    builds the same ones on every tenant's partition.  ``metadata=False``
    (the ``metadata_index = "table"`` layout): no GIN index on ``metadata``.
    ``keys``: the model's ``indexed_metadata_keys``, one btree each, last.
    """
    gin = Index(
        f"ix_{table}_metadata",
        "metadata",
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    )
    found: tuple[Index, ...] = (
        Index(None, "collection_id", "content_hash"),
        *((gin,) if metadata else ()),
        Index(
            f"ix_{table}_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
    )
    if layout == "stored":
        found = (*found, Index(f"ix_{table}_text_search", "text_search", postgresql_using="gin"))
    elif layout == "expression":
        text_index = Index(
            f"ix_{table}_text_search", sql_text(TEXT_SEARCH_SQL), postgresql_using="gin"
        )
        found = (*found, text_index)
    return (*found, *key_indexes(table, keys))


class Document(DocumentMixin, Base):
    """The default document model: ``vectorstore_documents``, ``Vector(384)``."""

    __tablename__ = "vectorstore_documents"


def text_search_vector(model: Any) -> ColumnElement[Any]:
    """The tsvector the text arm of a hybrid query matches and ranks on ``model``'s table.

    ``"stored"`` layout: the generated ``text_search`` column.  ``"expression"``:
    ``to_tsvector('english'::regconfig, text)``, spelled like the indexed
    expression; the configuration is a literal in the SQL (not a bound
    parameter), so a generic plan of a prepared statement still matches the
    expression index.
    """
    if full_text_layout(model) == "stored":
        column: ColumnElement[Any] = model.__table__.c.text_search
        return column
    config: ColumnElement[Any] = literal_column(f"'{TEXT_SEARCH_CONFIG}'::regconfig")
    return func.to_tsvector(config, model.__table__.c.text, type_=TSVECTOR)


def embedding_dimension(model: Any) -> int:
    """The dimension of a mapped document class's ``embedding`` column."""
    return int(model.__table__.c.embedding.type.dim)


# The staging area and ledger of staged writes (vectorstore.write.stage, migration
# 0008): plain tables, no mapped classes; the staging ones are UNLOGGED.
STAGE_PARTS = Table(
    "vectorstore_stage_parts",
    Base.metadata,
    Column("slot", Integer, primary_key=True, autoincrement=True),
    Column("stage", Text, nullable=False),
    Column("part", Text, nullable=False),
    Column("rows", BigInteger, nullable=False, server_default=sql_text("0")),
    Column("staged_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("stage", "part", name="uq_vectorstore_stage_parts"),
)
STAGE_ROWS = Table(
    "vectorstore_stage_rows",
    Base.metadata,
    Column("slot", Integer, nullable=False),
    Column("ord", BigInteger, Identity(), nullable=False),
    Column("content_hash", LargeBinary),
    Column("embedding", Vector()),
    Column("external_id", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("metadata", JSONB),
    PrimaryKeyConstraint("ord", name="pk_vectorstore_stage_rows"),
    Index("ix_vectorstore_stage_rows_slot", "slot"),
)
INGEST_LEDGER = Table(
    "vectorstore_ingest_ledger",
    Base.metadata,
    Column("stream", Text, nullable=False),
    Column("batch", BigInteger, nullable=False),
    Column("collection_id", Integer),
    Column("inserted", BigInteger, nullable=False, server_default=sql_text("0")),
    Column("updated", BigInteger, nullable=False, server_default=sql_text("0")),
    Column("skipped", BigInteger, nullable=False, server_default=sql_text("0")),
    Column("merged_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("stream", "batch", name="pk_vectorstore_ingest_ledger"),
)
