"""``python manage.py ingest_file PATH``: an app's own command on the shipped integration.

(``manage.py vectorstore_ingest`` ships with the app and skips texts already
embedded; this one shows a custom command: a DataFrame, ``bulk_add`` and an
``on_conflict`` policy, in one ``repository()`` block = one transaction.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import vectorstore as vs
from vectorstore.integrations import django as vectorstore

_READERS = {".csv": "read_csv", ".parquet": "read_parquet", ".jsonl": "read_json",
            ".ndjson": "read_json"}  # fmt: skip


class Command(BaseCommand):
    help = "Embed and store the documents of a CSV, JSONL or parquet file (one row each)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--text-column", default="text")
        parser.add_argument("--id-column", default=None)
        parser.add_argument("--metadata-columns", default="", help="comma separated")
        parser.add_argument("--on-conflict", choices=("error", "skip", "update"), default="skip")

    def handle(self, *args: Any, **options: Any) -> None:
        import pandas as pd

        path = Path(options["path"])
        reader = _READERS.get(path.suffix.lower())
        if reader is None:
            raise CommandError(f"{path.name}: expected .csv, .jsonl, .ndjson or .parquet")
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        kwargs = {"lines": True} if reader == "read_json" else {}
        frame = getattr(pd, reader)(path, **kwargs)
        meta = [c.strip() for c in options["metadata_columns"].split(",") if c.strip()]
        columns: dict[str, Any] = {"text_column": options["text_column"]}
        if options["id_column"]:
            columns["id_column"] = options["id_column"]
        if meta:
            columns["metadata_columns"] = meta
        try:
            with vectorstore.repository() as repo:
                result = repo.bulk_add(frame, on_conflict=options["on_conflict"], **columns)
        except vs.VectorStoreError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"inserted {result.inserted}, skipped {result.skipped}, updated {result.updated}, "
            f"embedded {result.embedded}"
        )
