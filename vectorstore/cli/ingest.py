"""``vectorstore ingest``, ``export`` and ``index create|drop``: thin shells over the repository.

Each translates its options into one call of the public API
(:func:`vectorstore.ingest`, :func:`vectorstore.export_parquet`,
``DocumentRepository.create_index`` / ``drop_index``), which owns the behaviour.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._common import UserError, collection_model, engine_for, make_embedder, positive_int

__all__ = ["add_pipeline_commands"]


def _csv_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


_SOURCES = (".parquet", ".csv", ".jsonl", ".ndjson")


def _embedder_for(args: argparse.Namespace, engine: Any) -> Any:
    """``--model`` if given, else the model the collection records, else the default."""
    from vectorstore.errors import CollectionNotFoundError
    from vectorstore.models import DEFAULT_MODEL_NAME

    model = args.model
    if model is None:
        try:
            model = collection_model(engine, args.collection)
        except CollectionNotFoundError:
            model = DEFAULT_MODEL_NAME
    return make_embedder(model, device=args.device)


def cmd_ingest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vectorstore.repository import DocumentRepository, ingest

    path = Path(args.path)
    if path.suffix.lower() not in _SOURCES:
        raise UserError(f"{path}: expected a {', '.join(_SOURCES)} file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    columns: dict[str, Any] = {"text_column": args.text_column}
    for option in ("id_column", "metadata_column", "metadata_columns", "embedding_column"):
        value = getattr(args, option)
        if value:
            columns[option] = value
    engine = engine_for(args)
    embedder = _embedder_for(args, engine)
    repo: DocumentRepository[Any] = DocumentRepository.standalone(
        engine, collection=args.collection, embedder=embedder
    )
    options: dict[str, Any] = {}
    if args.batch_size:
        options["chunk_rows"] = args.batch_size
    result = ingest(
        path, repository=repo, on_conflict=args.on_conflict, progress=args.progress,
        **options, **columns,
    )  # fmt: skip
    print(
        f"{result.rows} rows: {result.inserted} inserted, {result.skipped} skipped, "
        f"{result.updated} updated, {result.known} already stored; embedded {result.embedded} "
        f"(embed {result.embed_s:.1f}s, write {result.write_s:.1f}s, "
        f"total {result.elapsed_s:.1f}s, {result.rows_per_s:.0f} rows/s)",
        flush=True,
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vectorstore.repository import export_parquet

    path = Path(args.path)
    if path.suffix.lower() != ".parquet":
        raise UserError(f"{path}: export writes a .parquet file")
    if not path.parent.is_dir():
        raise UserError(f"{path.parent}: no such folder")
    written = export_parquet(_repo(args), path)
    print(f"wrote {written} rows of collection {args.collection!r} to {path}", flush=True)
    return 0


def _repo(args: argparse.Namespace) -> Any:
    from vectorstore.repository import DocumentRepository

    # Never creates a collection: an index command on a missing one is an error.
    return DocumentRepository.standalone(
        engine_for(args), collection=getattr(args, "collection", None) or "default", create=False
    )


def cmd_index_create(args: argparse.Namespace) -> int:
    from vectorstore.schema.indexes import IndexSpec

    options: dict[str, Any] = {"method": args.method, "metric": args.metric}
    for name in ("m", "ef_construction", "lists", "name"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.precision:
        options["precision"] = args.precision
    spec = IndexSpec(per_collection=args.collection is not None, **options)
    name = _repo(args).create_index(spec, maintenance_work_mem=args.maintenance_work_mem)
    print(f"index {name} is ready", flush=True)
    return 0


def cmd_index_drop(args: argparse.Namespace) -> int:
    if not _repo(args).drop_index(args.name):
        raise UserError(f"no ANN index named {args.name!r} (see `vectorstore stats`)")
    print(f"index {args.name} dropped", flush=True)
    return 0


def add_pipeline_commands(commands: Any) -> None:
    """Add ``ingest``, ``export`` and ``index`` to the CLI's subcommands."""

    ingest = commands.add_parser(
        "ingest", help="load a parquet, CSV or JSONL file (embeds texts, skips known ones)"
    )
    ingest.add_argument("path", help="a .parquet, .csv or .jsonl/.ndjson file")
    ingest.add_argument("--collection", "-c", default="default", help="collection name")
    ingest.add_argument("--text-column", default="text", help="column holding the text")
    ingest.add_argument("--id-column", default=None, help="column holding the external id")
    ingest.add_argument(
        "--metadata-columns",
        type=_csv_list,
        default=None,
        metavar="A,B,...",
        help="columns stored as metadata (comma separated)",
    )
    ingest.add_argument(
        "--metadata-column", default=None, help="one column holding a metadata object"
    )
    ingest.add_argument(
        "--embedding-column", default=None, help="column holding precomputed vectors"
    )
    ingest.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="rows read, embedded and written per step (default 10000)",
    )
    ingest.add_argument("--device", default=None, help="embedding device: cpu, cuda, mps")
    ingest.add_argument(
        "--model",
        default=None,
        help="embedding model (default: the collection's, else all-MiniLM-L6-v2); "
        "'hashing' is a torch-free test embedder (no semantics)",
    )
    ingest.add_argument(
        "--on-conflict",
        choices=("error", "skip", "update"),
        default="skip",
        help="an external id that is already stored: error, skip (default) or update",
    )
    ingest.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: only on a terminal)",
    )
    ingest.set_defaults(func=cmd_ingest)

    export = commands.add_parser("export", help="write a collection to a parquet file")
    export.add_argument("path", help="the .parquet file to write")
    export.add_argument("--collection", "-c", default="default", help="collection name")
    export.set_defaults(func=cmd_export)

    index = commands.add_parser("index", help="create or drop ANN indexes")
    index_sub = index.add_subparsers(dest="index_command", metavar="COMMAND")
    index_sub.required = True
    create = index_sub.add_parser("create", help="build an HNSW or IVFFlat index")
    create.add_argument("--method", choices=("hnsw", "ivfflat"), default="hnsw")
    create.add_argument(
        "--metric",
        choices=("cosine", "l2", "inner_product", "ip", "l1"),
        default="cosine",
        help="distance",
    )
    create.add_argument("--m", type=positive_int, default=None, help="HNSW: links per node")
    create.add_argument(
        "--ef-construction", type=positive_int, default=None, help="HNSW: build-time beam"
    )
    create.add_argument("--lists", type=positive_int, default=None, help="IVFFlat: lists")
    create.add_argument(
        "--precision", choices=("vector", "halfvec", "binary"), default=None,
        help="index full vectors (default), half precision, or binary quantization",
    )  # fmt: skip
    create.add_argument("--collection", "-c", default=None, help="partial index for one collection")
    create.add_argument("--name", default=None, help="index name (default: derived)")
    create.add_argument("--maintenance-work-mem", default=None, help="e.g. 1GB: faster builds")
    create.set_defaults(func=cmd_index_create)
    drop = index_sub.add_parser("drop", help="drop an index by name")
    drop.add_argument("name", help="index name (see `vectorstore stats`)")
    drop.set_defaults(func=cmd_index_drop)
