"""The one reader of the ANN index catalog, cached per engine and table.

Everything that needs to know a table's HNSW / IVFFlat indexes reads them
here: ``nearest`` (which metric, precision and collection each index serves,
whether pgvector is new enough for iterative scans, and which columns and
metadata keys a btree leads with, so that the planner knows which filters an
index narrows: :class:`BtreeKeys`), the index commands
(``list_indexes``, ``drop_index``) and the big-load path (the exact
``CREATE INDEX`` statements to rebuild after a load).  One query of
``pg_index`` answers all of them; ``pg_get_indexdef`` gives the server's own
statement text, so any index (partial, expression, any operator class) is
recreated exactly.

The cache is keyed by engine and table, not by repository: an app that builds
a repository per web request reads the catalog once per process (and again
after :data:`CATALOG_TTL_S`, or at once after vectorstore itself creates or
drops an index on that engine).
"""

from __future__ import annotations

import re
import time
import weakref
from dataclasses import dataclass, field

from sqlalchemy import Engine, Table, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from vectorstore._metrics import Metric, Precision, metric_of_opclass, precision_of_opclass

__all__ = [
    "CATALOG_TTL_S",
    "AnnIndex",
    "BtreeKeys",
    "Catalog",
    "cached_catalog",
    "forget",
    "list_ann_indexes",
    "list_btree_keys",
    "parse_version",
    "pgvector_version",
    "planner_rows",
    "qualified_table",
    "read_catalog",
]

Bind = Session | Connection

#: How long a view of the indexes and table statistics is trusted (seconds).
CATALOG_TTL_S = 60.0
ANN_METHODS = ("hnsw", "ivfflat")
_COLLECTION_PRED = re.compile(r"collection_id\s*=\s*(\d+)")
_OPS = re.compile(r"\b(\w+_ops)\b")
#: A btree key on one metadata key, as ``pg_get_indexdef`` prints the index of
#: ``indexed_metadata_keys`` (``(metadata -> 'key'::text)``).
_METADATA_KEY = re.compile(r"^\(?metadata -> '([A-Za-z0-9_]+)'::text\)?$")
_COLUMN = re.compile(r'^"?([A-Za-z_][A-Za-z0-9_$]*)"?$')


@dataclass(frozen=True)
class AnnIndex:
    """An HNSW or IVFFlat index found in the catalog.

    Attributes:
        name: the index name.
        method: ``"hnsw"`` or ``"ivfflat"``.
        metric: the metric its operator class serves (None for a binary index).
        precision: ``"vector"``, ``"halfvec"`` or ``"binary"``.
        collection_id: the collection of a per-collection (partial) index, else None.
        valid: False for a concurrent build that did not finish.
        definition: the server's ``CREATE INDEX`` statement for it.
        partition: the index is on a partition of the table (a tenant's own
            partition: :mod:`vectorstore.schema.partitions`).
    """

    name: str
    method: str
    metric: Metric | None
    precision: Precision
    collection_id: int | None
    valid: bool
    definition: str
    partition: bool = False


def parse_version(value: str) -> tuple[int, ...]:
    """``"0.8.1"`` -> ``(0, 8, 1)``; non-digits in a part are ignored (``"0.5rc1"`` -> (0, 51))."""
    return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in value.split("."))


def pgvector_version(bind: Bind) -> tuple[int, ...] | None:
    """The installed pgvector version, or None when the extension is not installed."""
    found = bind.execute(
        text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    ).scalar_one_or_none()
    return None if found is None else parse_version(str(found))


def _engine(bind: Bind) -> Engine:
    if isinstance(bind, Connection):
        return bind.engine
    engine = bind.get_bind()
    return engine if isinstance(engine, Engine) else engine.engine


def qualified_table(bind: Bind | Engine, table: Table) -> str:
    """``table``'s quoted (schema-qualified) name for ``bind``'s dialect."""
    dialect = bind.dialect if isinstance(bind, Engine | Connection) else _engine(bind).dialect
    return str(dialect.identifier_preparer.format_table(table))


