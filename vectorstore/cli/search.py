"""``vectorstore search``: one query through the repository, printed as a table or JSON.

:func:`run_search` returns plain dictionaries; the ranking itself (nearest,
filters, hybrid) belongs to the repository and the query wing.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from ._common import (
    EXIT_OK,
    add_document_model_argument,
    add_embedder_argument,
    checked_filter,
    collection_model,
    document_model,
    engine_for,
    make_embedder,
    note,
    out,
    positive_int,
    short,
    table,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from vectorstore.embedders import Embedder

__all__ = ["add_search_command", "run_search"]


def run_search(
    engine: Engine,
    query: str,
    *,
    collection: str,
    embedder: Embedder,
    k: int,
    filter: dict[str, Any] | None = None,
    hybrid: bool = False,
    model: Any = None,
) -> list[dict[str, Any]]:
    """Search ``collection`` for ``query``; one dictionary per hit, best first."""
    from sqlalchemy.orm import Session

    from vectorstore.repository import DocumentRepository

    with Session(engine) as session:
        repo: DocumentRepository[Any] = DocumentRepository(
            session, collection=collection, embedder=embedder, create=False,
            **({} if model is None else {"model": model}),
        )  # fmt: skip
        hits = (
            repo.hybrid(query, k=k, filter=filter)
            if hybrid
            else repo.nearest(query, k=k, filter=filter)
        )
        return [
            {
                "id": hit.document.id,
                "external_id": hit.document.external_id,
                "score": round(float(hit.score), 6),
                "distance": round(float(hit.distance), 6),
                "metadata": hit.document.metadata_,
                "text": hit.document.text,
            }
            for hit in hits
        ]


def cmd_search(args: argparse.Namespace) -> int:
    # Everything the command line says is checked before the server or a model is touched.
    model = document_model(args.model)
    spec = checked_filter(args, model)
    engine = engine_for(args)
    try:
        name = args.embedder or collection_model(engine, args.collection)
        embedder = make_embedder(name, device=args.device)
        hits = run_search(
            engine,
            args.text,
            collection=args.collection,
            embedder=embedder,
            k=args.k,
            filter=spec,
            hybrid=args.hybrid,
            model=model,
        )
    finally:
        engine.dispose()
    if args.json:
        out(json.dumps(hits, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not hits:
        out("no results")
        _explain_empty(args, model)
        return EXIT_OK
    rows = [
        (
            n,
            f"{h['score']:.4f}",
            h["id"],
            h["external_id"] or "",
            short(json.dumps(h["metadata"], ensure_ascii=False), 40),
            short(h["text"], 60),
        )
        for n, h in enumerate(hits, 1)
    ]
    out(table(["#", "score", "id", "external_id", "metadata", "text"], rows))
    return EXIT_OK


def _explain_empty(args: argparse.Namespace, model: Any) -> None:
    """Say so when the collection holds nothing in the table searched (another table?)."""
    from vectorstore.schema.collections import collection_info

    engine = engine_for(args)
    try:
        info = collection_info(engine, args.collection, model=model)
    finally:
        engine.dispose()
    if info.rows == 0:
        note(
            f"note: collection {info.name!r} has no documents in {info.table}; if your app "
            "keeps them in its own table, name its model with --model pkg.module:Class"
        )


def add_search_command(commands: Any) -> None:
    """Register ``search``."""
    search = commands.add_parser("search", help="nearest documents to a text")
    search.add_argument("text", help="the query text")
    search.add_argument("-k", type=positive_int, default=10, help="results (default 10)")
    search.add_argument("--collection", "-c", default="default", help="collection name")
    search.add_argument(
        "--where",
        action="append",
        metavar="KEY=VALUE",
        help="metadata equality filter; repeat for AND; VALUE is read as JSON when it parses",
    )
    search.add_argument(
        "--filter", metavar="JSON", help="a filter in the dictionary language, as JSON"
    )
    search.add_argument(
        "--hybrid",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="rank by vector and full-text search together (reciprocal rank fusion)",
    )
    search.add_argument("--device", default=None, help="embedding device: cpu, cuda, mps")
    add_embedder_argument(search, default_help="default: the one the collection records")
    add_document_model_argument(search)
    search.add_argument("--json", action="store_true", help="print JSON instead of a table")
    search.set_defaults(func=cmd_search)
