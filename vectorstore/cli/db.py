"""``vectorstore db``: the embedded server (start, stop, status, url) and the migrations."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import EXIT_OK, add_subcommands, note, out, show_url, url_for

__all__ = ["add_db_commands"]


def cmd_db_start(args: argparse.Namespace) -> int:
    from vectorstore.server import EmbeddedServer

    server = EmbeddedServer()
    was_running = server.status().running
    url = server.start()
    note("embedded server already running" if was_running else "embedded server started")
    out(show_url(url))
    return EXIT_OK


def cmd_db_stop(args: argparse.Namespace) -> int:
    from vectorstore.server import EmbeddedServer

    stopped = EmbeddedServer().stop()
    out("embedded server stopped" if stopped else "embedded server was not running")
    return EXIT_OK


def cmd_db_status(args: argparse.Namespace) -> int:
    from vectorstore.server import EmbeddedServer

    status = EmbeddedServer().status()
    out(f"data directory: {status.data_dir}")
    out(f"initialized:    {'yes' if status.initialized else 'no'}")
    out(f"running:        {f'yes (pid {status.pid})' if status.running else 'no'}")
    if status.url is not None:
        out(f"url:            {show_url(status.url)}")
    # Like `pg_ctl status`: a script can test the exit status.
    return EXIT_OK if status.running else 3


def cmd_db_url(args: argparse.Namespace) -> int:
    from vectorstore.server import EmbeddedServer

    server = EmbeddedServer()
    out(show_url(server.url()))
    if not server.status().running:
        note("note: the embedded server is not running; `vectorstore db start` starts it")
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from vectorstore.schema.migrate import current_revision, migrate

    url = url_for(args)
    migrate(url, args.revision)
    out(f"schema at revision {current_revision(url)}")
    return EXIT_OK


def cmd_db_downgrade(args: argparse.Namespace) -> int:
    from vectorstore.schema.migrate import current_revision, downgrade

    url = url_for(args)
    downgrade(url, args.revision)
    out(f"schema at revision {current_revision(url) or 'base (no vectorstore tables)'}")
    return EXIT_OK


def cmd_db_current(args: argparse.Namespace) -> int:
    from vectorstore.schema.migrate import current_revision, head_revision

    current = current_revision(url_for(args))
    head = head_revision()
    if current is None:
        out(f"no vectorstore schema (head is {head}); run `vectorstore db upgrade`")
        return 3
    out(f"{current}{' (head)' if current == head else f' (head is {head})'}")
    return EXIT_OK


def add_db_commands(commands: Any) -> None:
    """Register ``db start|stop|status|url|upgrade|downgrade|current``."""
    db = commands.add_parser("db", help="the embedded server and the schema migrations")
    db_sub = add_subcommands(db, "db_command")
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