def list_ann_indexes(bind: Bind, table: Table) -> list[AnnIndex]:
    """The HNSW and IVFFlat indexes on ``table``, by name (one catalog query).

    On a table partitioned by collection (:mod:`vectorstore.schema.partitions`)
    the indexes of its partitions are listed too, each as its collection's own
    (``collection_id`` from the partition's bound), like a per-collection
    partial index: the planner sees the tenant's HNSW graph.
    """
    rows = bind.execute(
        text(
            "SELECT c.relname, am.amname, pg_get_indexdef(i.indexrelid), "
            "coalesce(pg_get_expr(i.indpred, i.indrelid), "
            "substring(pg_get_expr(t.relpartbound, t.oid) FROM '^FOR VALUES IN \\((\\d+)\\)$')), "
            "i.indisvalid, t.relispartition "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_am am ON am.oid = c.relam "
            "WHERE (i.indrelid = CAST(:table AS regclass) OR i.indrelid IN "
            "(SELECT inhrelid FROM pg_inherits WHERE inhparent = CAST(:table AS regclass))) "
            "AND am.amname IN ('hnsw', 'ivfflat') "
            "ORDER BY c.relname"
        ),
        {"table": qualified_table(bind, table)},
    ).all()
    found = []
    for name, method, definition, predicate, valid, partition in rows:
        ops = _OPS.search(definition)
        opclass = ops.group(1) if ops else ""
        match = _COLLECTION_PRED.search(predicate or "")
        if partition:
            match = re.match(r"(\d+)$", predicate or "")
        found.append(AnnIndex(
            name=str(name), method=str(method), metric=metric_of_opclass(opclass),
            precision=precision_of_opclass(opclass),
            collection_id=int(match.group(1)) if match else None, valid=bool(valid),
            definition=str(definition), partition=bool(partition),
        ))  # fmt: skip
    return found


@dataclass(frozen=True)
class BtreeKeys:
    """What the table's valid, non-partial btree indexes lead with, within a collection.

    A btree narrows a filter on its first key, or on its second where the
    first is ``collection_id`` (every nearest query has that equality).

    Attributes:
        columns: column names (``id``, ``external_id``, an app's own
            ``created_at`` index, ...).
        metadata_keys: metadata keys with a btree on ``(metadata -> 'key')``
            (the indexes ``indexed_metadata_keys`` declares).
    """

    columns: frozenset[str] = frozenset()
    metadata_keys: frozenset[str] = frozenset()


def list_btree_keys(bind: Bind, table: Table) -> BtreeKeys:
    """The leading keys of ``table``'s btree indexes (one catalog query), see :class:`BtreeKeys`.

    On a partitioned table the parent's indexes are read: an index created
    on the parent is created on every partition.
    """
    rows = bind.execute(
        text(
            "SELECT pg_get_indexdef(i.indexrelid, 1, true), "
            "CASE WHEN i.indnkeyatts > 1 THEN pg_get_indexdef(i.indexrelid, 2, true) END "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am am ON am.oid = c.relam "
            "WHERE i.indrelid = CAST(:table AS regclass) AND am.amname = 'btree' "
            "AND i.indisvalid AND i.indpred IS NULL"
        ),
        {"table": qualified_table(bind, table)},
    ).all()
    columns: set[str] = set()
    keys: set[str] = set()
    for first, second in rows:
        lead = second if first == "collection_id" and second is not None else first
        for part in {first, lead}:  # an index on collection_id alone leads with it
            key = _METADATA_KEY.match(part)
            column = _COLUMN.match(part)
            if key:
                keys.add(key.group(1))
            elif column:
                columns.add(column.group(1))
    return BtreeKeys(columns=frozenset(columns), metadata_keys=frozenset(keys))


def planner_rows(bind: Bind, sql: str) -> int:
    """The planner's row estimate for ``sql`` (no rows are read)."""
    plan = bind.execute(text(f"EXPLAIN (FORMAT JSON) {sql}")).scalar_one()
    return int(plan[0]["Plan"]["Plan Rows"])


