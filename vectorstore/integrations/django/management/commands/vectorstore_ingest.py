"""``manage.py vectorstore_ingest PATH``: load a parquet, CSV or JSONL file into a collection.

One transaction on Django's connection (all or nothing); texts the collection
stores already are not embedded again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import vectorstore as vs
from vectorstore.integrations.django import repository

_SOURCES = (".parquet", ".csv", ".jsonl", ".ndjson")


class Command(BaseCommand):  # type: ignore[misc]
    help = "Embed and store the rows of a parquet, CSV or JSONL file (one document each)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--collection", "-c", default=None, help="default: VECTORSTORE's")
        parser.add_argument("--text-column", default="text")
        parser.add_argument("--id-column", default=None)
        parser.add_argument("--metadata-columns", default="", help="comma separated")
        parser.add_argument("--on-conflict", choices=("error", "skip", "update"), default="skip")
        parser.add_argument("--database", default=None, help="a DATABASES alias")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        if path.suffix.lower() not in _SOURCES:
            raise CommandError(f"{path.name}: expected a {', '.join(_SOURCES)} file")
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        columns: dict[str, Any] = {"text_column": options["text_column"]}
        if options["id_column"]:
            columns["id_column"] = options["id_column"]
        meta = [c.strip() for c in options["metadata_columns"].split(",") if c.strip()]
        if meta:
            columns["metadata_columns"] = meta
        try:
            with repository(options["collection"], using=options["database"]) as repo:
                result = vs.ingest(path, repository=repo, on_conflict=options["on_conflict"],
                                   **columns)  # fmt: skip
        except vs.VectorStoreError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{result.rows} rows: inserted {result.inserted}, skipped {result.skipped}, "
            f"updated {result.updated}, already stored {result.known}; embedded {result.embedded}"
        )
