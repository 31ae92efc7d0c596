"""Tenants as a whole: create, detach, attach and drop one tenant of a partitioned table.

The library face of ``vectorstore tenant ...`` and of the alembic operations;
it stands on :mod:`vectorstore.schema.partitions` (the partition DDL) and
:mod:`vectorstore.schema.collections` (the collection rows), which never
import it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["attach_tenant", "create_tenant", "detach_tenant", "drop_tenant"]

from sqlalchemy import URL, Connection, Engine, Table, select, text
from sqlalchemy.orm import Session

from vectorstore._identifiers import check_collection_name
from vectorstore.errors import CollectionNotFoundError, ConfigurationError, ValidationError
from vectorstore.models import Collection
from vectorstore.results import CollectionInfo

from .catalog import forget, qualified_table
from .partitions import (
    _check_name,
    _detached_marker,
    _qualified,
    create_partition,
    is_partitioned,
    partition_of,
)

# -- tenants as a whole: the library face of `vectorstore tenant ...` and the alembic ops ----
Bindable = Engine | Session | Connection | str | URL | None


@contextmanager
def _transaction(bind: Bindable, action: str) -> Iterator[Session]:
    from .collections import _transaction as collection_transaction

    if isinstance(bind, Connection):  # an alembic op's connection: in its transaction
        if not bind.in_transaction():
            bind.begin()  # as the connection's autobegin would: the caller commits it
        with Session(bind=bind, join_transaction_mode="create_savepoint") as session:
            with collection_transaction(session, action) as inner:
                yield inner
            session.commit()  # releases the savepoint; the connection's transaction goes on
        return
    with collection_transaction(bind, action) as session:
        yield session


def _partitioned_table(session: Session, model: Any) -> Table:
    from .collections import _document_table

    table = _document_table(model)
    if not is_partitioned(session, table):
        raise ConfigurationError(
            f"{qualified_table(session, table)} is not partitioned by collection; "
            f"set {model.__name__}.partition_by_collection = True and create the table "
            "with that layout (see docs/tenants.md)"
        )
    return table


def _collection_id(session: Session, name: str, *, lock: bool = False) -> int:
    query = select(Collection.id).where(Collection.name == name)
    found = session.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    if found is None:
        raise CollectionNotFoundError(f"no collection named {name!r}")
    return int(found)


def create_tenant(
    bind: Bindable,
    name: str,
    *,
    model: Any,
    embedding_model: str | None = None,
    dimension: int | None = None,
) -> CollectionInfo:
    """Create collection ``name`` and its partition of ``model``'s table, in one transaction.

    Args:
        bind: an Engine, a Session (a SAVEPOINT in its transaction), an
            alembic op's Connection, a URL, or None (as :func:`vectorstore.make_engine`).
        model: the partitioned document model.
        embedding_model: the model name its vectors come from (default all-MiniLM-L6-v2).
        dimension: checked against the model's (default: the model's).

    Raises:
        ConfigurationError: ``model``'s table is not partitioned by collection.
        ConflictError: a collection called ``name`` exists already.
    """
    from vectorstore.models import DEFAULT_MODEL_NAME

    from .collections import create_collection

    check_collection_name(name)
    with _transaction(bind, f"create tenant {name!r}") as session:
        table = _partitioned_table(session, model)
        info = create_collection(
            session, name, embedding_model=embedding_model or DEFAULT_MODEL_NAME,
            dimension=dimension, model=model,
        )  # fmt: skip
        create_partition(session, table, info.id, model)
    return info


def detach_tenant(bind: Bindable, name: str, *, model: Any) -> str:
    """Detach collection ``name``'s partition from ``model``'s table; returns the partition's name.

    The rows and the indexes stay, in a table of their own; the collection
    stays too (it reads as empty and refuses writes) until
    :func:`attach_tenant` puts the partition back or ``drop_collection``
    drops both.  ``DETACH PARTITION`` takes an ACCESS EXCLUSIVE lock on the
    parent for the rest of the transaction: keep the transaction short.

    Raises:
        CollectionNotFoundError: no collection called ``name``.
        ValidationError: it has no attached partition.
    """
    check_collection_name(name)
    with _transaction(bind, f"detach tenant {name!r}") as session:
        table = _partitioned_table(session, model)
        cid = _collection_id(session, name, lock=True)
        found = partition_of(session, table, cid)
        if found is None or not found.attached:
            raise ValidationError(f"collection {name!r} has no attached partition to detach")
        qualified = _qualified(session, table, found.name)
        session.execute(
            text(f"ALTER TABLE {qualified_table(session, table)} DETACH PARTITION {qualified}")
        )
        # The bound as a constraint: a later ATTACH skips its validation scan.
        session.execute(
            text(
                f"ALTER TABLE {qualified} ADD CONSTRAINT {_check_name(found.name)} "
                f"CHECK (collection_id IS NOT NULL AND collection_id = {cid})"
            )
        )
        marker = _detached_marker(table).replace("'", "''")
        session.execute(text(f"COMMENT ON TABLE {qualified} IS '{marker}{cid}'"))
        forget(table)
    return found.name


def attach_tenant(bind: Bindable, name: str, *, model: Any) -> str:
    """Attach collection ``name``'s detached partition again; returns its name.

    Raises:
        CollectionNotFoundError: no collection called ``name``.
        ValidationError: it has no detached partition.
    """
    check_collection_name(name)
    with _transaction(bind, f"attach tenant {name!r}") as session:
        table = _partitioned_table(session, model)
        cid = _collection_id(session, name, lock=True)
        found = partition_of(session, table, cid)
        if found is None or found.attached:
            raise ValidationError(f"collection {name!r} has no detached partition to attach")
        qualified = _qualified(session, table, found.name)
        session.execute(
            text(
                f"ALTER TABLE {qualified_table(session, table)} ATTACH PARTITION {qualified} "
                f"FOR VALUES IN ({cid})"
            )
        )
        session.execute(text(f"COMMENT ON TABLE {qualified} IS NULL"))
        session.execute(text(f"ALTER TABLE {qualified} DROP CONSTRAINT {_check_name(found.name)}"))
        forget(table)
    return found.name


def drop_tenant(bind: Bindable, name: str, *, model: Any, missing_ok: bool = False) -> int:
    """Drop collection ``name`` with its partition, attached or detached; the rows it held.

    ``drop_collection`` for a partitioned table, taking an alembic op's
    Connection too.  One transaction.
    """
    from .collections import drop_collection

    check_collection_name(name)
    with _transaction(bind, f"drop tenant {name!r}") as session:
        table = _partitioned_table(session, model)
        found = session.execute(
            select(Collection.id).where(Collection.name == name)
        ).scalar_one_or_none()
        held = 0
        if found is not None:
            part = partition_of(session, table, int(found))
            if part is not None and not part.attached:
                qualified = _qualified(session, table, part.name)
                held = int(session.execute(text(f"SELECT count(*) FROM {qualified}")).scalar_one())
        return held + drop_collection(session, name, model=model, missing_ok=missing_ok)
