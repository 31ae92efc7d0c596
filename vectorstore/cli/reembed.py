"""``vectorstore reembed SOURCE --target NEW --embedder MODEL``: switch models online.

One call of :func:`vectorstore.reembed`: build ``NEW`` from ``SOURCE``'s texts
with the new model (resumable: run it again after an interruption), build its
index, verify, and switch the alias (``SOURCE`` itself when it is an alias).
"""

from __future__ import annotations

import argparse
from typing import Any

from ._common import (
    EXIT_OK,
    UserError,
    add_document_model_argument,
    document_model,
    engine_for,
    make_embedder,
    out,
    positive_int,
)

__all__ = ["add_reembed_command"]


def cmd_reembed(args: argparse.Namespace) -> int:
    from vectorstore.models import embedding_dimension
    from vectorstore.reembedding import reembed

    model = document_model(args.model)
    source_model = document_model(args.source_model) if args.source_model else model
    embedder = make_embedder(
        args.embedder, device=args.device, dimension=embedding_dimension(model)
    )
    if args.no_switch and args.alias:
        raise UserError("--alias and --no-switch contradict each other")
    kwargs: dict[str, Any] = {}
    if args.alias:
        kwargs["alias"] = args.alias
    engine = engine_for(args)
    try:
        result = reembed(
            engine, args.source, embedder, target=args.target, model=model,
            source_model=source_model, switch=not args.no_switch, sample=args.sample,
            chunk_rows=args.chunk_rows, commit_rows=args.commit_rows, progress=None, **kwargs,
        )  # fmt: skip
    finally:
        engine.dispose()
    resumed = f", {result.already:,} already there" if result.already else ""
    out(
        f"{result.target}: {result.rows:,} rows ({result.copied:,} embedded{resumed}, "
        f"{result.carried_over:,} carried over) in {result.elapsed_s:.1f} s; "
        f"sample {result.sample_hits}/{result.sample} found themselves"
    )
    if result.switched:
        out(f"alias {result.alias} -> {result.target} (`vectorstore alias rollback "
            f"{result.alias}` goes back)")  # fmt: skip
    elif result.alias is None and not args.no_switch:
        out(f"no alias switched: {args.source} is a collection; make its name an alias with "
            f"`vectorstore collection rename {args.source} <new name> --alias` first")  # fmt: skip
    return EXIT_OK


def add_reembed_command(commands: Any) -> None:
    """Register ``reembed``."""
    cmd = commands.add_parser(
        "reembed",
        help="re-embed a collection with another model online, then switch its alias",
    )
    cmd.add_argument("source", help="the collection (or alias) to re-embed")
    cmd.add_argument("--target", required=True, help="the new collection (resumed if it exists)")
    cmd.add_argument(
        "--embedder", metavar="NAME", required=True,
        help="the new embedding model: a sentence-transformers name or folder, or 'hashing'",
    )  # fmt: skip
    cmd.add_argument("--alias", default=None, help="the alias to switch (default: SOURCE's)")
    cmd.add_argument("--no-switch", action="store_true", help="build and verify only")
    add_document_model_argument(cmd)
    cmd.add_argument(
        "--source-model", metavar="PKG.MODULE:CLASS", default=None,
        help="the source's DocumentMixin model when it is not --model's",
    )  # fmt: skip
    cmd.add_argument("--device", default=None, help="embedding device: cpu, cuda, mps")
    cmd.add_argument("--sample", type=int, default=20, help="rows of the nearest check")
    cmd.add_argument("--chunk-rows", type=positive_int, default=1000, help="rows per COPY")
    cmd.add_argument(
        "--commit-rows", type=positive_int, default=20_000, help="rows per committed step"
    )
    cmd.set_defaults(func=cmd_reembed)
