"""What ``vectorstore stats`` reports, gathered from the catalog in one read-only pass.

Kept apart from the CLI so the numbers are a plain dictionary (printed as a
table or as JSON) and can be tested without parsing terminal output.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from .errors import db_errors
from .migrate import VERSION_TABLE

__all__ = ["gather_stats"]

_INDEXES = text(
    """
    SELECT i.relname AS name, am.amname AS method, pg_relation_size(i.oid) AS bytes,
           t.relname AS table_name
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class t ON t.oid = x.indrelid
    JOIN pg_am am ON am.oid = i.relam
    WHERE t.relname LIKE 'vectorstore\\_%' AND t.relname <> :version_table
    ORDER BY t.relname, i.relname
    """
)

_COLLECTIONS = text(
    """
    SELECT c.name, c.embedding_model, c.dimension,
           (SELECT count(*) FROM vectorstore_documents d WHERE d.collection_id = c.id) AS rows
    FROM vectorstore_collections c
    ORDER BY c.name
    """
)


def gather_stats(engine: Engine) -> dict[str, Any]:
    """Server and pgvector versions, schema revision, collections, rows and index sizes."""
    with db_errors("read statistics"), engine.connect() as conn:
        server_version = conn.execute(text("SHOW server_version")).scalar_one()
        pgvector = conn.execute(
            text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar_one_or_none()
        has_version_table = conn.execute(
            text("SELECT to_regclass(:t) IS NOT NULL"), {"t": VERSION_TABLE}
        ).scalar_one()
        revision = (
            conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one_or_none()
            if has_version_table
            else None
        )
        has_tables = conn.execute(
            text("SELECT to_regclass('vectorstore_documents') IS NOT NULL")
        ).scalar_one()
        collections: list[dict[str, Any]] = []
        documents = 0
        table_bytes = None
        if has_tables:
            collections = [dict(row._mapping) for row in conn.execute(_COLLECTIONS)]
            documents = int(
                conn.execute(text("SELECT count(*) FROM vectorstore_documents")).scalar_one()
            )
            table_bytes = int(
                conn.execute(
                    text("SELECT pg_total_relation_size('vectorstore_documents')")
                ).scalar_one()
            )
        indexes = [
            dict(row._mapping) for row in conn.execute(_INDEXES, {"version_table": VERSION_TABLE})
        ]
    return {
        "server_version": str(server_version),
        "pgvector_version": pgvector or "not installed",
        "schema_revision": revision,
        "documents": documents,
        "table_bytes": table_bytes,
        "collections": collections,
        "indexes": indexes,
    }
