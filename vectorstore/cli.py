"""The ``vectorstore`` command line: a thin shell over the library's public functions.

Design decisions:

* **argparse only, imports inside commands.** ``vectorstore --help`` must answer
  instantly, so this module imports nothing of vectorstore, SQLAlchemy or
  torch at module level; each command imports what it needs.
* **No logic of its own.** Every command calls the same public function a Python
  user would call (``migrate``, ``DocumentRepository``, the ingest pipeline,
  the index and filter modules), so the CLI cannot drift from the library.
* **User mistakes are one line, not a traceback.** Any :class:`VectorStoreError`
  (a missing file, an unknown column, a bad filter, a server that is down), and
  OS-level errors such as a missing file, print ``error: <one line>`` on stderr
  and exit with status 1; a usage mistake exits 2 (argparse's convention).  An
  unexpected exception is a bug: it prints one line too, and the full
  traceback when ``VECTORSTORE_DEBUG=1``.
* **Where the database is:** ``--database-url`` > ``VECTORSTORE_DATABASE_URL`` >
  the embedded server (started on first use), as in
  :func:`vectorstore.resolve_url`.  ``db start|stop|status|url`` always act on
  the embedded server (its data directory is ``VECTORSTORE_DATA_DIR`` or the
  platform default).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import URL, Engine

    from .embedders import Embedder

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
HASHING_MODEL = "hashing"

Handler = Callable[[argparse.Namespace], int]


class UserError(Exception):
    """A mistake in the command line that argparse could not catch (exit 1)."""


# -- helpers ---------------------------------------------------------------------------
def _out(line: str = "") -> None:
    print(line, flush=True)


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _url(args: argparse.Namespace) -> URL:
    from .config import resolve_url

    return resolve_url(args.database_url)


def _engine(args: argparse.Namespace) -> Engine:
    from .config import make_engine

    return make_engine(_url(args))


def _show_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def make_embedder(model: str, *, device: str | None = None, dimension: int = 384) -> Embedder:
    """The embedder a model name stands for on the command line.

    ``hashing`` (or a recorded ``vectorstore/hashing-test-embedder-<dim>`` name)
    is the deterministic :class:`~vectorstore.HashingTestEmbedder`, for trying
    the plumbing without torch; anything else is a sentence-transformers model.
    """
    from .embedders import HashingTestEmbedder, SentenceTransformerEmbedder

    if model == HASHING_MODEL:
        return HashingTestEmbedder(dimension)
    prefix = "vectorstore/hashing-test-embedder-"
    if model.startswith(prefix) and model[len(prefix) :].isdigit():
        return HashingTestEmbedder(int(model[len(prefix) :]))
    return SentenceTransformerEmbedder(model, device=device)


def _collection_model(engine: Engine, name: str) -> str:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from .errors import CollectionNotFoundError, db_errors
    from .models import Collection

    with db_errors(f"look up collection {name!r}"), Session(engine) as session:
        found = session.execute(
            select(Collection.embedding_model).where(Collection.name == name)
        ).scalar_one_or_none()
    if found is None:
        raise CollectionNotFoundError(
            f"no collection named {name!r} (see `vectorstore stats` for the collections)"
        )
    return str(found)


def _parse_where(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; the value is read as JSON when it parses (numbers, true)."""
    from .errors import FilterError

    result: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise FilterError(f"--where expects key=value, got {item!r}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        result[key.strip()] = value
    return result


def _filter_from(args: argparse.Namespace) -> dict[str, Any] | None:
    from .errors import FilterError

    spec: dict[str, Any] = {}
    if args.filter is not None:
        try:
            parsed = json.loads(args.filter)
        except json.JSONDecodeError as exc:
            raise FilterError(
                f"--filter is not valid JSON: {exc.msg} at column {exc.colno}"
            ) from exc
        if not isinstance(parsed, dict):
            raise FilterError('--filter must be a JSON object, e.g. \'{"year": {"$gte": 2020}}\'')
        spec.update(parsed)
    where = _parse_where(args.where or [])
    clash = set(where) & set(spec)
    if clash:
        raise FilterError(f"--where and --filter both constrain {sorted(clash)}")
    spec.update(where)
    return spec or None


def _short(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


# -- db --------------------------------------------------------------------------------
def cmd_db_start(args: argparse.Namespace) -> int:
    from .server import EmbeddedServer

    server = EmbeddedServer()
    was_running = server.status().running
    url = server.start()
    _note("embedded server already running" if was_running else "embedded server started")
    _out(_show_url(url))
    return EXIT_OK


def cmd_db_stop(args: argparse.Namespace) -> int:
    from .server import EmbeddedServer

    stopped = EmbeddedServer().stop()
    _out("embedded server stopped" if stopped else "embedded server was not running")
    return EXIT_OK


def cmd_db_status(args: argparse.Namespace) -> int:
    from .server import EmbeddedServer

    status = EmbeddedServer().status()
    _out(f"data directory: {status.data_dir}")
    _out(f"initialized:    {'yes' if status.initialized else 'no'}")
    _out(f"running:        {f'yes (pid {status.pid})' if status.running else 'no'}")
    if status.url is not None:
        _out(f"url:            {_show_url(status.url)}")
    # Like `pg_ctl status`: a script can test the exit status.
    return EXIT_OK if status.running else 3


def cmd_db_url(args: argparse.Namespace) -> int:
    from .server import EmbeddedServer

    server = EmbeddedServer()
    _out(_show_url(server.url()))
    if not server.status().running:
        _note("note: the embedded server is not running; `vectorstore db start` starts it")
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from .migrate import current_revision, migrate

    url = _url(args)
    migrate(url, args.revision)
    _out(f"schema at revision {current_revision(url)}")
    return EXIT_OK


def cmd_db_downgrade(args: argparse.Namespace) -> int:
    from .migrate import current_revision, downgrade

    url = _url(args)
    downgrade(url, args.revision)
    _out(f"schema at revision {current_revision(url) or 'base (no vectorstore tables)'}")
    return EXIT_OK


def cmd_db_current(args: argparse.Namespace) -> int:
    from .migrate import current_revision, head_revision

    current = current_revision(_url(args))
    head = head_revision()
    if current is None:
        _out(f"no vectorstore schema (head is {head}); run `vectorstore db upgrade`")
        return 3
    _out(f"{current}{' (head)' if current == head else f' (head is {head})'}")
    return EXIT_OK


# -- stats -----------------------------------------------------------------------------
def cmd_stats(args: argparse.Namespace) -> int:
    from ._cli_stats import gather_stats

    engine = _engine(args)
    try:
        stats = gather_stats(engine)
    finally:
        engine.dispose()
    if args.json:
        _out(json.dumps(stats, indent=2, default=str))
        return EXIT_OK
    _out(f"server:    PostgreSQL {stats['server_version']}, pgvector {stats['pgvector_version']}")
    _out(f"schema:    {stats['schema_revision'] or 'not migrated'}")
    _out(f"documents: {stats['documents']} rows, table {_size(stats['table_bytes'])}")
    _out("")
    rows = [
        (c["name"], c["embedding_model"], c["dimension"], c["rows"]) for c in stats["collections"]
    ]
    _out(_table(["collection", "model", "dim", "rows"], rows) if rows else "no collections")
    _out("")
    idx = [(i["name"], i["method"], _size(i["bytes"])) for i in stats["indexes"]]
    _out(_table(["index", "method", "size"], idx) if idx else "no indexes")
    return EXIT_OK


# -- search ----------------------------------------------------------------------------
def cmd_search(args: argparse.Namespace) -> int:
    from ._cli_search import run_search

    engine = _engine(args)
    try:
        model = _collection_model(engine, args.collection)
        embedder = make_embedder(model, device=args.device)
        hits = run_search(
            engine,
            args.text,
            collection=args.collection,
            embedder=embedder,
            k=args.k,
            filter=_filter_from(args),
            hybrid=args.hybrid,
        )
    finally:
        engine.dispose()
    if args.json:
        _out(json.dumps(hits, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not hits:
        _out("no results")
        return EXIT_OK
    rows = [
        (
            n,
            f"{h['score']:.4f}",
            h["id"],
            h["external_id"] or "",
            _short(json.dumps(h["metadata"], ensure_ascii=False), 40),
            _short(h["text"], 60),
        )
        for n, h in enumerate(hits, 1)
    ]
    _out(_table(["#", "score", "id", "external_id", "metadata", "text"], rows))
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------
def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _add_subcommands(
    parser: argparse.ArgumentParser, dest: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    sub = parser.add_subparsers(dest=dest, metavar="COMMAND")
    sub.required = True
    return sub


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``vectorstore`` command (one subparser per command)."""
    from . import _cli_commands

    parser = argparse.ArgumentParser(
        prog="vectorstore",
        description="Text embeddings next to relational data in PostgreSQL + pgvector.",
        epilog="The database is --database-url, else $VECTORSTORE_DATABASE_URL, else the "
        "embedded server (started on first use).",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        default=None,
        help="PostgreSQL URL (default: $VECTORSTORE_DATABASE_URL, else the embedded server)",
    )
    commands = _add_subcommands(parser, "command")

    db = commands.add_parser("db", help="the embedded server and the schema migrations")
    db_sub = _add_subcommands(db, "db_command")
    db_sub.add_parser("start", help="start the embedded server (reused if running)").set_defaults(
        func=cmd_db_start
    )
    db_sub.add_parser("stop", help="stop the embedded server").set_defaults(func=cmd_db_stop)
    db_sub.add_parser(
        "status", help="data directory, running or not (exit 3 when stopped)"
    ).set_defaults(func=cmd_db_status)
    db_sub.add_parser("url", help="print the embedded server's URL").set_defaults(func=cmd_db_url)
    up = db_sub.add_parser("upgrade", help="apply vectorstore's migrations")
    up.add_argument("revision", nargs="?", default="head", help="target revision (default head)")
    up.set_defaults(func=cmd_db_upgrade)
    down = db_sub.add_parser("downgrade", help="revert vectorstore's migrations")
    down.add_argument(
        "revision", nargs="?", default="base", help="target revision (default base: drop tables)"
    )
    down.set_defaults(func=cmd_db_downgrade)
    db_sub.add_parser(
        "current", help="the schema revision of the database (exit 3 when not migrated)"
    ).set_defaults(func=cmd_db_current)

    search = commands.add_parser("search", help="nearest documents to a text")
    search.add_argument("text", help="the query text")
    search.add_argument("-k", type=_positive_int, default=10, help="results (default 10)")
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
    search.add_argument("--json", action="store_true", help="print JSON instead of a table")
    search.set_defaults(func=cmd_search)

    stats = commands.add_parser("stats", help="collections, rows, index sizes, pgvector version")
    stats.add_argument("--json", action="store_true", help="print JSON instead of tables")
    stats.set_defaults(func=cmd_stats)

    _cli_commands.add_pipeline_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler = args.func
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from .errors import VectorStoreError

    try:
        return func(args)
    except KeyboardInterrupt:
        _note("interrupted")
        return 130
    except UserError as exc:
        _note(f"error: {exc}")
        return EXIT_ERROR
    except VectorStoreError as exc:
        _note(f"error: {_one_line(exc)}")
        return EXIT_ERROR
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        _note(f"error: {exc.strerror}: {exc.filename}")
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        if os.environ.get("VECTORSTORE_DEBUG"):
            raise
        _note(
            f"internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(set VECTORSTORE_DEBUG=1 for the traceback, and please report it)"
        )
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
