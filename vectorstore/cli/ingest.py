"""``vectorstore ingest``, ``export`` and ``index create|drop``: thin shells over the repository.

Each translates its options into one call of the public API
(:func:`vectorstore.ingest`, :func:`vectorstore.export_parquet`,
``DocumentRepository.create_index`` / ``drop_index``), which owns the behaviour.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import (
    EXIT_INTERRUPTED,
    UserError,
    add_document_model_argument,
    add_embedder_argument,
    collection_model,
    document_model,
    engine_for,
    make_embedder,
    note,
    positive_int,
)

__all__ = ["add_pipeline_commands"]


def _csv_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


_SOURCES = (".parquet", ".csv", ".jsonl", ".ndjson")
#: An ingest of at least this many rows (and a tenth of the table) into a table with an
#: ANN index rebuilds the index after the load instead of inserting into it row by row.
REBUILD_FROM_ROWS = 10_000


def _embedder_for(args: argparse.Namespace, engine: Any) -> Any:
    """``--embedder`` if given, else the model the collection records, else the default."""
    from vectorstore.errors import CollectionNotFoundError
    from vectorstore.models import DEFAULT_MODEL_NAME

    name = args.embedder
    if name is None:
        try:
            name = collection_model(engine, args.collection)
        except CollectionNotFoundError:
            name = DEFAULT_MODEL_NAME
    return make_embedder(name, device=args.device, backend=getattr(args, "backend", "torch"))


def _should_rebuild(engine: Any, model: Any, rows: int | None) -> tuple[bool, str | None]:
    """Whether a load of ``rows`` rows should rebuild the table's ANN indexes, and why.

    Each row written into a table with an HNSW index is one index insert (a
    few hundred rows a second on a small machine); building the index once
    after the load is faster from about a tenth of the table's size on.
    """
    from sqlalchemy import text

    from vectorstore.errors import db_errors
    from vectorstore.schema.catalog import list_ann_indexes, qualified_table

    if not rows or rows < REBUILD_FROM_ROWS:
        return False, None
    with db_errors("read the table's indexes"), engine.connect() as conn:
        if (
            conn.execute(
                text("SELECT to_regclass(:t)"), {"t": qualified_table(conn, model.__table__)}
            ).scalar_one()
            is None
        ):
            return False, None
        indexes = [ix for ix in list_ann_indexes(conn, model.__table__) if ix.valid]
        if not indexes:
            return False, None
        table_rows = conn.execute(
            text("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = "
                 "CAST(:t AS regclass)"), {"t": qualified_table(conn, model.__table__)}
        ).scalar_one()  # fmt: skip
    if rows * 10 < int(table_rows or 0):
        return False, (
            f"note: {rows:,} rows into a table of about {int(table_rows):,} with ANN index "
            f"{indexes[0].name}: inserting into the index row by row (--rebuild-index "
            "rebuilds it after the load instead)"
        )
    return True, (
        f"note: about {rows:,} rows into a table with ANN index {indexes[0].name}: it is "
        "dropped and rebuilt after the load, which is much faster than inserting row by row "
        "(the table is locked meanwhile; --no-rebuild-index inserts into the index instead)"
    )


def cmd_ingest(args: argparse.Namespace) -> int:
    from pathlib import Path

    path = Path(args.path)
    if path.suffix.lower() not in _SOURCES:
        raise UserError(f"{path}: expected a {', '.join(_SOURCES)} file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    model = document_model(args.model)
    columns: dict[str, Any] = {"text_column": args.text_column}
    for option in ("id_column", "metadata_column", "metadata_columns", "embedding_column"):
        value = getattr(args, option)
        if value:
            columns[option] = value
    engine = engine_for(args)
    cancel = CancelOnInterrupt(engine)
    try:
        return cancel.run(lambda: _ingest(args, engine, path, model, columns))
    finally:
        engine.dispose()


def _ingest(
    args: argparse.Namespace, engine: Any, path: Any, model: Any, columns: dict[str, Any]
) -> int:
    from vectorstore._progress import duration
    from vectorstore.repository import DocumentRepository, ingest
    from vectorstore.write.inputs import source_total

    rebuild = args.rebuild_index
    if rebuild is None:
        rows, _ = source_total(path)
        rebuild, why = _should_rebuild(engine, model, rows)
        if why:
            note(why)
    embedder = _embedder_for(args, engine)
    repo: DocumentRepository[Any] = DocumentRepository.standalone(
        engine, collection=args.collection, embedder=embedder, model=model
    )
    options: dict[str, Any] = {}
    if args.batch_size:
        options["chunk_rows"] = args.batch_size
    result = ingest(
        path, repository=repo, on_conflict=args.on_conflict, progress=args.progress,
        rebuild_index=rebuild, **options, **columns,
    )  # fmt: skip
    print(
        f"{result.rows:,} rows: {result.inserted:,} inserted, {result.skipped:,} skipped, "
        f"{result.updated:,} updated, {result.known:,} already stored; embedded "
        f"{result.embedded:,} (embedding {duration(result.embed_s)}, writing "
        f"{duration(result.write_s)}; total {duration(result.elapsed_s)}, "
        f"{result.rows_per_s:,.0f} rows/s)",
        flush=True,
    )
    if result.embedded and result.embedder:
        print(f"embedded by {result.embedder}", flush=True)
    return 0


class CancelOnInterrupt:
    """Run a command so that Ctrl-C cancels the statement the server is running.

    Python handles SIGINT between bytecodes of the main thread, so a long COPY
    (each row an index insert) would ignore Ctrl-C until it ended.  The work
    therefore runs in a worker thread while the main thread waits; on Ctrl-C
    the main thread sends the driver's cancel request (``connection.cancel()``
    of psycopg2 and psycopg 3) for every connection the work holds, the
    statement fails, and its transaction is rolled back: nothing is written.
    If the work does not end within :attr:`GRACE_S` (it was embedding, not
    writing), the process exits anyway: the server rolls back the open
    transaction of a connection that goes away.
    """

    GRACE_S = 3.0

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self._held: dict[int, Any] = {}
        event.listen(engine, "checkout", self._checkout)
        event.listen(engine, "checkin", self._checkin)

    def _checkout(self, dbapi_connection: Any, *_: Any) -> None:
        self._held[id(dbapi_connection)] = dbapi_connection

    def _checkin(self, dbapi_connection: Any, *_: Any) -> None:
        self._held.pop(id(dbapi_connection), None)

    def run(self, work: Any) -> int:
        import threading

        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["status"] = work()
            except BaseException as exc:  # re-raised in the main thread
                outcome["error"] = exc

        worker = threading.Thread(target=target, name="vectorstore-cli-work", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.2)
        except KeyboardInterrupt:
            return self._interrupted(worker)
        if "error" in outcome:
            raise outcome["error"]
        return int(outcome["status"])

    def _interrupted(self, worker: Any) -> int:
        import os

        note("interrupted: cancelling the running statement; nothing is written")
        for connection in list(self._held.values()):
            try:
                connection.cancel()
            except Exception:  # noqa: S112 - a connection already closed has nothing to cancel
                continue
        worker.join(self.GRACE_S)
        if worker.is_alive():
            # Still embedding: leave without waiting for the model. The connection
            # closes with the process, and the server rolls its transaction back.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED


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

    model = document_model(args.model)
    # Never creates a collection: an index command on a missing one is an error.
    return DocumentRepository.standalone(
        engine_for(args), collection=getattr(args, "collection", None) or "default",
        create=False, model=model,
    )  # fmt: skip


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
    add_embedder_argument(ingest, default_help="default: the collection's, else all-MiniLM-L6-v2")
    ingest.add_argument(
        "--backend",
        choices=["torch", "onnxruntime", "openvino", "auto"],
        default="torch",
        help="how the model runs: torch (default), onnxruntime or openvino (CPU, fp32), or "
        "auto: the fastest backend the quality gate admits on this machine, chosen on the "
        "file's first texts (docs/embedding-backends.md)",
    )
    add_document_model_argument(ingest)
    ingest.add_argument(
        "--rebuild-index",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="drop the table's ANN indexes, load, then rebuild them (default: when the file "
        f"holds at least {REBUILD_FROM_ROWS:,} rows and a tenth of the table)",
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
    add_document_model_argument(export)
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
    add_document_model_argument(create)
    create.set_defaults(func=cmd_index_create)
    drop = index_sub.add_parser("drop", help="drop an index by name")
    drop.add_argument("name", help="index name (see `vectorstore stats`)")
    add_document_model_argument(drop)
    drop.set_defaults(func=cmd_index_drop)
