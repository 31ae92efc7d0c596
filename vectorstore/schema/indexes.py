"""ANN index specifications and their DDL: tune indexes without writing SQL.

Design decision: an index is a small frozen value (:class:`IndexSpec`) that
renders to exactly one ``CREATE INDEX`` statement; the same spec is used by the
repository at run time (:func:`create_index`) and by migrations
(:func:`index_ddl` inside ``op.execute``), so both build the same index, and
:func:`inspect_indexes` reads the catalog back so ``nearest`` knows which
metric, precision and collection each index serves.

What a spec can express:

* ``method``: ``"hnsw"`` (``m``, ``ef_construction``) or ``"ivfflat"`` (``lists``).
* ``metric``: cosine, l2, inner_product, l1 (the operator class follows).
* ``precision``: ``"vector"`` (full float32), ``"halfvec"`` (an expression index
  on ``embedding::halfvec(dim)``: half the size) or ``"binary"``
  (``binary_quantize(embedding)::bit(dim)`` with Hamming distance: 1/32 of the
  size; nearest re-ranks its candidates on the full vectors).
* ``per_collection``: a partial index ``WHERE collection_id = <id>`` for
  multi-tenant tables; named ``vsx_...`` so the migrations' drift check
  ignores it.

``CREATE INDEX CONCURRENTLY`` cannot run inside a transaction; it is used when
the repository owns its sessions (or when asked), on a separate autocommit
connection.  A concurrent build that fails leaves an invalid index behind,
which is dropped before :class:`~vectorstore.IndexBuildError` is raised.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select, text

from vectorstore._metrics import Metric, normalize_metric, opclass, short_name
from vectorstore._target import Sessions
from vectorstore.errors import IndexBuildError, IndexMemoryWarning, ValidationError
from vectorstore.models import embedding_dimension, partitioned_by_collection

from .catalog import AnnIndex, forget, list_ann_indexes
from .partitions import partition_name, partition_of

__all__ = [
    "IndexSpec",
    "check_build_memory",
    "check_definition_memory",
    "create_index",
    "drop_index",
    "hnsw_graph_bytes",
    "index_ddl",
    "list_indexes",
    "memory_bytes",
    "surfaced_notices",
]

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_HNSW_MAX_DIM = {"vector": 2000, "halfvec": 4000, "binary": 64000}


@dataclass(frozen=True)
class IndexSpec:
    """One ANN index on the embedding column.

    Args:
        method: ``"hnsw"`` or ``"ivfflat"``.
        metric: ``"cosine"``, ``"l2"``, ``"inner_product"`` or ``"l1"`` (HNSW only).
        m: HNSW graph degree (2..100; pgvector's default 16).
        ef_construction: HNSW build candidate list (>= 2*m; default 64).
        lists: IVFFlat lists (default: rows / 1000, at least 10).
        precision: ``"vector"``, ``"halfvec"`` or ``"binary"`` (see module docstring).
        per_collection: a partial index for the repository's collection only.
        name: the index name (default: derived, deterministic).
    """

    method: Literal["hnsw", "ivfflat"] = "hnsw"
    metric: Metric = "cosine"
    m: int = 16
    ef_construction: int = 64
    lists: int | None = None
    precision: Literal["vector", "halfvec", "binary"] = "vector"
    per_collection: bool = False
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "metric", normalize_metric(self.metric))
        if self.method not in ("hnsw", "ivfflat"):
            raise ValidationError(f"index method must be 'hnsw' or 'ivfflat', got {self.method!r}")
        if self.precision not in ("vector", "halfvec", "binary"):
            raise ValidationError(f"unknown precision {self.precision!r}")
        if self.precision == "binary" and self.metric not in ("cosine", "l2"):
            raise ValidationError("a binary-quantized index re-ranks by cosine or l2 only")
        if self.method == "ivfflat" and self.metric == "l1":
            raise ValidationError("IVFFlat has no L1 operator class; use method='hnsw'")
        bounds = (("m", self.m, 2, 100), ("ef_construction", self.ef_construction, 4, 1000))
        for label, value, low, high in bounds:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValidationError(
                    f"{label} must be an integer in [{low}, {high}], got {value!r}"
                )
        if self.ef_construction < 2 * self.m:
            raise ValidationError("ef_construction must be at least 2 * m")
        if self.lists is not None and (
            isinstance(self.lists, bool) or not isinstance(self.lists, int)
            or not 1 <= self.lists <= 32768
        ):  # fmt: skip
            raise ValidationError(f"lists must be an integer in [1, 32768], got {self.lists!r}")
        if self.name is not None and not _NAME.match(self.name):
            raise ValidationError(
                f"index name {self.name!r} must be lowercase letters, digits and _ (max 63)"
            )

    @property
    def opclass(self) -> str:
        return opclass(self.precision, self.metric)

    def default_name(self, table: str, collection_id: int | None) -> str:
        metric = short_name(self.metric)
        precision = {"vector": "", "halfvec": "_half", "binary": "_bin"}[self.precision]
        base = f"{self.method}_{metric}{precision}"
        if collection_id is not None:
            base = f"c{collection_id}_{base}"
        name = f"vsx_{table}_{base}"
        if len(name) > 63:
            digest = hashlib.sha256(name.encode()).hexdigest()[:8]
            name = f"vsx_{base}_{digest}"[:63]
        return name


def _expression(spec: IndexSpec, dimension: int) -> str:
    if spec.precision == "halfvec":
        return f"(embedding::halfvec({dimension})) {spec.opclass}"
    if spec.precision == "binary":
        return f"(binary_quantize(embedding)::bit({dimension})) {spec.opclass}"
    return f"embedding {spec.opclass}"


def index_ddl(
    spec: IndexSpec,
    table: str,
    *,
    dimension: int,
    collection_id: int | None = None,
    rows: int | None = None,
    concurrently: bool = False,
) -> str:
    """The ``CREATE INDEX`` statement for ``spec`` on ``table`` (a quoted name).

    For use in a migration: ``op.execute(index_ddl(spec, "vectorstore_documents",
    dimension=384))`` (with ``concurrently=True`` inside
    ``op.get_context().autocommit_block()``).  All parts are validated numbers
    or fixed keywords, so the statement carries no user text.
    """
    if spec.per_collection and collection_id is None:
        raise ValidationError("a per-collection index needs the collection id")
    if dimension > _HNSW_MAX_DIM[spec.precision]:
        raise ValidationError(
            f"{spec.method} indexes {spec.precision} up to {_HNSW_MAX_DIM[spec.precision]} "
            f"dimensions, the column has {dimension}; use precision='halfvec' or 'binary'"
        )
    name = spec.name or spec.default_name(table.split(".")[-1].strip('"'), collection_id
                                          if spec.per_collection else None)  # fmt: skip
    if spec.method == "hnsw":
        options = f"m = {spec.m}, ef_construction = {spec.ef_construction}"
    else:
        lists = spec.lists or max(10, min(32768, (rows or 0) // 1000))
        options = f"lists = {lists}"
    where = f" WHERE collection_id = {int(collection_id or 0)}" if spec.per_collection else ""
    conc = " CONCURRENTLY" if concurrently else ""
    return (
        f"CREATE INDEX{conc} IF NOT EXISTS {name} ON {table} USING {spec.method} "
        f"({_expression(spec, dimension)}) WITH ({options}){where}"
    )


# -- build memory -------------------------------------------------------------------
#: Bytes of an HNSW graph element besides its vector and neighbour lists
#: (element header, heap TIDs, allocator overhead), fitted to the point where
#: pgvector 0.8 reported that 100,000 384-d rows no longer fit (see docs/scale.md).
_ELEMENT_OVERHEAD = 190
#: Bytes per neighbour slot (a pointer and a distance).
_NEIGHBOUR_BYTES = 16
_VECTOR_BYTES = {"vector": 4.0, "halfvec": 2.0, "binary": 1 / 8}
_UNITS = {"": 1024, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4, "b": 1}
_MEMORY = re.compile(r"^\s*(\d+)\s*(b|kb|mb|gb|tb)?\s*$", re.IGNORECASE)


def hnsw_graph_bytes(rows: int, dimension: int, *, m: int = 16, precision: str = "vector") -> int:
    """The estimated size of the in-memory graph of an HNSW build over ``rows`` rows.

    pgvector builds the graph in ``maintenance_work_mem`` while it fits, then
    inserts the remaining rows on disk, which is several times slower.  Per
    row: the indexed value, ``2 m`` neighbour slots on layer 0 and ``m`` on
    each upper layer a row reaches (``1 / (m - 1)`` of them on average), and a
    fixed overhead.
    """
    value = 8 + _VECTOR_BYTES.get(precision, 4.0) * dimension
    slots = 2 * m + m / max(m - 1, 1)
    return int(rows * (value + slots * _NEIGHBOUR_BYTES + _ELEMENT_OVERHEAD))


def memory_bytes(setting: str) -> int:
    """Bytes of a PostgreSQL memory setting as written or shown (``'512MB'``, ``'65536kB'``)."""
    found = _MEMORY.match(setting)
    if found is None:
        raise ValidationError(f"{setting!r} is not a memory size like '512MB'")
    return int(found.group(1)) * _UNITS[(found.group(2) or "").lower()]


def _size(n: float) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1024:.0f} kB"


def check_build_memory(
    rows: int, dimension: int, memory: str, *, m: int = 16, precision: str = "vector",
    index: str = "the HNSW index",
) -> bool:  # fmt: skip
    """Warn (:class:`~vectorstore.IndexMemoryWarning`) when the graph will not fit ``memory``.

    Returns whether it fits.  A warning, not an error: the build still
    completes, only more slowly.
    """
    needed = hnsw_graph_bytes(rows, dimension, m=m, precision=precision)
    available = memory_bytes(memory)
    if needed <= available:
        return True
    warnings.warn(
        IndexMemoryWarning(
            f"building {index} over {rows} rows needs about {_size(needed)} of "
            f"maintenance_work_mem for its graph; {memory} is set, so the build will spill "
            f"to disk and take several times longer. Pass maintenance_work_mem="
            f"'{-(-needed // 1024**2)}MB' (or more) if the server has the memory.",
            needed=needed, available=available,
        ),
        stacklevel=3,
    )  # fmt: skip
    return False


#: pgvector's NOTICE when the graph outgrows maintenance_work_mem during a build.
#: Notices carry SQLSTATE 00000, so this one is known by its text.
_SPILL_NOTICE = "no longer fits into maintenance_work_mem"


class _NoticeRecorder:
    """Stands in for psycopg2's ``connection.notices`` list during a build.

    SQLAlchemy's psycopg2 dialect drains that list after every statement (to
    its INFO logger), so the build's notices are recorded as psycopg2 appends
    them; the list operations SQLAlchemy uses still work.
    """

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen
        self.items: list[Any] = []

    def append(self, notice: Any) -> None:
        self.seen.append(str(notice))
        self.items.append(notice)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value


@contextmanager
def surfaced_notices(connection: Any, index: str) -> Iterator[None]:
    """Re-emit pgvector's "graph no longer fits" NOTICE of a build as an IndexMemoryWarning.

    ``connection``: the SQLAlchemy connection the build runs on (psycopg2 or
    psycopg 3; other drivers are left alone).
    """
    raw: Any = getattr(connection.connection, "dbapi_connection", None)
    seen: list[str] = []
    handler = None
    original = getattr(raw, "notices", None)
    if isinstance(original, list):  # psycopg2
        raw.notices = _NoticeRecorder(seen)
    elif hasattr(raw, "add_notice_handler") and hasattr(raw, "remove_notice_handler"):
        # psycopg 3 (its async adapter has no remove_notice_handler: left alone)

        def handler(diag: Any) -> None:
            seen.append(str(diag.message_primary or ""))

        raw.add_notice_handler(handler)
    try:
        yield
    finally:
        if handler is not None and raw is not None:
            raw.remove_notice_handler(handler)
        if isinstance(original, list):
            raw.notices = original
        spilled = [n.strip() for n in seen if _SPILL_NOTICE in n]
        if spilled:
            text_ = spilled[0].removeprefix("NOTICE:").strip().splitlines()[0]
            warnings.warn(
                IndexMemoryWarning(
                    f"building {index}: pgvector reported '{text_}'; the rest of the build "
                    f"ran on disk, several times slower. Raise maintenance_work_mem (see "
                    f"vectorstore.schema.indexes.hnsw_graph_bytes) for the next build."
                ),
                stacklevel=3,
            )  # fmt: skip


_DEFINITION = re.compile(
    r" ON (?:ONLY )?(?P<table>\S+) USING hnsw \(\(*(?P<column>\w+)\)?(?:::\w+\((?P<dim>\d+)\))?"
    r"(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_M = re.compile(r"\bm\s*=\s*'?(\d+)")
_WHERE = re.compile(r"\sWHERE\s(.+)$", re.IGNORECASE | re.DOTALL)


def check_definition_memory(connection: Any, definition: str, memory: str) -> bool | None:
    """:func:`check_build_memory` for a ``CREATE INDEX`` text (as ``pg_get_indexdef`` gives it).

    Counts the rows the index will cover on ``connection`` (inside the
    caller's transaction, so a big load's own rows are counted).  None when
    ``definition`` is not an HNSW index this can read.
    """
    found = _DEFINITION.search(definition)
    if found is None:
        return None
    table, column, rest = found.group("table"), found.group("column"), found.group("rest")
    m = _M.search(rest)
    where = _WHERE.search(rest)
    precision = ("binary" if "binary_quantize" in definition
                 else "halfvec" if "halfvec(" in definition else "vector")  # fmt: skip
    dim = found.group("dim")
    clause = f" WHERE {where.group(1)}" if where else ""
    rows, dims = connection.execute(text(
        f"SELECT count(*), (SELECT vector_dims({column}) FROM {table} LIMIT 1) "
        f"FROM {table}{clause}"
    )).one()  # fmt: skip
    if dims is None:
        return True
    name = definition.split(" ON ")[0].split()[-1]
    return check_build_memory(int(rows), int(dim or dims), memory, precision=precision,
                              m=int(m.group(1)) if m else 16, index=name)  # fmt: skip


def _build_check(
    sessions: Sessions, model: Any, spec: IndexSpec, collection_id: int | None,
    memory: str | None, name: str,
) -> None:  # fmt: skip
    """The memory check before building ``spec`` (HNSW only)."""
    if spec.method != "hnsw":
        return
    rows = _rows(sessions, model, collection_id)
    if memory is None:
        with sessions.read("show maintenance_work_mem") as session:
            memory = str(session.execute(text("SHOW maintenance_work_mem")).scalar_one())
    check_build_memory(rows, embedding_dimension(model), memory, m=spec.m,
                       precision=spec.precision, index=name)  # fmt: skip


# -- DDL ---------------------------------------------------------------------------
def list_indexes(sessions: Sessions, model: Any) -> list[AnnIndex]:
    """The HNSW / IVFFlat indexes on ``model``'s table."""
    with sessions.read("list indexes") as session:
        return list_ann_indexes(session, model.__table__)


