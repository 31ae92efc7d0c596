"""Big loads: take every secondary index (and the foreign key) out of the COPY, rebuild after.

A document table keeps several structures up to date row by row while a COPY
runs: the HNSW graph, the GIN indexes (metadata, full text), the btree on
``(collection_id, content_hash)`` and the foreign key's per-row trigger.
Measured on 100,000 rows of realistic texts (``docs/ingest-performance.md``),
they make a COPY several times slower than into a bare table, while building
each of them once after the load (sorted, in parallel where PostgreSQL can)
costs a fraction of that.  This module decides which of them a load drops,
drops them in the load's own transaction, and rebuilds them after it.

Design decisions:

* **In the load's transaction.**  The drop, the COPY and the rebuild are one
  transaction: a crash or a failed COPY anywhere in between rolls the drop
  back with the rows, so the indexes are never left dropped by a load that
  did not commit (kill -9 included: PostgreSQL's DDL is transactional).  The
  price: ``DROP INDEX`` takes an ACCESS EXCLUSIVE lock on the table, so
  readers and writers of *every* collection in the table wait until the load
  commits.  That is why the automatic choice compares the load with the
  whole table (below).
* **What is dropped.**  Every index on the table except the primary key and
  the indexes behind constraints (the unique ``(collection_id, external_id)``
  is the ``ON CONFLICT`` arbiter and names duplicate rows; measured cheap to
  keep), plus the foreign keys (re-added, and so validated, in one join after
  the load).  An index the load itself reads is kept: ``ingest`` looks up
  known texts by content hash between its COPYs.  A partial index of another
  collection (``vsx_..._c<id>_...``) is never touched: rows of this load do
  not enter it.
* **When (the cost model).**  ``rebuild_index=True`` always; ``False`` never;
  ``None`` (the default) when the load has at least :data:`BIG_LOAD_MIN_ROWS`
  rows *and* at least :data:`BIG_LOAD_RATIO` times the rows an index already
  covers: the whole table for the table-wide indexes and the foreign key, the
  collection for its own partial indexes.  A rebuild reads every row the
  index covers; keeping an index up costs per new row several times what a
  build costs per row (``benchmarks/bench_fulltext.py``: the full-text GIN
  about 5x, the btree on random content hashes about 3x; an HNSW graph kept
  up row by row took the COPY to 265 rows/s, against builds of 100,000 rows
  at 600-7,000 rows/s), so once the load is as large as what is already
  indexed, rebuilding wins; below 10,000 rows everything is quick anyway and
  the exclusive lock is not worth it.  A load of unknown size (a generator) decides at its start
  with what it knows (bulk_add: small path) or, for ``ingest`` (one COPY per
  chunk), switches as soon as the rows written so far cross the bar.
* **The rebuild.**  Foreign keys first (outside any savepoint: if one fails,
  the load fails), then each index in its own SAVEPOINT with
  ``maintenance_work_mem`` and ``max_parallel_maintenance_workers`` set
  (PostgreSQL 18 builds btree, GIN and pgvector's HNSW with parallel workers;
  the builds themselves run one after another, since the rows are visible
  only to this transaction), then ANALYZE.  An index whose build fails does
  not undo the load: the others are built, the rows commit, and
  :class:`~vectorstore.IndexBuildError` lists the statements that did not run.
  The next big load repairs it: it also builds every GIN and btree index the
  model declares that the table lacks; :func:`rebuild_ann_indexes` without
  arguments builds every declared index that is missing, HNSW included.
* **Progress** per index through ``pg_stat_progress_create_index`` (see
  :class:`~vectorstore.schema.maintenance.IndexBuildProgress`), with the
  index's position among the ones being built.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex

from vectorstore.errors import IndexBuildError, ValidationError
from vectorstore.metadata_table import metadata_table

from .catalog import ANN_METHODS, forget, planner_rows, qualified_table
from .maintenance import (
    DEFAULT_MAINTENANCE_WORK_MEM,
    IndexBuildProgress,
    build_settings,
    run_with_progress,
)
from .partitions import is_partitioned, partition_of, partition_table

__all__ = [
    "BIG_LOAD_MIN_ROWS",
    "BIG_LOAD_RATIO",
    "BigLoad",
    "ForeignKey",
    "SecondaryIndex",
    "list_foreign_keys",
    "list_secondary_indexes",
]

#: Below this many rows a load keeps every index (quick anyway; no exclusive lock).
BIG_LOAD_MIN_ROWS = 10_000
#: A load at least this many times the rows an index covers rebuilds it.
BIG_LOAD_RATIO = 1.0
_OPTIONS = frozenset({"maintenance_work_mem", "parallel_workers", "progress", "min_rows", "ratio"})


@dataclass(frozen=True)
class SecondaryIndex:
    """One index of a table other than its primary key, from the catalog."""

    name: str
    method: str
    columns: tuple[str, ...]
    collection_id: int | None
    constraint: bool
    valid: bool
    definition: str


@dataclass(frozen=True)
class ForeignKey:
    """One foreign key of a table: its name, definition and referenced table."""

    name: str
    definition: str
    referenced: str


def list_secondary_indexes(bind: Session, table: Table) -> list[SecondaryIndex]:
    """Every index of ``table`` but the primary key, by name (one catalog query)."""
    from .catalog import _COLLECTION_PRED

    rows = bind.execute(
        text(
            "SELECT c.relname, am.amname, pg_get_indexdef(i.indexrelid), "
            "pg_get_expr(i.indpred, i.indrelid), i.indisvalid, "
            "EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid "
            "AND k.conrelid = i.indrelid), "
            "ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) "
            "FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k) "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am am ON am.oid = c.relam "
            "WHERE i.indrelid = CAST(:table AS regclass) AND NOT i.indisprimary "
            "ORDER BY c.relname"
        ),
        {"table": qualified_table(bind, table)},
    ).all()
    found = []
    for name, method, definition, predicate, valid, constraint, columns in rows:
        match = _COLLECTION_PRED.search(predicate or "")
        found.append(SecondaryIndex(
            name=str(name), method=str(method), columns=tuple(map(str, columns)),
            collection_id=int(match.group(1)) if match else None, constraint=bool(constraint),
            valid=bool(valid), definition=str(definition),
        ))  # fmt: skip
    return found


def list_foreign_keys(bind: Session, table: Table) -> list[ForeignKey]:
    """The foreign keys of ``table`` (``ALTER TABLE ... ADD CONSTRAINT`` text each)."""
    rows = bind.execute(
        text(
            "SELECT conname, pg_get_constraintdef(oid), confrelid::regclass::text "
            "FROM pg_constraint WHERE conrelid = CAST(:table AS regclass) AND contype = 'f' "
            # a partition's copy of its parent's key is the parent's to drop
            "AND conparentid = 0 "
            "ORDER BY conname"
        ),
        {"table": qualified_table(bind, table)},
    ).all()
    return [ForeignKey(str(n), str(d), str(r)) for n, d, r in rows]


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ValidationError(f"unknown index_options {sorted(unknown)}; known: {sorted(_OPTIONS)}")
    for key in ("min_rows",):
        value = options.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValidationError(f"index_options {key} must be a non-negative integer")
    ratio = options.get("ratio", BIG_LOAD_RATIO)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or ratio < 0:
        raise ValidationError("index_options ratio must be a non-negative number")
    progress = options.get("progress")
    if progress is not None and not callable(progress):
        raise ValidationError("index_options progress must be a callable")


@dataclass
class BigLoad:
    """The big-load mode of one load: decide, drop, and after the load rebuild.

    Args:
        session: the load's session (its transaction holds the drop and the rebuild).
        model: the mapped document class (its declared indexes are repaired too).
        collection_id: the collection the load writes.
        mode: ``True`` (always), ``False`` (never) or ``None`` (by the cost model).
        keep_columns: leading index columns of an index the load reads (kept).
        options: ``maintenance_work_mem``, ``parallel_workers``, ``progress``,
            ``min_rows`` (default :data:`BIG_LOAD_MIN_ROWS`), ``ratio``
            (default :data:`BIG_LOAD_RATIO`).
    """

    session: Session
    model: Any
    collection_id: int
    mode: bool | None
    keep_columns: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    started: bool = False
    reason: str = ""
    indexes: list[SecondaryIndex] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    built: list[str] = field(default_factory=list)
    index_s: float = 0.0
    finished: bool = False
    _table_rows: int | None = None
    _collection_rows: int | None = None
    _table: Table | None = None

    def __post_init__(self) -> None:
        if self.mode not in (True, False, None):
            raise ValidationError(f"rebuild_index must be True, False or None, got {self.mode!r}")
        _check_options(self.options)

    @property
    def table(self) -> Table:
        """The table the load's indexes are on: the model's, or the tenant's partition of it.

        In a table partitioned by collection the collection's own partition has
        its own indexes (:mod:`vectorstore.schema.partitions`): a big load
        drops, rebuilds and locks only those; other tenants read and write on.
        """
        if self._table is None:
            table: Table = self.model.__table__
            if is_partitioned(self.session, table):
                found = partition_of(self.session, table, self.collection_id)
                if found is not None and found.attached:
                    table = partition_table(table, found.name, self.model)
            self._table = table
        return self._table

    @property
    def min_rows(self) -> int:
        return int(self.options.get("min_rows", BIG_LOAD_MIN_ROWS))

    @property
    def ratio(self) -> float:
        return float(self.options.get("ratio", BIG_LOAD_RATIO))

    def _table_size(self) -> int:
        """The table's rows: the planner's estimate (no scan of a big table).

        A table never analyzed has no statistics and the planner guesses from
        a minimum size; it is counted instead (it is new, and usually small).
        """
        if self._table_rows is None:
            name = qualified_table(self.session, self.table)
            analyzed = self.session.execute(
                text("SELECT reltuples >= 0 FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                {"t": name},
            ).scalar_one()
            if analyzed:
                self._table_rows = planner_rows(self.session, f"SELECT 1 FROM {name}")
            else:
                count = self.session.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
                self._table_rows = int(count)
        return self._table_rows

    def _collection_size(self) -> int:
        """The collection's rows, counted (only asked when it has partial indexes)."""
        if self._collection_rows is None:
            name = qualified_table(self.session, self.table)
            self._collection_rows = int(
                self.session.execute(
                    text(f"SELECT count(*) FROM {name} WHERE collection_id = :c"),
                    {"c": self.collection_id},
                ).scalar_one()
            )
        return self._collection_rows

    def consider(self, rows: int | None) -> bool:
        """Start big-load mode if ``rows`` (the load's size so far or in all) calls for it."""
        if self.started:
            return True
        if self.mode is False:
            self.reason = "rebuild_index=False"
            return False
        if self.mode is None and rows is None:
            self.reason = "the load's size is not known before its COPY"
            return False
        if self.mode is None and rows is not None and rows < self.min_rows:
            self.reason = f"{rows:,} rows: below the {self.min_rows:,}-row bar"
            return False
        found = list_secondary_indexes(self.session, self.table)
        mine = [ix for ix in found if ix.collection_id == self.collection_id]
        wide = [ix for ix in found if ix.collection_id is None]
        keys = list_foreign_keys(self.session, self.table)
        if self.mode is None:
            assert rows is not None
            table_rows = self._table_size()
            self.reason = f"{rows:,} rows loaded against about {table_rows:,} in the table"
            if rows < self.ratio * table_rows:
                wide, keys = [], []
            if mine:
                collection_rows = self._collection_size()
                self.reason += f" and {collection_rows:,} in the collection"
                if rows < self.ratio * collection_rows:
                    mine = []
        else:
            self.reason = "rebuild_index=True"
        drop = [ix for ix in (*wide, *mine) if not self._kept(ix)]
        shadow = metadata_table(self.model)
        if wide and shadow is not None:  # metadata_index = "table": its GIN index too
            drop += list_secondary_indexes(self.session, shadow)
        if not drop and not keys:
            return False
        self._drop(drop, keys)
        return True

    def _kept(self, ix: SecondaryIndex) -> bool:
        """Constraint indexes, and the index the load reads, stay."""
        keep = self.keep_columns
        return ix.constraint or (bool(keep) and ix.columns[: len(keep)] == keep)

    def _drop(self, drop: list[SecondaryIndex], keys: list[ForeignKey]) -> None:
        session = self.session
        preparer = session.get_bind().dialect.identifier_preparer
        name = qualified_table(session, self.table)
        schema = self.table.schema
        # Lock order of the ordinary write path (the referenced collections
        # table first, then the documents), so a concurrent writer cannot
        # deadlock with the ALTER TABLE below.
        for key in keys:
            session.execute(text(f"LOCK TABLE {key.referenced} IN SHARE ROW EXCLUSIVE MODE"))
        session.execute(text(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE"))
        for key in keys:
            session.execute(text(f"ALTER TABLE {name} DROP CONSTRAINT {preparer.quote(key.name)}"))
        for ix in drop:
            qualified = preparer.quote(ix.name)
            if schema:
                qualified = f"{preparer.quote_schema(schema)}.{qualified}"
            session.execute(text(f"DROP INDEX {qualified}"))
        forget(self.model.__table__)
        self.indexes, self.foreign_keys, self.started = drop, keys, True

    def _missing_declared(self) -> list[tuple[str, str]]:
        """(name, CREATE INDEX) of declared GIN/btree indexes the table lacks.

        What an earlier failed build left out.  ANN indexes are not repaired
        here: an app may have dropped the declared HNSW on purpose (for
        per-collection or halfvec ones), and an HNSW build is expensive;
        :func:`~vectorstore.rebuild_ann_indexes` builds them on request.
        """
        shadow = metadata_table(self.model)
        tables = [self.table] if shadow is None else [self.table, shadow]
        present = {ix.name for t in tables for ix in list_secondary_indexes(self.session, t)}
        present |= {ix.name for ix in self.indexes}
        dialect = self.session.get_bind().dialect
        declared = [index for t in tables for index in t.indexes]
        return [
            (str(index.name), str(CreateIndex(index).compile(dialect=dialect)))
            for index in sorted(declared, key=lambda i: str(i.name))
            if index.name not in present
            and index.dialect_options["postgresql"].get("using") not in ANN_METHODS
        ]

    def finish(self) -> BaseException | None:
        """Re-add the foreign keys, rebuild the dropped indexes, ANALYZE; the failure if any.

        A foreign key that cannot be re-added raises (the load fails with
        it); an index that cannot be built is returned as an
        :class:`~vectorstore.IndexBuildError` (the rows stay).
        """
        if not self.started:
            return None
        began = time.perf_counter()
        session = self.session
        name = qualified_table(session, self.table)
        preparer = session.get_bind().dialect.identifier_preparer
        for key in self.foreign_keys:
            session.execute(
                text(
                    f"ALTER TABLE {name} ADD CONSTRAINT {preparer.quote(key.name)} {key.definition}"
                )
            )
        work = [(ix.name, ix.definition) for ix in self.indexes] + self._missing_declared()
        progress: Callable[[IndexBuildProgress], None] | None = self.options.get("progress")
        failed: list[tuple[str, BaseException]] = []
        settings = build_settings(
            str(self.options.get("maintenance_work_mem", DEFAULT_MAINTENANCE_WORK_MEM)),
            self.options.get("parallel_workers"),
        )
        for number, (index, definition) in enumerate(work, start=1):
            try:
                with session.begin_nested():
                    run_with_progress(session, definition, settings, progress,
                                      index=index, number=number, total=len(work))  # fmt: skip
                self.built.append(index)
            except Exception as exc:
                failed.append((definition, exc))
        session.execute(text(f"ANALYZE {name}"))
        shadow = metadata_table(self.model)
        if shadow is not None:
            session.execute(text(f"ANALYZE {qualified_table(session, shadow)}"))
        forget(self.model.__table__)
        self.index_s = time.perf_counter() - began
        self.finished = True
        if not failed:
            return None
        return IndexBuildError(
            f"the index rebuild after the load failed ({failed[0][1]}); the rows are loaded "
            f"and kept. The next big load builds the missing indexes again, or rebuild now "
            f"with vectorstore.rebuild_ann_indexes(session, model, error.definitions)",
            definitions=[definition for definition, _ in failed],
        )

    def describe(self) -> tuple[str, ...]:
        """Names of the indexes built (those dropped, and any missing one repaired)
        and the foreign keys re-added; before :meth:`finish`, of what was dropped."""
        built = self.built if self.finished else [ix.name for ix in self.indexes]
        return (*built, *(key.name for key in self.foreign_keys))


def check_mode(mode: object) -> bool | None:
    """``rebuild_index`` if it is True, False or None, else a ValidationError."""
    if mode is None or mode is True or mode is False:
        return mode
    raise ValidationError(f"rebuild_index must be True, False or None, got {mode!r}")


def check_index_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The index options as a dict, checked before any I/O."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValidationError(f"index_options must be a mapping, got {type(options).__name__}")
    _check_options(options)
    return dict(options)
