"""The ``metadata_index = "table"`` layout: metadata indexed in a shadow table, HOT updates.

Why: an UPDATE is *HOT* (heap-only: no index is touched) only when no
indexed column changed and the new row version fits on its page.  The
inline layout indexes ``metadata`` with a GIN index on the documents table,
so every metadata update is a new row version in every index, the HNSW graph
included: ~43x the cost of the same update without HNSW at 100,000 rows
(``docs/changing-data.md``).  With ``metadata_index = "table"``:

* the documents table keeps its ``metadata`` column (results, row-wise
  filters, exports read it as before) but has **no index on it**, and a
  ``fillfactor`` (:data:`FILLFACTOR`) that leaves room on each page for the
  new row versions: a metadata update is HOT, the HNSW graph is not touched;
* a narrow shadow table ``<table>_metadata`` (``document_id`` primary key,
  ``collection_id``, ``metadata``) carries the GIN (``jsonb_path_ops``)
  index.  The database keeps it exact, whoever writes: statement-level
  ``AFTER INSERT / UPDATE / DELETE`` triggers with transition tables (so a
  COPY, an ``INSERT ... SELECT``, the ORM and an app's raw SQL all pay one
  set-based statement per statement, not a trigger per row) and a
  ``TRUNCATE`` trigger.  The update trigger rewrites only the shadow rows
  whose metadata (or collection) changed (``IS DISTINCT FROM``);
* reads that an index on metadata makes fast (an exact ranking over the
  filtered rows, ``count`` / ``exists`` / ``list`` / ``iterate``, the
  batches of ``update_where`` / ``delete_where``, the planner's bounded
  count) add ``id IN (SELECT document_id FROM <table>_metadata WHERE
  collection_id = :c AND <the filter's metadata conjuncts>)`` to the
  unchanged filter; the HNSW strategies keep filtering row-wise.

What it costs: metadata written twice per insert (the shadow row and its GIN
entry; the GIN entry is what the inline layout writes anyway), a trigger
statement per write statement, a semi-join on the exact reads, and the
fillfactor's free space (the table is about 1 / fillfactor larger).

Refused (:class:`~vectorstore.ConfigurationError`): ``partition_by_collection
= True`` (the shadow would need partitions of its own) and row-level
security (the shadow would need its own policy): see ``docs/changing-data.md``.

Triggers are skipped under ``session_replication_role = replica``, as all
ordinary triggers are: a tool that loads that way must rebuild the shadow
(:func:`metadata_table_resync_sql`).
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    Table,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB

from vectorstore._sql_names import quoted_table
from vectorstore.errors import ConfigurationError

__all__ = [
    "FILLFACTOR",
    "MetadataIndex",
    "declare_metadata_table",
    "metadata_index_layout",
    "metadata_table",
    "metadata_table_ddl",
    "metadata_table_resync_sql",
]

#: A model's metadata index layout: ``DocumentMixin.metadata_index``.
MetadataIndex = Literal["inline", "table"]
#: The documents table's fillfactor in the ``"table"`` layout: the free space
#: per page a HOT update needs (measured in ``benchmarks/bench_update.py``).
FILLFACTOR = 80
#: ``Table.info`` key under which the documents table keeps its shadow table.
_INFO_KEY = "vectorstore_metadata_table"
_TRIGGERS = ("insert", "update", "delete", "truncate")


def metadata_index_layout(model: Any) -> MetadataIndex:
    """``model``'s ``metadata_index`` layout, checked (ConfigurationError if unknown)."""
    layout = getattr(model, "metadata_index", "inline")
    if layout == "inline" or layout == "table":
        return "inline" if layout == "inline" else "table"
    raise ConfigurationError(
        f"{getattr(model, '__name__', model)!s}.metadata_index must be 'inline' or 'table', "
        f"got {layout!r}"
    )


def metadata_table(model_or_table: Any) -> Table | None:
    """The shadow table of a ``metadata_index = "table"`` model (or its Table); else None."""
    table = getattr(model_or_table, "__table__", model_or_table)
    info = getattr(table, "info", None)
    found = info.get(_INFO_KEY) if isinstance(info, dict) else None
    return found if isinstance(found, Table) else None


def _name(table: Table, name: str) -> str:
    """``name`` qualified by ``table``'s schema (quoted), for function names."""
    return f'"{table.schema}".{name}' if table.schema else name


def _function(documents: Table, kind: str) -> str:
    return _name(documents, f"{documents.name}_metadata_{kind}"[:63])


