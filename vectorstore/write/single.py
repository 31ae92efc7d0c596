"""The single-row write path of a standalone repository: one INSERT, no Session.

``add`` is the event-stream path, where a caller waits for each row.  Through a
Session it costs the unit of work, the identity map and pgvector's per-float
Python formatting of the vector: about as much client time as the round trip
itself.  A standalone repository owns its transaction and returns a detached
row anyway, so here the statement text is built once per table, executed with
``exec_driver_sql`` on a pooled connection (SQLAlchemy still handles pre-ping,
invalidation on disconnect and the transaction), and the returned document is
built straight from the validated batch plus the ``RETURNING`` columns.

Its metadata is what the database stored, not the caller's mapping: the JSON
text that was sent, parsed back.  JSON turns keys into strings (``{1: "a"}``
is stored as ``{"1": "a"}``) and tuples into lists, and ``get()`` returns the
stored form, so ``add(...).metadata_`` must too.  Parsing one row's JSON costs
microseconds against the round trip; it also means the returned document
shares no mutable object with the caller's input.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import make_transient_to_detached

from vectorstore._vector import vector_literal

from .batch import Batch

__all__ = ["insert_one"]

_SQL_CACHE: dict[tuple[int, str], str] = {}  # (table, dialect:paramstyle) -> SQL


def _insert_sql(engine: Engine, table: Any) -> str:
    style = engine.dialect.paramstyle
    key = (id(table), f"{engine.dialect.name}:{style}")
    sql = _SQL_CACHE.get(key)
    if sql is None:
        preparer = engine.dialect.identifier_preparer
        q = preparer.quote
        # psycopg2 / psycopg take %s; asyncpg (through SQLAlchemy) takes $1, $2, ...
        p = [f"${i}" for i in range(1, 7)] if style == "numeric_dollar" else ["%s"] * 6
        sql = (
            f"INSERT INTO {preparer.format_table(table)} "
            f"({q('collection_id')}, {q('external_id')}, {q('text')}, {q('content_hash')}, "
            f"{q('metadata')}, {q('embedding')}) "
            f"VALUES ({p[0]}, {p[1]}, {p[2]}, {p[3]}, {p[4]}::jsonb, {p[5]}::vector) "
            f"RETURNING {q('id')}, {q('created_at')}"
        )
        _SQL_CACHE[key] = sql
    return sql


def insert_one(engine: Engine, model: Any, batch: Batch, collection_id: int) -> Any:
    """Insert row 0 of ``batch`` in its own transaction; return it as a detached document."""
    params = (
        collection_id,
        batch.external_ids[0],
        batch.texts[0],
        batch.hashes[0],
        batch.metadata_json[0].decode("utf-8"),
        vector_literal(batch.embeddings[0]),
    )
    with engine.begin() as conn:
        row = conn.exec_driver_sql(_insert_sql(engine, model.__table__), params).one()
    doc = model.__mapper__.class_manager.new_instance()
    doc.__dict__.update(
        id=row[0],
        created_at=row[1],
        collection_id=collection_id,
        external_id=batch.external_ids[0],
        text=batch.texts[0],
        content_hash=batch.hashes[0],
        metadata_=json.loads(batch.metadata_json[0]),  # the stored form: see the module doc
        embedding=batch.embeddings[0].tolist(),
    )
    make_transient_to_detached(doc)
    return doc
