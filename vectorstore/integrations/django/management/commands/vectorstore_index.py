"""``manage.py vectorstore_index``: build (or ``--drop``) an HNSW or IVFFlat index."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import vectorstore as vs
from vectorstore.integrations.django import repository


class Command(BaseCommand):  # type: ignore[misc]
    help = "Build an ANN index on vectorstore's documents (or drop one by name)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--method", choices=("hnsw", "ivfflat"), default="hnsw")
        parser.add_argument("--metric", choices=("cosine", "l2", "inner_product", "l1"),
                            default="cosine")  # fmt: skip
        parser.add_argument("--m", type=int, default=None, help="HNSW: links per node")
        parser.add_argument("--ef-construction", type=int, default=None, help="HNSW: build beam")
        parser.add_argument("--lists", type=int, default=None, help="IVFFlat: lists")
        parser.add_argument("--collection", "-c", default=None,
                            help="a partial index for this collection only")  # fmt: skip
        parser.add_argument("--name", default=None, help="index name (default: derived)")
        parser.add_argument("--drop", metavar="NAME", default=None, help="drop this index instead")
        parser.add_argument("--database", default=None, help="a DATABASES alias")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with repository(options["collection"], using=options["database"],
                            create=False) as repo:  # fmt: skip
                if options["drop"]:
                    if not repo.drop_index(options["drop"]):
                        raise CommandError(f"no ANN index named {options['drop']!r}")
                    self.stdout.write(f"index {options['drop']} dropped")
                    return
                spec: dict[str, Any] = {"method": options["method"], "metric": options["metric"]}
                for key in ("m", "ef_construction", "lists", "name"):
                    if options[key] is not None:
                        spec[key] = options[key]
                name = repo.create_index(
                    vs.IndexSpec(per_collection=options["collection"] is not None, **spec)
                )
        except vs.VectorStoreError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"index {name} is ready")
