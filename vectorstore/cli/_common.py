"""What every CLI command shares: exit codes, output, the database, embedders, filters, tables.

Imports of vectorstore's engine-side modules (SQLAlchemy, the models, the
embedders) stay inside the functions, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import URL, Engine

    from vectorstore.embedders import Embedder

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "Handler",
    "UserError",
    "add_subcommands",
    "collection_model",
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


def show_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def make_embedder(model: str, *, device: str | None = None, dimension: int = 384) -> Embedder:
    """The embedder a model name stands for (see :func:`vectorstore.embedders.embedder_for`)."""
    from vectorstore.embedders import embedder_for

    return embedder_for(model, device=device, dimension=dimension)


def collection_model(engine: Engine, name: str) -> str:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from vectorstore.errors import CollectionNotFoundError, db_errors
    from vectorstore.models import Collection

    with db_errors(f"look up collection {name!r}"), Session(engine) as session:
        found = session.execute(
            select(Collection.embedding_model).where(Collection.name == name)
        ).scalar_one_or_none()
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