def _rows(sessions: Sessions, model: Any, collection_id: int | None) -> int:
    stmt = select(func.count()).select_from(model)
    if collection_id is not None:
        stmt = stmt.where(model.collection_id == collection_id)
    with sessions.read("count") as session:
        return int(session.execute(stmt).scalar_one())


def create_index(
    sessions: Sessions,
    model: Any,
    spec: IndexSpec,
    *,
    collection_id: int | None = None,
    concurrently: bool | None = None,
    maintenance_work_mem: str | None = None,
) -> str:
    """Build ``spec`` on ``model``'s table; returns the index name.

    Args:
        collection_id: the collection of a per-collection (partial) index.
        concurrently: ``CREATE INDEX CONCURRENTLY`` on a separate autocommit
            connection (writers are not blocked).  Default: True for a
            standalone repository, False in a host session (the build then runs
            inside the host's transaction, in a savepoint).  With a host
            session, commit any writes to the table first: a concurrent build
            waits for every open transaction that touched it.
        maintenance_work_mem: e.g. ``"1GB"``; a graph that fits in memory builds
            far faster.

    Raises:
        IndexBuildError: the build failed (an invalid leftover index is dropped).
    """
    table_obj = model.__table__
    if not spec.per_collection:
        collection_id = None
    if maintenance_work_mem is not None and not re.fullmatch(r"\d+\s*(kB|MB|GB)?",
                                                             maintenance_work_mem):  # fmt: skip
        raise ValidationError(f"maintenance_work_mem {maintenance_work_mem!r} is not like '512MB'")
    if concurrently is None:
        concurrently = sessions.owns_transactions
    engine = sessions.write_engine
    table = str(engine.dialect.identifier_preparer.format_table(table_obj))
    built = spec
    if collection_id is not None and partitioned_by_collection(model):
        # A tenant's partition holds only its rows: the index goes on it, whole
        # (no predicate), under the name the parent's partial index would have.
        # (PostgreSQL cannot build an index on a partitioned parent CONCURRENTLY,
        # and one built there would cascade to every tenant.)
        table = _partition_of(sessions, table_obj, collection_id)
        name = spec.name or spec.default_name(table_obj.name, collection_id)
        built = dataclasses.replace(spec, per_collection=False, name=name)
    rows = None
    if spec.method == "ivfflat" and spec.lists is None:
        rows = _rows(sessions, model, collection_id)
    ddl = index_ddl(built, table, dimension=embedding_dimension(model),
                    collection_id=collection_id, rows=rows,
                    concurrently=concurrently)  # fmt: skip
    name = ddl.split(" IF NOT EXISTS ")[1].split(" ")[0]
    memory = (f"SET maintenance_work_mem = '{maintenance_work_mem}'"
              if maintenance_work_mem else None)  # fmt: skip
    try:
        with sessions.errors(f"create index {name}"):
            _build_check(sessions, model, spec, collection_id, maintenance_work_mem, name)
            if concurrently:
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    if memory:
                        conn.exec_driver_sql(memory)
                    try:
                        with surfaced_notices(conn, name):
                            conn.exec_driver_sql(ddl)
                    except Exception:
                        conn.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                        raise
                    finally:
                        if memory:
                            conn.exec_driver_sql("RESET maintenance_work_mem")
            else:
                with sessions.write(f"create index {name}") as session:
                    if memory:
                        session.execute(text(f"SET LOCAL {memory[4:]}"))
                    with surfaced_notices(session.connection(), name):
                        session.execute(text(ddl))
    except ValidationError:
        raise
    except Exception as exc:
        raise IndexBuildError(f"building index {name} failed: {exc}") from exc
    finally:
        forget(table_obj)
    return name


