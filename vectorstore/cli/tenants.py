"""``vectorstore tenant create|detach|attach|drop|list``: tenants as partitions.

Each subcommand is one call of :mod:`vectorstore.schema.partitions` on the
``--model`` given (a ``DocumentMixin`` model with ``partition_by_collection
= True`` whose table exists with that layout).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._common import (
    EXIT_OK,
    UserError,
    add_document_model_argument,
    add_subcommands,
    document_model,
    opened_engine,
    out,
    table,
)

__all__ = ["add_tenant_commands"]


def cmd_create(args: argparse.Namespace) -> int:
    from vectorstore.schema.tenants import create_tenant

    model = document_model(args.model)
    with opened_engine(args) as engine:
        info = create_tenant(engine, args.name, model=model, embedding_model=args.embedder)
    out(f"tenant {info.name} created (collection id {info.id}, {info.embedding_model})")
    return EXIT_OK


def cmd_detach(args: argparse.Namespace) -> int:
    from vectorstore.schema.tenants import detach_tenant

    model = document_model(args.model)
    with opened_engine(args) as engine:
        name = detach_tenant(engine, args.name, model=model)
    out(f"tenant {args.name} detached: its rows are kept in table {name}")
    return EXIT_OK


def cmd_attach(args: argparse.Namespace) -> int:
    from vectorstore.schema.tenants import attach_tenant

    model = document_model(args.model)
    with opened_engine(args) as engine:
        name = attach_tenant(engine, args.name, model=model)
    out(f"tenant {args.name} attached again ({name})")
    return EXIT_OK


def cmd_drop(args: argparse.Namespace) -> int:
    from vectorstore.schema.tenants import drop_tenant

    if not args.yes:
        raise UserError(
            f"dropping tenant {args.name!r} deletes its documents: add --yes to confirm"
        )
    model = document_model(args.model)
    with opened_engine(args) as engine:
        deleted = drop_tenant(engine, args.name, model=model)
    out(f"tenant {args.name} dropped ({deleted:,} documents deleted)")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from vectorstore.models import Collection
    from vectorstore.schema.partitions import list_partitions

    model = document_model(args.model)
    with opened_engine(args) as engine:
        with Session(engine) as session:
            names = dict(session.query(Collection.id, Collection.name).all())
            found = list_partitions(session, model.__table__)
    rows: list[Any] = [
        (names.get(p.collection_id, "?"), p.collection_id, p.name,
         "attached" if p.attached else "detached")
        for p in found
    ]  # fmt: skip
    if args.json:
        keys = ("tenant", "collection_id", "partition", "state")
        out(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
        return EXIT_OK
    if not rows:
        out("no tenant partitions")
        return EXIT_OK
    out(table(["tenant", "id", "partition", "state"], rows))
    return EXIT_OK


def add_tenant_commands(commands: Any) -> None:
    """Register ``tenant create|detach|attach|drop|list``."""
    tenant = commands.add_parser(
        "tenant", help="tenants as partitions: create, detach, attach, drop, list"
    )
    sub = add_subcommands(tenant, "tenant_command")

    create = sub.add_parser("create", help="a collection and its own partition, one transaction")
    create.add_argument("name", help="tenant (collection) name")
    create.add_argument(
        "--embedder", metavar="NAME", default=None,
        help="the embedding model its vectors come from (default all-MiniLM-L6-v2)",
    )  # fmt: skip
    add_document_model_argument(create)
    create.set_defaults(func=cmd_create)

    detach = sub.add_parser("detach", help="detach a tenant's partition (its rows are kept)")
    detach.add_argument("name", help="tenant name")
    add_document_model_argument(detach)
    detach.set_defaults(func=cmd_detach)

    attach = sub.add_parser("attach", help="attach a detached tenant's partition again")
    attach.add_argument("name", help="tenant name")
    add_document_model_argument(attach)
    attach.set_defaults(func=cmd_attach)

    drop = sub.add_parser("drop", help="drop a tenant: its collection, partition and rows")
    drop.add_argument("name", help="tenant name")
    drop.add_argument("--yes", action="store_true", help="confirm: the documents are deleted")
    add_document_model_argument(drop)
    drop.set_defaults(func=cmd_drop)

    listing = sub.add_parser("list", help="every tenant partition of the model's table")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_document_model_argument(listing)
    listing.set_defaults(func=cmd_list)
