"""``vectorstore alias list|create|switch|rollback|drop``: the second names of collections.

Each subcommand is one call of the library function of the same name
(:mod:`vectorstore.schema.aliases`), which owns the behaviour: a switch is one
transaction, and every repository that uses the alias follows it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._common import EXIT_OK, add_subcommands, opened_engine, out, table

__all__ = ["add_alias_commands"]


def _as_dict(info: Any) -> dict[str, Any]:
    return {
        "name": info.name, "collection": info.collection, "previous": info.previous,
        "table": info.table,
        "switched_at": None if info.switched_at is None else info.switched_at.isoformat(),
    }  # fmt: skip


def cmd_list(args: argparse.Namespace) -> int:
    from vectorstore.schema.aliases import list_aliases

    with opened_engine(args) as engine:
        found = list_aliases(engine)
    if args.json:
        out(json.dumps([_as_dict(a) for a in found], indent=2))
        return EXIT_OK
    if not found:
        out("no aliases")
        return EXIT_OK
    rows = [(a.name, a.collection, a.previous or "") for a in found]
    out(table(["alias", "collection", "previous"], rows))
    return EXIT_OK


def _one(args: argparse.Namespace, call: Any, *names: str) -> Any:
    with opened_engine(args) as engine:
        return call(engine, *names)


def cmd_create(args: argparse.Namespace) -> int:
    from vectorstore.schema.aliases import create_alias

    info = _one(args, create_alias, args.name, args.collection)
    out(f"alias {info.name} -> {info.collection} created")
    return EXIT_OK


def cmd_switch(args: argparse.Namespace) -> int:
    from vectorstore.schema.aliases import switch_alias

    info = _one(args, switch_alias, args.name, args.collection)
    out(f"alias {info.name} -> {info.collection} (was {info.previous or 'the same'})")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from vectorstore.schema.aliases import rollback_alias

    info = _one(args, rollback_alias, args.name)
    out(f"alias {info.name} -> {info.collection} again (was {info.previous})")
    return EXIT_OK


def cmd_drop(args: argparse.Namespace) -> int:
    from vectorstore.schema.aliases import drop_alias

    _one(args, drop_alias, args.name)
    out(f"alias {args.name} dropped (its collection stays)")
    return EXIT_OK


def add_alias_commands(commands: Any) -> None:
    """Register ``alias list|create|switch|rollback|drop``."""
    alias = commands.add_parser("alias", help="second names of collections, switched atomically")
    sub = add_subcommands(alias, "alias_command")

    listing = sub.add_parser("list", help="every alias, its collection and the one before")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=cmd_list)

    create = sub.add_parser("create", help="a new alias of a collection")
    create.add_argument("name", help="the alias")
    create.add_argument("collection", help="the collection it names")
    create.set_defaults(func=cmd_create)

    switch = sub.add_parser("switch", help="point an alias at another collection (one transaction)")
    switch.add_argument("name", help="the alias")
    switch.add_argument("collection", help="the collection it names from now on")
    switch.set_defaults(func=cmd_switch)

    rollback = sub.add_parser("rollback", help="point an alias back at its previous collection")
    rollback.add_argument("name", help="the alias")
    rollback.set_defaults(func=cmd_rollback)

    drop = sub.add_parser("drop", help="delete an alias (its collection stays)")
    drop.add_argument("name", help="the alias")
    drop.set_defaults(func=cmd_drop)