def _partition_of(sessions: Sessions, table: Any, collection_id: int) -> str:
    """The quoted name of collection ``collection_id``'s partition (ValidationError if none)."""
    with sessions.read("find the tenant's partition") as session:
        found = partition_of(session, table, collection_id)
    if found is None:
        raise ValidationError(
            f"collection {collection_id} has no partition of {table.name} yet (its first write "
            f"creates it): write its documents, then build the index"
        )
    preparer = sessions.write_engine.dialect.identifier_preparer
    quoted = preparer.quote(partition_name(table, collection_id))
    return f"{preparer.quote_schema(table.schema)}.{quoted}" if table.schema else quoted


def drop_index(
    sessions: Sessions, model: Any, name: str, *, concurrently: bool | None = None
) -> bool:
    """Drop the ANN index ``name`` from ``model``'s table; False if it did not exist."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(f"{name!r} is not a valid index name")
    if concurrently is None:
        concurrently = sessions.owns_transactions
    engine = sessions.write_engine
    try:
        if name not in {ix.name for ix in list_indexes(sessions, model)}:
            return False
        schema = model.__table__.schema
        qualified = f'"{schema}".{name}' if schema else name
        if concurrently:
            autocommit = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            with sessions.errors(f"drop index {name}"), autocommit as conn:
                conn.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {qualified}")
        else:
            with sessions.write(f"drop index {name}") as session:
                session.execute(text(f"DROP INDEX IF EXISTS {qualified}"))
    finally:
        forget(model.__table__)
    return True
