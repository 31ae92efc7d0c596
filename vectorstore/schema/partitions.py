"""Tenants as partitions: a document table LIST-partitioned by collection.

A model with ``partition_by_collection = True`` gets a partitioned parent
table (primary key ``(collection_id, id)``, the unique ``(collection_id,
external_id)`` and the foreign key to the collections table) and, for every
collection, a partition of its own with its own secondary indexes: the HNSW
graph, the metadata and full-text GIN indexes and the content-hash btree.
So a tenant's search walks only its own graph (it always gets ``k`` back,
whatever the other tenants hold), and a big load into one tenant drops and
rebuilds only that tenant's indexes.

Design decisions:

* **The database decides, not the model.**  Every code path that cares
  (creating a collection, the catalog the planner reads, a big load, dropping
  a collection) asks PostgreSQL whether the table is partitioned, so a
  repository works unchanged whichever layout the table has
  (``DocumentRepository(session, collection="tenant-42")``).
* **Indexes per partition, none on the parent.**  An index declared on a
  partitioned parent is cloned onto every partition and attached to it, and
  an attached index cannot be dropped on its own: a big load into one tenant
  could not take its HNSW out of the COPY.  So the parent holds only the
  constraints, and :func:`create_partition` builds the model's secondary
  indexes on each new partition under names of its own (``vsp_*``).
* **Created in the caller's transaction, by ATTACH.**  The first write into
  a new collection creates its partition in the write's transaction (a first
  load that fails leaves neither collection nor partition).  The partition is
  created as a plain table and then attached: ``ATTACH PARTITION`` takes a
  SHARE UPDATE EXCLUSIVE lock on the parent, which lets other tenants read
  and write on while the new tenant's first load runs (``CREATE TABLE ...
  PARTITION OF`` would take ACCESS EXCLUSIVE and stop every tenant until the
  load commits).  Two new tenants created at once wait for each other.
* **Detach keeps the rows.**  :func:`detach_tenant` detaches the partition
  (its rows and indexes stay, in a table of their own) and leaves the
  collection's row, so :func:`attach_tenant` can put it back as it was;
  ``drop_collection`` drops the partition, attached or not.  A detached
  tenant reads as empty and refuses writes.
* **Ids.**  One identity sequence on the parent numbers every row, so ids
  stay unique across tenants although the primary key is ``(collection_id,
  id)``; ``get(id)`` filters on the collection too, so it names one
  partition.  Foreign keys *to* the documents table must name both columns.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, text
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex

from vectorstore.metadata_keys import declared_keys
from vectorstore.models import full_text_layout, secondary_indexes

from .catalog import forget, qualified_table

__all__ = [
    "PARTITION_PREFIX",
    "Partition",
    "create_partition",
    "drop_partition",
    "is_partitioned",
    "list_partitions",
    "partition_name",
    "partition_of",
    "partition_table",
]

#: Partitions and their indexes are named ``vsp_<table>_<collection id>[_<index>]``.
PARTITION_PREFIX = "vsp_"
_MAX_IDENTIFIER = 63
_BOUND = re.compile(r"^FOR VALUES IN \((\d+)\)$")
_INDEX_SUFFIXES = ("hash", "meta", "hnsw", "fts")

Bind = Session | Connection


@dataclass(frozen=True)
class Partition:
    """One tenant's partition.

    Attributes:
        name: the partition's table name (unquoted).
        collection_id: the collection it holds.
        attached: False once detached (its rows kept in a table of their own).
    """

    name: str
    collection_id: int
    attached: bool


def _qualified(bind: Bind, table: Table, name: str) -> str:
    preparer = _dialect(bind).identifier_preparer
    quoted = preparer.quote(name)
    return f"{preparer.quote_schema(table.schema)}.{quoted}" if table.schema else quoted


def _dialect(bind: Bind) -> Any:
    return bind.dialect if isinstance(bind, Connection) else bind.get_bind().dialect


def is_partitioned(bind: Bind, table: Table) -> bool:
    """Whether ``table`` exists as a table partitioned by ``collection_id`` (one catalog query)."""
    found = bind.execute(
        text(
            "SELECT p.partstrat = 'l' AND a.attname = 'collection_id' "
            "FROM pg_partitioned_table p JOIN pg_attribute a "
            "ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
            "WHERE p.partrelid = to_regclass(:t)"
        ),
        {"t": qualified_table(bind, table)},
    ).scalar_one_or_none()
    return bool(found)


def partition_name(table: Table, collection_id: int) -> str:
    """The name of collection ``collection_id``'s partition of ``table``.

    ``vsp_<table>_<id>``; for a table name too long for that (with room for
    the index suffixes in 63 bytes) a short hash of it stands in.
    """
    name = f"{PARTITION_PREFIX}{table.name}_{int(collection_id)}"
    if len(name) + 1 + max(map(len, _INDEX_SUFFIXES)) > _MAX_IDENTIFIER:
        digest = hashlib.blake2s(table.name.encode(), digest_size=4).hexdigest()
        name = f"{PARTITION_PREFIX}{digest}_{int(collection_id)}"
    return name


def list_partitions(bind: Bind, table: Table) -> list[Partition]:
    """Every partition of ``table``, attached ones and those :func:`detach_tenant` left."""
    rows = bind.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": qualified_table(bind, table)},
    ).all()
    found = {}
    for name, bound in rows:
        match = _BOUND.match(str(bound or ""))
        if match:
            found[int(match.group(1))] = Partition(str(name), int(match.group(1)), True)
    detached = bind.execute(
        text(
            "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND NOT c.relispartition AND c.relname LIKE :prefix "
            "AND n.nspname = coalesce(:schema, current_schema())"
        ),
        {"prefix": f"{PARTITION_PREFIX}%", "schema": table.schema},
    ).all()
    marker = _detached_marker(table)
    for name, comment in detached:
        if comment and str(comment).startswith(marker):
            cid = int(str(comment)[len(marker) :])
            found.setdefault(cid, Partition(str(name), cid, False))
    return sorted(found.values(), key=lambda p: p.collection_id)


def _detached_marker(table: Table) -> str:
    return f"vectorstore: detached partition of {table.name}, collection "


def partition_of(bind: Bind, table: Table, collection_id: int) -> Partition | None:
    """Collection ``collection_id``'s partition of ``table``, if it has one."""
    for found in list_partitions(bind, table):
        if found.collection_id == collection_id:
            return found
    return None


