"""``vectorstore tune``: recall@k and latency of a collection's ANN index at several settings.

One call of ``DocumentRepository.measure_recall`` (which owns the measurement),
printed as a table, and drawn with ``--plot out.png`` (matplotlib, the
``plot`` extra).  The sample queries are ``--queries FILE`` (one text per line,
embedded with the collection's model) or, by default, ``--sample N`` vectors
already stored in the collection (no model is loaded; each sample finds its
own row, so the figure measures the other k - 1 neighbours too).
"""

from __future__ import annotations

import argparse
from typing import Any

from ._common import (
    EXIT_OK,
    UserError,
    add_document_model_argument,
    add_embedder_argument,
    collection_model,
    document_model,
    engine_for,
    make_embedder,
    out,
    positive_int,
)

__all__ = ["add_tune_command"]

DEFAULT_EF_VALUES = [40, 100, 200, 400]
DEFAULT_PROBE_VALUES = [1, 5, 10, 20]


def _ints(value: str) -> list[int]:
    try:
        numbers = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 40,100,200, got {value!r}"
        ) from None
    if not numbers or any(n <= 0 for n in numbers):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {value!r}")
    return numbers


def _sample_vectors(engine: Any, model: Any, collection_id: int, n: int) -> list[Any]:
    from sqlalchemy import Text, cast, func, select
    from sqlalchemy.orm import Session

    from vectorstore.errors import db_errors

    query = (
        select(model.embedding)
        .where(model.collection_id == collection_id)
        .order_by(func.md5(cast(model.id, Text)))  # a fixed, spread-out sample
        .limit(n)
    )
    with db_errors("sample the collection's vectors"), Session(engine) as session:
        return list(session.scalars(query))


def cmd_tune(args: argparse.Namespace) -> int:
    from pathlib import Path

    model = document_model(args.model)
    queries: list[Any] | None = None
    if args.queries is not None:
        source = Path(args.queries)
        if not source.is_file():
            raise UserError(f"{source}: no such file")
        queries = [line.strip() for line in source.read_text().splitlines() if line.strip()]
        if not queries:
            raise UserError(f"{source}: no queries in it (one text per line)")
    if args.plot is not None:
        target = Path(args.plot)
        if not target.parent.is_dir():
            raise UserError(f"{target.parent}: no such folder")
        from vectorstore._optional import require

        require("matplotlib", extra="plot", feature="--plot")
    from vectorstore.repository import DocumentRepository

    engine = engine_for(args)
    try:
        embedder = None
        if queries is not None:
            embedder = make_embedder(args.embedder or collection_model(engine, args.collection))
        repo: DocumentRepository[Any] = DocumentRepository.standalone(
            engine, collection=args.collection, embedder=embedder, model=model, create=False
        )
        if queries is None:
            queries = _sample_vectors(engine, model, repo.collection.id, args.sample)
            if not queries:
                raise UserError(f"collection {args.collection!r} holds no vectors to sample")
        ef_search, probes = args.ef_search, args.probes
        if ef_search is None and probes is None:  # the knob of the index the collection has
            methods = {ix.method for ix in repo.list_indexes()
                       if ix.collection_id in (None, repo.collection.id)}  # fmt: skip
            if not methods:
                raise UserError(
                    f"collection {args.collection!r} has no ANN index to tune "
                    "(see `vectorstore index create`)"
                )
            if "hnsw" in methods:
                ef_search = DEFAULT_EF_VALUES
            else:
                probes = DEFAULT_PROBE_VALUES
        report = repo.measure_recall(
            queries, k=args.k, ef_search=ef_search or (), probes=probes or ()
        )
    finally:
        engine.dispose()
    out(report.to_markdown())
    if args.plot is not None:
        written = report.plot(
            args.plot, title=f"{args.collection}: {report.to_markdown().splitlines()[0]}"
        )
        out(f"\nplot written to {written}")
    return EXIT_OK


def add_tune_command(commands: Any) -> None:
    """Register ``tune``."""
    tune = commands.add_parser(
        "tune", help="recall@k and latency of the ANN index at several ef_search / probes values"
    )
    tune.add_argument("--collection", "-c", default="default", help="collection name")
    tune.add_argument("-k", type=positive_int, default=10, help="neighbours per query (10)")
    tune.add_argument(
        "--ef-search", type=_ints, default=None, metavar="N,N,...",
        help="HNSW ef_search values (default for an HNSW index: 40,100,200,400)",
    )  # fmt: skip
    tune.add_argument(
        "--probes", type=_ints, default=None, metavar="N,N,...",
        help="IVFFlat probes values (default for an IVFFlat index: 1,5,10,20)",
    )  # fmt: skip
    tune.add_argument(
        "--sample", type=positive_int, default=50,
        help="stored vectors used as queries when --queries is not given (default 50)",
    )  # fmt: skip
    tune.add_argument("--queries", default=None, metavar="FILE", help="query texts, one a line")
    tune.add_argument("--plot", default=None, metavar="OUT.png", help="draw recall vs latency")
    add_embedder_argument(tune, default_help="default: the one the collection records")
    add_document_model_argument(tune)
    tune.set_defaults(func=cmd_tune)
