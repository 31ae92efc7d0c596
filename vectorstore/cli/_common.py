"""What every CLI command shares: exit codes, output, the database, embedders, filters, tables.

Imports of vectorstore's engine-side modules (SQLAlchemy, the models, the
embedders) stay inside the functions, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import URL, Engine

    from vectorstore.embedders import Embedder

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "Handler",
    "UserError",
    "add_document_model_argument",
    "add_embedder_argument",
    "add_subcommands",
    "checked_filter",
    "collection_model",
    "document_model",
    "engine_for",
    "filter_from",
    "make_embedder",
    "note",
    "out",
    "positive_int",
    "short",
    "show_url",
    "size",
    "table",
    "url_for",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

Handler = Callable[[argparse.Namespace], int]


class UserError(Exception):
    """A mistake in the command line that argparse could not catch (exit 1)."""


# -- helpers ---------------------------------------------------------------------------
def out(line: str = "") -> None:
    print(line, flush=True)


def note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def url_for(args: argparse.Namespace) -> URL:
    from vectorstore.config import resolve_url

    return resolve_url(args.database_url)


def engine_for(args: argparse.Namespace) -> Engine:
    from vectorstore.config import make_engine

    return make_engine(url_for(args))


@contextmanager
def opened_engine(args: argparse.Namespace) -> Iterator[Engine]:
    """The command's engine, disposed of when the command is done with it."""
    engine = engine_for(args)
    try:
        yield engine
    finally:
        engine.dispose()


def show_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def make_embedder(
    model: str, *, device: str | None = None, dimension: int = 384, backend: str = "torch"
) -> Embedder:
    """The embedder a model name stands for (see :func:`vectorstore.embedders.embedder_for`)."""
    from vectorstore.embedders import embedder_for

    return embedder_for(model, device=device, dimension=dimension, backend=backend)


# -- the document model (--model) and the embedder (--embedder) --------------------------
def add_document_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="PKG.MODULE:CLASS",
        default=None,
        help="your DocumentMixin model, as a dotted path (e.g. myapp.models:ProductDoc); "
        "default: vectorstore's own table",
    )


def add_embedder_argument(parser: argparse.ArgumentParser, *, default_help: str) -> None:
    parser.add_argument(
        "--embedder",
        metavar="NAME",
        default=None,
        help=f"embedding model: a sentence-transformers name or folder ({default_help}); "
        "'hashing' is a torch-free test embedder (no semantics)",
    )


def document_model(spec: str | None) -> Any:
    """The document model ``--model`` names (``pkg.module:Class``), else vectorstore's Document.

    The current folder is on the import path for the lookup, as for ``python -m``.

    Raises:
        UserError: the path is malformed, the module or class cannot be found,
            or the class is not a mapped ``DocumentMixin`` model.
    """
    from vectorstore.models import Document, DocumentMixin

    if spec is None:
        return Document
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UserError(
            f"--model expects a dotted path PKG.MODULE:CLASS to a DocumentMixin model, got "
            f"{spec!r}; the embedding model is --embedder NAME"
        )
    import importlib
    import os

    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"--model {spec}: cannot import {module_name!r}: {exc}") from None
    finally:
        if added:
            sys.path.remove(os.getcwd())
    found: Any = module
    for part in attr.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise UserError(f"--model {spec}: {module_name!r} has no {attr!r}")
    if not (
        isinstance(found, type) and issubclass(found, DocumentMixin) and hasattr(found, "__table__")
    ):
        raise UserError(f"--model {spec}: {attr!r} is not a mapped DocumentMixin model")
    return found


def checked_filter(args: argparse.Namespace, model: Any) -> dict[str, Any] | None:
    """``--filter`` / ``--where`` parsed and compiled against ``model``: every mistake now.

    Compiling needs no database, so a bad operator is reported before the
    server is reached or a model is loaded.
    """
    from vectorstore.query.filters import compile_filter

    spec = filter_from(args)
    compile_filter(spec, model)
    return spec


def collection_model(engine: Engine, name: str) -> str:
    from sqlalchemy.orm import Session

    from vectorstore.errors import CollectionNotFoundError, db_errors
    from vectorstore.schema.collections import find

    with db_errors(f"look up collection {name!r}"), Session(engine) as session:
        info = find(session, name)  # a name or an alias
    found = None if info is None else info.embedding_model
    if found is None:
        raise CollectionNotFoundError(
            f"no collection named {name!r} (see `vectorstore stats` for the collections)"
        )
    return str(found)


def _too_deep(what: str) -> str:
    """The message for JSON nested past what Python's JSON reader can recurse into."""
    from vectorstore.query.filters import MAX_FILTER_DEPTH, MAX_VALUE_DEPTH

    return (
        f"{what} is nested too deeply to read (a filter nests at most {MAX_FILTER_DEPTH} "
        f"levels of operators and {MAX_VALUE_DEPTH} of values)"
    )


def _parse_where(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; the value is read as JSON when it parses (numbers, true)."""
    from vectorstore.errors import FilterError

    result: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise FilterError(f"--where expects key=value, got {item!r}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        except RecursionError:
            # Raised by the JSON reader itself at Python's recursion limit, its
            # stack already unwound: a user's input, not an internal error.
            raise FilterError(_too_deep(f"--where {key.strip()!r}")) from None
        result[key.strip()] = value
    return result


def filter_from(args: argparse.Namespace) -> dict[str, Any] | None:
    """The filter of ``--filter`` (a JSON object) and ``--where`` pairs, or None.

    Raises:
        FilterError: malformed JSON, JSON nested too deeply to read, not an
            object, or both options constraining one key.
    """
    from vectorstore.errors import FilterError

    spec: dict[str, Any] = {}
    if args.filter is not None:
        try:
            parsed = json.loads(args.filter)
        except json.JSONDecodeError as exc:
            raise FilterError(
                f"--filter is not valid JSON: {exc.msg} at column {exc.colno}"
            ) from exc
        except RecursionError:
            raise FilterError(_too_deep("--filter")) from None
        if not isinstance(parsed, dict):
            raise FilterError('--filter must be a JSON object, e.g. \'{"year": {"$gte": 2020}}\'')
        spec.update(parsed)
    where = _parse_where(args.where or [])
    clash = set(where) & set(spec)
    if clash:
        raise FilterError(f"--where and --filter both constrain {sorted(clash)}")
    spec.update(where)
    return spec or None


def short(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def add_subcommands(
    parser: argparse.ArgumentParser, dest: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    sub = parser.add_subparsers(dest=dest, metavar="COMMAND")
    sub.required = True
    return sub
