"""Collection aliases: a second name that every repository resolves at each call.

An alias is one row (``vectorstore_aliases``: name -> collection).
A repository built with ``collection="products"`` where ``products`` is an
alias works on the collection the alias points to, everywhere a name works
(the sync and async repositories, the CLI, the Flask and Django settings).
Switching the alias is one UPDATE of that row in one transaction, so every
reader moves from the old collection to the new one at once; the row keeps
the collection it pointed to before, which :func:`rollback_alias` switches
back to in one call.

When a switch is seen (the design, in terms of caches):

* A standalone repository resolves an alias again at every call (one indexed
  lookup), so a switch committed by any process is seen by its next call.
* A repository bound to the host's Session resolves once per transaction of
  that Session and keeps that collection for the rest of the transaction (a
  consistent view); the next transaction sees the switch.
* Writes through an alias resolve it inside their own transaction and hold
  the alias row (``FOR SHARE``) until they commit: a write goes to the
  collection the alias points to when it runs, and a switch waits for the
  writes in flight (and the writes that come during the switch wait for it,
  then go to the new collection).  So no write through an alias can land in
  the old collection after the switch.  Writes that name the old collection
  directly are not followed: write through the alias while you migrate.

Collections and aliases share one name space: an alias cannot take the name
of a collection, nor a collection the name of an alias.  An alias cannot
point to another alias, and a collection an alias points to cannot be
dropped (switch or drop the alias first).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, aliased

from vectorstore._identifiers import check_collection_name
from vectorstore.errors import (
    CollectionNotFoundError,
    ConflictError,
    DimensionMismatchError,
    ValidationError,
    sqlstate,
)
from vectorstore.models import Collection, CollectionAlias
from vectorstore.results import AliasInfo

from .collections import Bindable, _transaction, claim_name

__all__ = [
    "create_alias",
    "drop_alias",
    "get_alias",
    "list_aliases",
    "lock_alias",
    "rollback_alias",
    "switch_alias",
    "switch_in",
]


def _collection_row(session: Session, name: str) -> Any:
    row = session.execute(
        select(Collection.id, Collection.name, Collection.dimension).where(Collection.name == name)
    ).one_or_none()
    if row is None:
        if session.execute(
            select(CollectionAlias.name).where(CollectionAlias.name == name)
        ).first():
            raise ValidationError(f"{name!r} is an alias; an alias points to a collection")
        raise CollectionNotFoundError(f"no collection named {name!r}")
    return row


def _listing(session: Session, name: str | None) -> list[AliasInfo]:
    current = aliased(Collection)
    previous = aliased(Collection)
    a = CollectionAlias
    query = (
        select(a.name, a.collection_id, a.table_name, a.switched_at, current.name, previous.name)
        .join(current, current.id == CollectionAlias.collection_id)
        .outerjoin(previous, previous.id == CollectionAlias.previous_collection_id)
        .order_by(CollectionAlias.name)
    )
    if name is not None:
        query = query.where(CollectionAlias.name == name)
    return [
        AliasInfo(
            name=str(alias), collection=str(target), collection_id=int(target_id),
            previous=None if before is None else str(before), table=table,
            switched_at=switched_at,
        )
        for alias, target_id, table, switched_at, target, before in session.execute(query).all()
    ]  # fmt: skip


def list_aliases(bind: Bindable = None) -> list[AliasInfo]:
    """Every alias, by name, with the collection it points to and the one before."""
    with _transaction(bind, "list aliases") as session:
        return _listing(session, None)


def get_alias(bind: Bindable, name: str) -> AliasInfo:
    """One alias.

    Raises:
        CollectionNotFoundError: there is no alias called ``name``.
    """
    check_collection_name(name)
    with _transaction(bind, f"read alias {name!r}") as session:
        found = _listing(session, name)
    if not found:
        raise CollectionNotFoundError(f"no alias named {name!r}")
    return found[0]


def create_alias(
    bind: Bindable, name: str, collection: str, *, table: str | None = None
) -> AliasInfo:
    """Create the alias ``name`` for the collection ``collection``.

    Args:
        table: the document table holding the collection's rows (recorded
            for tools; optional).

    Raises:
        ConflictError: a collection or an alias called ``name`` exists already.
        CollectionNotFoundError: there is no collection ``collection``.
        ValidationError: ``collection`` is itself an alias, or a bad name.
    """
    check_collection_name(name)
    check_collection_name(collection)
    with _transaction(bind, f"create alias {name!r}") as session:
        target = _collection_row(session, collection)
        claim_name(session, name, kind="alias")
        session.execute(
            pg_insert(CollectionAlias).values(name=name, collection_id=target.id, table_name=table)
        )
        return _listing(session, name)[0]


def lock_alias(session: Session, name: str, *, nowait: bool = False) -> Any:
    """Hold the alias row for update in ``session``'s transaction; returns the row.

    Writes through the alias hold it ``FOR SHARE``: this waits for them (or,
    with ``nowait``, refuses at once), and the writes that come later wait
    for this transaction.

    Raises:
        CollectionNotFoundError: there is no alias called ``name``.
        ConflictError: ``nowait`` and a write holds the alias.
    """
    a = CollectionAlias
    query = select(a.name, a.collection_id, a.table_name, a.previous_collection_id,
                   a.previous_table_name).where(a.name == name)  # fmt: skip
    try:
        with session.begin_nested():
            row = session.execute(query.with_for_update(nowait=nowait)).one_or_none()
    except sa_exc.DBAPIError as exc:
        if sqlstate(exc) != "55P03":
            raise
        raise ConflictError(f"alias {name!r} is held by a write; try again") from exc
    if row is None:
        raise CollectionNotFoundError(f"no alias named {name!r}")
    return row


def _switch(session: Session, name: str, target: int, table: str | None, row: Any) -> None:
    session.execute(
        update(CollectionAlias)
        .where(CollectionAlias.name == name)
        .values(
            collection_id=target, table_name=table,
            previous_collection_id=row.collection_id, previous_table_name=row.table_name,
            switched_at=func.now(),
        )
    )  # fmt: skip


def switch_in(session: Session, name: str, collection_id: int, *, table: str | None = None) -> None:
    """Switch the alias to the collection ``collection_id`` inside ``session``'s transaction.

    For a caller that already holds the alias (:func:`lock_alias`) and has
    checked the target; :func:`switch_alias` is the checked, one-call form.
    """
    row = lock_alias(session, name)
    if row.collection_id != collection_id:
        _switch(session, name, collection_id, table, row)


def switch_alias(
    bind: Bindable,
    name: str,
    collection: str,
    *,
    table: str | None = None,
    allow_dimension_change: bool = True,
) -> AliasInfo:
    """Point the alias ``name`` at ``collection``, in one transaction; returns the alias.

    Every repository using the alias works on ``collection`` from its next
    call (standalone) or its Session's next transaction.  The collection it
    pointed to is kept as ``previous`` (:func:`rollback_alias`).  The switch
    waits for the writes that hold the alias (see the module docstring).

    Args:
        table: the document table holding ``collection``'s rows (recorded).
        allow_dimension_change: False refuses a target of another dimension
            (repositories of the old document model would fail on it).

    Raises:
        CollectionNotFoundError: no such alias or collection.
        DimensionMismatchError: another dimension with ``allow_dimension_change=False``.
    """
    check_collection_name(name)
    check_collection_name(collection)
    with _transaction(bind, f"switch alias {name!r}") as session:
        row = lock_alias(session, name)
        target = _collection_row(session, collection)
        if not allow_dimension_change:
            now = session.execute(
                select(Collection.dimension).where(Collection.id == row.collection_id)
            ).scalar_one()
            if int(now) != int(target.dimension):
                raise DimensionMismatchError(
                    f"alias {name!r} points to {now}-d vectors; {collection!r} holds "
                    f"{target.dimension}-d vectors"
                )
        if row.collection_id != target.id:
            _switch(session, name, int(target.id), table, row)
        return _listing(session, name)[0]


def rollback_alias(bind: Bindable, name: str) -> AliasInfo:
    """Switch the alias back to the collection it pointed to before its last switch.

    A second rollback switches forward again (the two swap places).

    Raises:
        CollectionNotFoundError: no such alias.
        ValidationError: it has no previous collection (never switched, or
            that collection was dropped since).
    """
    check_collection_name(name)
    with _transaction(bind, f"roll back alias {name!r}") as session:
        row = lock_alias(session, name)
        if row.previous_collection_id is None:
            raise ValidationError(f"alias {name!r} has no previous collection to go back to")
        before = session.execute(
            select(Collection.id, Collection.name).where(
                Collection.id == row.previous_collection_id
            )
        ).one()
        session.execute(
            update(CollectionAlias)
            .where(CollectionAlias.name == name)
            .values(
                collection_id=before.id, table_name=row.previous_table_name,
                previous_collection_id=row.collection_id, previous_table_name=row.table_name,
                switched_at=func.now(),
            )
        )  # fmt: skip
        return _listing(session, name)[0]


def drop_alias(bind: Bindable, name: str, *, missing_ok: bool = False) -> bool:
    """Delete the alias ``name`` (its collection stays); False when it did not exist.

    Raises:
        CollectionNotFoundError: no such alias (and ``missing_ok`` is False).
    """
    check_collection_name(name)
    with _transaction(bind, f"drop alias {name!r}") as session:
        gone = session.execute(
            delete(CollectionAlias).where(CollectionAlias.name == name)
            .returning(CollectionAlias.name)
        ).first()  # fmt: skip
    if gone is None and not missing_ok:
        raise CollectionNotFoundError(f"no alias named {name!r}")
    return gone is not None
