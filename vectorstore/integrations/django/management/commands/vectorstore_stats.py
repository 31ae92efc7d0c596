"""``manage.py vectorstore_stats``: collections, rows, index sizes, pgvector version."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import vectorstore as vs
from vectorstore.cli._common import size, table
from vectorstore.cli.stats import gather_stats
from vectorstore.integrations.django import engine


class Command(BaseCommand):  # type: ignore[misc]
    help = "vectorstore's collections, rows and indexes (as `vectorstore stats`)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
        parser.add_argument("--database", default=None, help="a DATABASES alias")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            stats = gather_stats(engine(options["database"]))
        except vs.VectorStoreError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(stats, indent=2, default=str))
            return
        self.stdout.write(
            f"server:    PostgreSQL {stats['server_version']}, "
            f"pgvector {stats['pgvector_version']}\n"
            f"schema:    {stats['schema_revision'] or 'not migrated'}\n"
            f"documents: {stats['documents']} rows, table {size(stats['table_bytes'])}"
        )
        rows = [(c["name"], c["embedding_model"], c["dimension"], c["rows"])
                for c in stats["collections"]]  # fmt: skip
        self.stdout.write(table(["collection", "model", "dim", "rows"], rows) if rows
                          else "no collections")  # fmt: skip
        idx = [(i["name"], i["method"], size(i["bytes"])) for i in stats["indexes"]]
        self.stdout.write(table(["index", "method", "size"], idx) if idx else "no indexes")