@dataclass
class Catalog:
    """What ``nearest`` needs to know about one table's ANN indexes and rows."""

    table: str
    indexes: tuple[AnnIndex, ...]
    pgvector_version: tuple[int, ...]
    btree: BtreeKeys = field(default_factory=BtreeKeys)
    read_at: float = field(default_factory=time.monotonic)
    _shares: dict[int, float] = field(default_factory=dict, repr=False)
    # usable() per (metric, precision, collection): a partitioned table has an
    # index per tenant, and scanning 1,000 of them took 0.27 ms of every call.
    _usable: dict[tuple[str, str, int], list[AnnIndex]] = field(default_factory=dict, repr=False)
    _collections: frozenset[int] | None = field(default=None, repr=False)

    @property
    def fresh(self) -> bool:
        return time.monotonic() - self.read_at <= CATALOG_TTL_S

    @property
    def iterative_supported(self) -> bool:
        """pgvector 0.8+ iterative index scans."""
        return self.pgvector_version >= (0, 8, 0)

    def usable(self, metric: str, precision: str, collection_id: int) -> list[AnnIndex]:
        """Valid indexes that can serve a query of this metric and precision in the collection."""
        key = (metric, precision, collection_id)
        found = self._usable.get(key)
        if found is None:
            found = self._usable[key] = [
                ix for ix in self.indexes
                if ix.valid and ix.precision == precision
                and (ix.metric == metric or precision == "binary")
                and ix.collection_id in (None, collection_id)
            ]  # fmt: skip
        return list(found)

    def has_index(self, metric: str, precision: str, collection_id: int) -> bool:
        return bool(self.usable(metric, precision, collection_id))

    def cached_share(self, collection_id: int) -> float | None:
        """The collection's share of the table's rows if already known (no query)."""
        if self._collections is None:
            self._collections = frozenset(
                ix.collection_id for ix in self.indexes if ix.collection_id is not None
            )
        if collection_id in self._collections:
            return 1.0  # a partial index serves the collection alone
        return self._shares.get(collection_id)

    def share(self, bind: Bind, collection_id: int) -> float:
        """The collection's share of the table's rows, from planner statistics (cached)."""
        found = self.cached_share(collection_id)
        if found is None:
            total = planner_rows(bind, f"SELECT 1 FROM {self.table}")
            mine = planner_rows(
                bind, f"SELECT 1 FROM {self.table} WHERE collection_id = {int(collection_id)}"
            )
            found = self._shares[collection_id] = 1.0 if total <= 0 else min(1.0, mine / total)
        return found


#: Catalogs per engine, by Table object (the hot path looks one up per nearest
#: call, so the key is the object itself, not its formatted name).
_CACHE: weakref.WeakKeyDictionary[Engine, dict[Table, Catalog]] = weakref.WeakKeyDictionary()


def cached_catalog(engine: Engine, table: Table) -> Catalog | None:
    """The table's catalog if one is cached and fresh on ``engine``; None otherwise (no query)."""
    tables = _CACHE.get(engine)
    found = None if tables is None else tables.get(table)
    return found if found is not None and found.fresh else None


def read_catalog(bind: Bind, table: Table) -> Catalog:
    """The table's catalog: from the cache while fresh, else read (three queries) and cached."""
    engine = _engine(bind)
    found = cached_catalog(engine, table)
    if found is None:
        found = Catalog(
            table=qualified_table(engine, table),
            indexes=tuple(list_ann_indexes(bind, table)),
            pgvector_version=pgvector_version(bind) or (0,),
            btree=list_btree_keys(bind, table),
        )
        _CACHE.setdefault(engine, {})[table] = found
    return found


def forget(table: Table) -> None:
    """Drop every cached view of ``table`` (after creating or dropping an index).

    On every engine, not only the one the DDL ran on: a repository with a
    read engine (a replica) plans its reads from the catalog cached for that
    engine, and must not keep planning with an index that is gone.
    """
    for tables in list(_CACHE.values()):
        tables.pop(table, None)
