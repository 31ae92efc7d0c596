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
import os
import sys
from collections.abc import Sequence

from ._common import EXIT_ERROR, EXIT_INTERNAL, EXIT_OK, Handler, UserError, add_subcommands, note

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``vectorstore`` command (one subparser per command)."""
    from .aliases import add_alias_commands
    from .collections import add_collection_commands
    from .db import add_db_commands
    from .ingest import add_pipeline_commands
    from .reembed import add_reembed_command
    from .search import add_search_command
    from .stats import add_stats_command
    from .tenants import add_tenant_commands
    from .tune import add_tune_command

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
    commands = add_subcommands(parser, "command")
    add_db_commands(commands)
    add_search_command(commands)
    add_stats_command(commands)
    add_collection_commands(commands)
    add_tenant_commands(commands)
    add_alias_commands(commands)
    add_tune_command(commands)

    add_pipeline_commands(commands)
    add_reembed_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler = args.func
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from vectorstore.errors import VectorStoreError

    try:
        return func(args)
    except KeyboardInterrupt:
        note("interrupted")
        return 130
    except UserError as exc:
        note(f"error: {exc}")
        return EXIT_ERROR
    except VectorStoreError as exc:
        note(f"error: {_one_line(exc)}")
        return EXIT_ERROR
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        note(f"error: {exc.strerror}: {exc.filename}")
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        if os.environ.get("VECTORSTORE_DEBUG"):
            raise
        note(
            f"internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(set VECTORSTORE_DEBUG=1 for the traceback, and please report it)"
        )
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
