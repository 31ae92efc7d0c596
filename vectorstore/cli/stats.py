"""What ``vectorstore stats`` reports, gathered from the catalog in one read-only pass.

Kept apart from the CLI so the numbers are a plain dictionary (printed as a
table or as JSON) and can be tested without parsing terminal output.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from ._common import (
    EXIT_OK,
    add_document_model_argument,
    document_model,
    engine_for,
    out,
    size,
    table,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["add_stats_command", "gather_stats"]

_INDEXES = """
    SELECT i.relname AS name, am.amname AS method, pg_relation_size(i.oid) AS bytes,
           t.relname AS table_name
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class t ON t.oid = x.indrelid
    JOIN pg_am am ON am.oid = i.relam
    WHERE t.relname LIKE 'vectorstore\\_%' AND t.relname <> :version_table
    ORDER BY t.relname, i.relname
    """

_COLLECTIONS = """
    SELECT c.name, c.embedding_model, c.dimension,
           (SELECT count(*) FROM vectorstore_documents d WHERE d.collection_id = c.id) AS rows
    FROM vectorstore_collections c
    ORDER BY c.name
    """


def gather_stats(engine: Engine) -> dict[str, Any]:
    """Server and pgvector versions, schema revision, collections, rows and index sizes."""
    from sqlalchemy import text

    from vectorstore.errors import db_errors
    from vectorstore.schema.migrate import VERSION_TABLE

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
            collections = [dict(row._mapping) for row in conn.execute(text(_COLLECTIONS))]
            documents = int(
                conn.execute(text("SELECT count(*) FROM vectorstore_documents")).scalar_one()
            )
            table_bytes = int(
                conn.execute(
                    text("SELECT pg_total_relation_size('vectorstore_documents')")
                ).scalar_one()
            )
        indexes = [
            dict(row._mapping)
            for row in conn.execute(text(_INDEXES), {"version_table": VERSION_TABLE})
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


def cmd_stats(args: argparse.Namespace) -> int:
    model = document_model(args.model) if args.model else None
    engine = engine_for(args)
    try:
        stats = gather_stats(engine)
        if model is not None:  # the collections' rows in the app's own document table
            from vectorstore.schema.collections import list_collections

            stats["collections"] = [
                {"name": c.name, "embedding_model": c.embedding_model, "dimension": c.dimension,
                 "rows": c.rows}
                for c in list_collections(engine, model=model)
            ]  # fmt: skip
    finally:
        engine.dispose()
    if args.json:
        out(json.dumps(stats, indent=2, default=str))
        return EXIT_OK
    out(f"server:    PostgreSQL {stats['server_version']}, pgvector {stats['pgvector_version']}")
    out(f"schema:    {stats['schema_revision'] or 'not migrated'}")
    out(f"documents: {stats['documents']} rows, table {size(stats['table_bytes'])}")
    out("")
    rows = [
        (c["name"], c["embedding_model"], c["dimension"], c["rows"]) for c in stats["collections"]
    ]
    out(table(["collection", "model", "dim", "rows"], rows) if rows else "no collections")
    out("")
    idx = [(i["name"], i["method"], size(i["bytes"])) for i in stats["indexes"]]
    out(table(["index", "method", "size"], idx) if idx else "no indexes")
    return EXIT_OK


def add_stats_command(commands: Any) -> None:
    """Register ``stats``."""
    stats = commands.add_parser("stats", help="collections, rows, index sizes, pgvector version")
    stats.add_argument("--json", action="store_true", help="print JSON instead of tables")
    add_document_model_argument(stats)
    stats.set_defaults(func=cmd_stats)