def metadata_table_ddl(documents: Table) -> list[str]:
    """The statements that make ``documents`` (a ``"table"`` layout) keep its shadow exact.

    The fillfactor, the four trigger functions and their triggers; run after
    both tables exist (``create_all`` runs them itself; in an alembic
    revision: ``for sql in metadata_table_ddl(Model.__table__): op.execute(sql)``
    after the two ``create_table`` operations).  Idempotent.
    """
    shadow = metadata_table(documents)
    if shadow is None:
        raise ConfigurationError(f"{documents.name} does not use metadata_index = 'table'")
    docs, side = quoted_table(documents), quoted_table(shadow)
    bodies = {
        "insert": (
            f"INSERT INTO {side} (document_id, collection_id, metadata) "
            f"SELECT n.id, n.collection_id, n.metadata FROM vs_new n;"
        ),
        # Rows whose id changed leave and enter; the others are rewritten only
        # when their metadata or collection changed (a text or embedding
        # update writes nothing here).
        "update": (
            f"DELETE FROM {side} s USING vs_old o WHERE s.document_id = o.id "
            f"AND NOT EXISTS (SELECT 1 FROM vs_new n WHERE n.id = o.id); "
            f"INSERT INTO {side} (document_id, collection_id, metadata) "
            f"SELECT n.id, n.collection_id, n.metadata FROM vs_new n "
            f"WHERE NOT EXISTS (SELECT 1 FROM vs_old o WHERE o.id = n.id) "
            f"ON CONFLICT (document_id) DO UPDATE SET collection_id = EXCLUDED.collection_id, "
            f"metadata = EXCLUDED.metadata; "
            f"UPDATE {side} s SET collection_id = n.collection_id, metadata = n.metadata "
            f"FROM vs_new n JOIN vs_old o ON o.id = n.id WHERE s.document_id = n.id "
            f"AND (n.metadata IS DISTINCT FROM o.metadata "
            f"OR n.collection_id IS DISTINCT FROM o.collection_id);"
        ),
        "delete": f"DELETE FROM {side} s USING vs_old o WHERE s.document_id = o.id;",
        "truncate": f"TRUNCATE {side};",
    }
    references = {
        "insert": "REFERENCING NEW TABLE AS vs_new ",
        "update": "REFERENCING OLD TABLE AS vs_old NEW TABLE AS vs_new ",
        "delete": "REFERENCING OLD TABLE AS vs_old ",
        "truncate": "",
    }
    out = [f"ALTER TABLE {docs} SET (fillfactor = {FILLFACTOR})"]
    for kind in _TRIGGERS:
        function = _function(documents, kind)
        out.append(
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$vs$ BEGIN {bodies[kind]} RETURN NULL; END $vs$"
        )
        trigger = f"vs_metadata_{kind}"
        out.append(f"DROP TRIGGER IF EXISTS {trigger} ON {docs}")
        out.append(
            f"CREATE TRIGGER {trigger} AFTER {kind.upper()} ON {docs} {references[kind]}"
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    return out


def drop_ddl(documents: Table) -> list[str]:
    """The trigger functions' DROP (their triggers go with them)."""
    return [f"DROP FUNCTION IF EXISTS {_function(documents, k)}() CASCADE" for k in _TRIGGERS]


def metadata_table_resync_sql(documents: Table) -> list[str]:
    """Statements that rebuild the shadow from the documents (after writes without triggers)."""
    shadow = metadata_table(documents)
    if shadow is None:
        raise ConfigurationError(f"{documents.name} does not use metadata_index = 'table'")
    side = quoted_table(shadow)
    return [
        f"TRUNCATE {side}",
        f"INSERT INTO {side} (document_id, collection_id, metadata) "
        f"SELECT id, collection_id, metadata FROM {quoted_table(documents)}",
    ]


def declare_metadata_table(documents: Table, metadata: MetaData) -> Table:
    """Declare ``documents``' shadow table in ``metadata``, with the DDL that wires it.

    Created after the documents table (a dependency, not a foreign key: the
    triggers keep the two in step, and a foreign key would check every row
    of a load twice); ``create_all`` then runs :func:`metadata_table_ddl`,
    ``drop_all`` drops the trigger functions.
    """
    found = metadata_table(documents)
    if found is not None:
        return found
    name = f"{documents.name}_metadata"
    if len(name) > 63:
        raise ConfigurationError(
            f"the metadata table name {name!r} is longer than PostgreSQL's 63 characters; "
            f"use a shorter __tablename__"
        )
    shadow = Table(
        name,
        metadata,
        Column("document_id", BigInteger, primary_key=True, autoincrement=False),
        Column("collection_id", Integer, nullable=False),
        Column("metadata", JSONB, nullable=False),
        Index(
            f"ix_{name}"[:63],
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ),
        schema=documents.schema,
        info={"vectorstore_shadow_of": documents},
    )
    shadow.add_is_dependent_on(documents)
    documents.info[_INFO_KEY] = shadow
    for sql in metadata_table_ddl(documents):
        event.listen(shadow, "after_create", DDL(sql.replace("%", "%%")))  # type: ignore[no-untyped-call]
    for sql in drop_ddl(documents):
        event.listen(shadow, "before_drop", DDL(sql.replace("%", "%%")))  # type: ignore[no-untyped-call]
    return shadow
