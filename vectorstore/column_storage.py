"""Keep what a ranking reads in the row: ``embedding``, ``metadata``, ``text_search`` are MAIN.

pgvector declares ``vector`` with storage ``EXTERNAL``: PostgreSQL moves it
out of line, uncompressed, as soon as a row passes its 2 KB toast threshold.
A 384-d embedding is 1,540 bytes, so a document with a few hundred
characters of text (and its stored ``tsvector``) crosses it, and every row
the exact strategy ranks then costs a TOAST index lookup and chunk read on
top of the heap tuple.  With ``MAIN`` PostgreSQL first compresses or moves
the text (``EXTENDED``) and keeps the vector in the heap tuple; it moves a
``MAIN`` column out of line only when the row is still too large.

Every column a filtered ranking reads must be ``MAIN``, not only the vector:
the toaster moves *every* ``EXTENDED`` value longer than a TOAST pointer out
before it touches a ``MAIN`` one, so with only the vector and the tsvector
kept in, a 20-byte ``metadata`` went out of line in 98 % of the rows and the
GIN filter's recheck paid the TOAST lookup instead (exact ranking at 1 %:
7.2 ms, as slow as with the vector out).  What the toaster moves out now is
the text and, in most rows, the 32-byte ``content_hash``.

Measured side by side on 100,000 rows of 200-1,500-character texts
(``docs/filtered-search.md``): ranking a filter's rows exactly through the
GIN index took 0.29-0.36x the time (1 %: 6.5 -> 1.9 ms, 10 %: 58.1 -> 20.1
ms, 30 %: 213 -> 77 ms; ``benchmarks/bench_column_storage.py``); the heap
grows (121 -> 260 MiB) and the TOAST table shrinks.  The stored
``text_search`` tsvector stays in the row too: hybrid's text arm reads it
for every matching row, and out of line it made the text arm 3.8x slower
on a word in 93 % of the rows (1.1x with it in).

``ALTER TABLE ... SET STORAGE`` changes only how new row versions are
stored; existing rows keep their layout until the table is rewritten
(``VACUUM FULL``, ``CLUSTER``, pg_repack).  Partitions inherit the parent's
storage.
"""

from __future__ import annotations

from sqlalchemy import DDL, Table, event

from vectorstore._sql_names import quoted_table

__all__ = ["INLINE_COLUMNS", "column_storage_ddl", "declare_column_storage"]

#: The columns of a document table stored ``MAIN`` (when the table has them).
INLINE_COLUMNS = ("embedding", "metadata", "text_search")
_INFO_KEY = "vectorstore_column_storage"


def column_storage_ddl(documents: Table) -> list[str]:
    """The ``ALTER TABLE`` that keeps ``documents``' vector, metadata and tsvector in the row.

    ``create_all`` runs it itself; an alembic revision that creates a
    document table of its own runs it after ``create_table``:
    ``for sql in column_storage_ddl(Model.__table__): op.execute(sql)``.
    Idempotent.
    """
    found = [name for name in INLINE_COLUMNS if name in documents.c]
    if not found:
        return []
    columns = ", ".join(f'ALTER COLUMN "{name}" SET STORAGE MAIN' for name in found)
    return [f"ALTER TABLE {quoted_table(documents)} {columns}"]


def declare_column_storage(documents: Table) -> None:
    """Run :func:`column_storage_ddl` after ``documents`` is created (once per table)."""
    if documents.info.get(_INFO_KEY):
        return
    documents.info[_INFO_KEY] = True
    for sql in column_storage_ddl(documents):
        event.listen(documents, "after_create", DDL(sql))  # type: ignore[no-untyped-call]
