"""``vectorstore collection list|create|drop|rename|info``: collections as a whole.

Each subcommand is one call of the library's functions of the same names
(:mod:`vectorstore.schema.collections`), which own the behaviour; ``drop``
removes the documents and the collection's own indexes in one transaction.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._common import (
    EXIT_OK,
    UserError,
    add_document_model_argument,
    add_subcommands,
    document_model,
    opened_engine,
    out,
    positive_int,
    size,
    table,
)

__all__ = ["add_collection_commands"]


def _summary(info: Any) -> dict[str, Any]:
    return {
        "name": info.name, "id": info.id, "embedding_model": info.embedding_model,
        "dimension": info.dimension, "rows": info.rows, "table": info.table,
        "indexes": list(info.indexes), "aliases": list(info.aliases),
        "size_bytes": info.size_bytes,
    }  # fmt: skip


def cmd_list(args: argparse.Namespace) -> int:
    from vectorstore.schema.collections import list_collections

    model = document_model(args.model)
    with opened_engine(args) as engine:
        found = list_collections(engine, model=model)
    if args.json:
        out(json.dumps([_summary(c) for c in found], indent=2))
        return EXIT_OK
    if not found:
        out("no collections")
        return EXIT_OK
    rows = [
        (c.name, ", ".join(c.aliases), c.embedding_model, c.dimension, f"{c.rows:,}",
         size(c.size_bytes))
        for c in found
    ]  # fmt: skip
    out(table(["collection", "aliases", "model", "dim", f"rows in {found[0].table}", "size"], rows))
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from vectorstore.schema.collections import collection_info

    model = document_model(args.model)
    with opened_engine(args) as engine:
        info = collection_info(engine, args.name, model=model)
    if args.json:
        out(json.dumps(_summary(info), indent=2))
        return EXIT_OK
    out(f"collection: {info.name} (id {info.id})")
    out(f"model:      {info.embedding_model}, {info.dimension}-d")
    out(f"rows:       {info.rows:,} in {info.table}")
    out(f"size:       {size(info.size_bytes)} (estimated: its share of the table, its own indexes)")
    out(f"aliases:    {', '.join(info.aliases) or 'none'}")
    out(f"indexes:    {', '.join(info.indexes) or 'none of its own (table-wide ones serve it)'}")
    return EXIT_OK


def cmd_create(args: argparse.Namespace) -> int:
    from vectorstore.models import DEFAULT_MODEL_NAME
    from vectorstore.schema.collections import create_collection

    model = document_model(args.model)
    with opened_engine(args) as engine:
        info = create_collection(
            engine, args.name, embedding_model=args.embedder or DEFAULT_MODEL_NAME,
            dimension=args.dimension, model=model,
        )  # fmt: skip
    out(f"collection {info.name} created ({info.embedding_model}, {info.dimension}-d)")
    return EXIT_OK


def cmd_drop(args: argparse.Namespace) -> int:
    from vectorstore.schema.collections import drop_collection

    if not args.yes:
        raise UserError(
            f"dropping collection {args.name!r} deletes its documents: add --yes to confirm"
        )
    model = document_model(args.model)
    with opened_engine(args) as engine:
        deleted = drop_collection(engine, args.name, model=model)
    out(f"collection {args.name} dropped ({deleted:,} documents deleted)")
    return EXIT_OK


def cmd_rename(args: argparse.Namespace) -> int:
    from vectorstore.schema.collections import rename_collection

    with opened_engine(args) as engine:
        rename_collection(engine, args.old, args.new, alias=args.alias)
    kept = f" (alias {args.old} -> {args.new} kept)" if args.alias else ""
    out(f"collection {args.old} renamed to {args.new}{kept}")
    return EXIT_OK


def add_collection_commands(commands: Any) -> None:
    """Register ``collection list|create|drop|rename|info``."""
    collection = commands.add_parser("collection", help="list, create, drop, rename collections")
    sub = add_subcommands(collection, "collection_command")

    listing = sub.add_parser("list", help="every collection with its model and rows")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_document_model_argument(listing)
    listing.set_defaults(func=cmd_list)

    info = sub.add_parser("info", help="one collection: model, rows, size, indexes, aliases")
    info.add_argument("name", help="collection name")
    info.add_argument("--json", action="store_true", help="print JSON")
    add_document_model_argument(info)
    info.set_defaults(func=cmd_info)

    create = sub.add_parser("create", help="declare an empty collection for one embedding model")
    create.add_argument("name", help="collection name")
    create.add_argument(
        "--embedder", metavar="NAME", default=None,
        help="the embedding model its vectors come from (default all-MiniLM-L6-v2)",
    )  # fmt: skip
    create.add_argument(
        "--dimension", type=positive_int, default=None,
        help="vector dimension (default: the document model's)",
    )  # fmt: skip
    add_document_model_argument(create)
    create.set_defaults(func=cmd_create)

    drop = sub.add_parser(
        "drop", help="delete a collection, its documents and its own indexes (one transaction)"
    )
    drop.add_argument("name", help="collection name")
    drop.add_argument("--yes", action="store_true", help="confirm: the documents are deleted")
    add_document_model_argument(drop)
    drop.set_defaults(func=cmd_drop)

    rename = sub.add_parser("rename", help="rename a collection")
    rename.add_argument("old", help="current name")
    rename.add_argument("new", help="new name")
    rename.add_argument(
        "--alias", action="store_true",
        help="leave the old name as an alias of the new one (readers go on working)",
    )  # fmt: skip
    rename.set_defaults(func=cmd_rename)
