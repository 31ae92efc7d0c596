"""Keep the vector in the row: a document table's ``embedding`` is ``SET STORAGE MAIN``.

pgvector declares ``vector`` with storage ``EXTERNAL``: PostgreSQL moves it
out of line, uncompressed, as soon as a row passes its 2 KB toast threshold.
A 384-d embedding is 1,540 bytes, so a document with a few hundred
characters of text (and its stored ``tsvector``) crosses it, and every row
the exact strategy ranks then costs a TOAST index lookup and chunk read on
top of the heap tuple.  With ``MAIN`` PostgreSQL first compresses or moves
the text (``EXTENDED``) and keeps the vector in the heap tuple; it moves a
``MAIN`` column out of line only when the row is still too large.

Measured side by side on 100,000 rows of 200-1,500-character texts
(``docs/filtered-search.md``): ranking the rows of a filter exactly took
0.19-0.41x the time (1 %: 7.5 -> 1.5 ms, 30 %: 191 -> 78 ms); the heap grows
and the TOAST table shrinks.  The stored ``text_search`` tsvector is kept in
the row as well: with the vector inline it would otherwise be the column
moved out, and hybrid's text arm reads it for every matching row (4.4x
slower on a word in most rows; 1.36x with both columns ``MAIN``).

``ALTER TABLE ... SET STORAGE`` changes only how new row versions are
stored; existing rows keep their layout until the table is rewritten
(``VACUUM FULL``, ``CLUSTER``, pg_repack).  Partitions inherit the parent's
storage.
"""

from __future__ import annotations

from sqlalchemy import DDL, Table, event

__all__ = ["INLINE_COLUMNS", "column_storage_ddl", "declare_column_storage"]

#: The columns of a document table stored ``MAIN`` (when the table has them).
INLINE_COLUMNS = ("embedding", "text_search")
_INFO_KEY = "vectorstore_column_storage"


def _qualified(table: Table) -> str:
    return f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'


def column_storage_ddl(documents: Table) -> list[str]:
    """The ``ALTER TABLE`` that keeps ``documents``' vector (and stored tsvector) in the row.

    ``create_all`` runs it itself; an alembic revision that creates a
    document table of its own runs it after ``create_table``:
    ``for sql in column_storage_ddl(Model.__table__): op.execute(sql)``.
    Idempotent.
    """
    found = [name for name in INLINE_COLUMNS if name in documents.c]
    if not found:
        return []
    columns = ", ".join(f'ALTER COLUMN "{name}" SET STORAGE MAIN' for name in found)
    return [f"ALTER TABLE {_qualified(documents)} {columns}"]


def declare_column_storage(documents: Table) -> None:
    """Run :func:`column_storage_ddl` after ``documents`` is created (once per table)."""
    if documents.info.get(_INFO_KEY):
        return
    documents.info[_INFO_KEY] = True
    for sql in column_storage_ddl(documents):
        event.listen(documents, "after_create", DDL(sql))  # type: ignore[no-untyped-call]