def partition_table(parent: Table, name: str, model: Any = None) -> Table:
    """A :class:`~sqlalchemy.Table` standing for partition ``name`` with its own indexes.

    Its columns are the parent's (names and types); its indexes are the
    model's secondary indexes (:func:`~vectorstore.models.secondary_indexes`,
    in ``model``'s full-text layout; the parent's columns tell when no model
    is given), named ``<partition>_hash|meta|hnsw|fts``, and one btree per
    ``indexed_metadata_keys`` key, named ``<partition>_k<position>``.
    """
    columns = [Column(c.name, c.type) for c in parent.columns]
    table = Table(name, MetaData(), *columns, schema=parent.schema)
    keys: tuple[str, ...] = ()
    if model is not None:
        layout = full_text_layout(model)
        keys = declared_keys(model)
    else:
        layout = "stored" if "text_search" in parent.c else "expression"
    indexes = secondary_indexes(name, layout, keys=keys)
    suffixes = (*_INDEX_SUFFIXES[: len(indexes) - len(keys)], *(f"k{i}" for i in range(len(keys))))
    for index, suffix in zip(indexes, suffixes, strict=True):
        index.name = f"{name}_{suffix}"  # type: ignore[assignment]
        index._set_parent(table)
    return table


def create_partition(bind: Bind, parent: Table, collection_id: int, model: Any = None) -> str:
    """Create and attach collection ``collection_id``'s partition, with its indexes.

    In ``bind``'s transaction: the empty table (``LIKE`` the parent: its
    defaults, generated columns and CHECK constraints, which ATTACH requires;
    not the identity, the parent's sequence numbers every row), its indexes, then ``ATTACH
    PARTITION`` (SHARE UPDATE EXCLUSIVE on the parent; see the module docs).
    Returns the partition's name.
    """
    name = partition_name(parent, collection_id)
    qualified = _qualified(bind, parent, name)
    parent_name = qualified_table(bind, parent)
    cid = int(collection_id)
    bind.execute(
        text(
            f"CREATE TABLE {qualified} (LIKE {parent_name} INCLUDING DEFAULTS "
            f"INCLUDING GENERATED INCLUDING STORAGE INCLUDING CONSTRAINTS, "
            f"CONSTRAINT {_check_name(name)} CHECK (collection_id IS NOT NULL AND "
            f"collection_id = {cid}))"
        )
    )
    dialect = _dialect(bind)
    for index in sorted(partition_table(parent, name, model).indexes, key=lambda i: str(i.name)):
        bind.execute(text(str(CreateIndex(index).compile(dialect=dialect))))
    # The CHECK constraint proves the bound: ATTACH skips its validation scan.
    bind.execute(
        text(f"ALTER TABLE {parent_name} ATTACH PARTITION {qualified} FOR VALUES IN ({cid})")
    )
    bind.execute(text(f"ALTER TABLE {qualified} DROP CONSTRAINT {_check_name(name)}"))
    forget(parent)
    return name


def _check_name(partition: str) -> str:
    return f'"{partition}_bound"'


def drop_partition(bind: Bind, parent: Table, collection_id: int) -> bool:
    """Drop collection ``collection_id``'s partition (attached or detached); False if none."""
    found = partition_of(bind, parent, collection_id)
    if found is None:
        return False
    bind.execute(text(f"DROP TABLE {_qualified(bind, parent, found.name)}"))
    forget(parent)
    return True
