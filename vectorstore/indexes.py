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

import hashlib
import re
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from .errors import IndexBuildError, ValidationError, db_errors

if TYPE_CHECKING:
    from .repository import DocumentRepository

__all__ = [
    "IndexInfo",
    "IndexSpec",
    "create_index",
    "drop_index",
    "index_ddl",
    "inspect_indexes",
    "list_indexes",
]

_OPCLASS = {
    ("vector", "cosine"): "vector_cosine_ops", ("vector", "l2"): "vector_l2_ops",
    ("vector", "inner_product"): "vector_ip_ops", ("vector", "l1"): "vector_l1_ops",
    ("halfvec", "cosine"): "halfvec_cosine_ops", ("halfvec", "l2"): "halfvec_l2_ops",
    ("halfvec", "inner_product"): "halfvec_ip_ops", ("halfvec", "l1"): "halfvec_l1_ops",
}  # fmt: skip
_METRIC_OF_OPS = {ops: metric for (_, metric), ops in _OPCLASS.items()}
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
    metric: str = "cosine"
    m: int = 16
    ef_construction: int = 64
    lists: int | None = None
    precision: Literal["vector", "halfvec", "binary"] = "vector"
    per_collection: bool = False
    name: str | None = None

    def __post_init__(self) -> None:
        from .search import normalize_metric

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
        if self.precision == "binary":
            return "bit_hamming_ops"
        return _OPCLASS[(self.precision, self.metric)]

    def default_name(self, table: str, collection_id: int | None) -> str:
        metric = {"cosine": "cos", "l2": "l2", "inner_product": "ip", "l1": "l1"}[self.metric]
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


# -- catalog -------------------------------------------------------------------------
@dataclass(frozen=True)
class AnnIndex:
    """An ANN index found in the catalog."""

    name: str
    method: str
    metric: str | None
    precision: str
    collection_id: int | None
    valid: bool
    definition: str


@dataclass
class IndexInfo:
    """What ``nearest`` needs to know about the table's ANN indexes (cached per repository)."""

    indexes: list[AnnIndex]
    pgvector_version: tuple[int, ...]
    collection_id: int
    read_at: float = field(default_factory=time.monotonic)
    _share: float | None = field(default=None, repr=False)

    @property
    def iterative_supported(self) -> bool:
        """pgvector 0.8+ iterative index scans."""
        return self.pgvector_version >= (0, 8, 0)

    def usable(self, metric: str, precision: str = "vector") -> list[AnnIndex]:
        return [
            ix for ix in self.indexes
            if ix.valid and ix.precision == precision
            and (ix.metric == metric or precision == "binary")
            and ix.collection_id in (None, self.collection_id)
        ]  # fmt: skip

    def has_index(self, metric: str, precision: str = "vector") -> bool:
        return bool(self.usable(metric, precision))

    def collection_share(
        self, session: Session | Connection, repo: DocumentRepository[Any]
    ) -> float:
        """The collection's share of the table's rows (planner statistics; 1.0 when a
        partial index serves the collection alone)."""
        if self._share is None:
            if any(ix.collection_id == self.collection_id for ix in self.indexes):
                self._share = 1.0
            else:
                table = repo.model.__table__
                total = _planner_rows(session, f"SELECT 1 FROM {_qualified(session, table)}")
                mine = _planner_rows(
                    session,
                    f"SELECT 1 FROM {_qualified(session, table)} "
                    f"WHERE collection_id = {int(self.collection_id)}",
                )
                self._share = 1.0 if total <= 0 else min(1.0, mine / total)
        return self._share


def _planner_rows(session: Session | Connection, sql: str) -> int:
    plan = session.execute(text(f"EXPLAIN (FORMAT JSON) {sql}")).scalar_one()
    return int(plan[0]["Plan"]["Plan Rows"])


def qualified_table(bind: Session | Connection, table: Any) -> str:
    """``table``'s quoted (schema-qualified) name for ``bind``'s dialect."""
    dialect = bind.dialect if isinstance(bind, Connection) else bind.get_bind().dialect
    return str(dialect.identifier_preparer.format_table(table))


_qualified = qualified_table


def _version(value: str) -> tuple[int, ...]:
    return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in value.split("."))


_COLLECTION_PRED = re.compile(r"collection_id\s*=\s*(\d+)")


def list_indexes(session: Session | Connection, table: Any) -> list[AnnIndex]:
    """The HNSW and IVFFlat indexes on ``table`` (a SQLAlchemy Table)."""
    rows = session.execute(
        text(
            "SELECT c.relname, am.amname, pg_get_indexdef(i.indexrelid), "
            "pg_get_expr(i.indpred, i.indrelid), i.indisvalid "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am am ON am.oid = c.relam "
            "WHERE i.indrelid = CAST(:table AS regclass) AND am.amname IN ('hnsw', 'ivfflat') "
            "ORDER BY c.relname"
        ),
        {"table": _qualified(session, table)},
    ).all()
    found = []
    for name, method, definition, predicate, valid in rows:
        ops = re.search(r"\b(\w+_ops)\b", definition)
        opclass = ops.group(1) if ops else ""
        precision = ("binary" if opclass.startswith("bit_")
                     else "halfvec" if opclass.startswith("halfvec_") else "vector")  # fmt: skip
        match = _COLLECTION_PRED.search(predicate or "")
        found.append(AnnIndex(
            name=name, method=method, metric=_METRIC_OF_OPS.get(opclass), precision=precision,
            collection_id=int(match.group(1)) if match else None, valid=bool(valid),
            definition=definition,
        ))  # fmt: skip
    return found


#: How long a repository trusts its view of the indexes and table statistics.
CATALOG_TTL_S = 60.0
_CACHE: weakref.WeakKeyDictionary[Any, IndexInfo] = weakref.WeakKeyDictionary()


def inspect_indexes(repo: DocumentRepository[Any], session: Session | Connection) -> IndexInfo:
    """The repository's cached :class:`IndexInfo` (read from the catalog once)."""
    info = _CACHE.get(repo)
    collection_id = repo.collection.id
    stale = info is not None and time.monotonic() - info.read_at > CATALOG_TTL_S
    if info is None or stale or info.collection_id != collection_id:
        version = session.execute(
            text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar_one()
        info = IndexInfo(
            indexes=list_indexes(session, repo.model.__table__),
            pgvector_version=_version(str(version)),
            collection_id=collection_id,
        )
        _CACHE[repo] = info
    return info


def forget(repo: DocumentRepository[Any]) -> None:
    """Drop the cached catalog view (after creating or dropping an index)."""
    _CACHE.pop(repo, None)


# -- DDL ---------------------------------------------------------------------------
def _autocommit_engine(repo: DocumentRepository[Any]) -> Engine:
    if repo._factory is not None:
        bind = repo._factory.kw["bind"]
    else:
        assert repo._session is not None
        bind = repo._session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def create_index(
    repo: DocumentRepository[Any],
    spec: IndexSpec,
    *,
    concurrently: bool | None = None,
    maintenance_work_mem: str | None = None,
) -> str:
    """Build ``spec`` on the repository's table; returns the index name.

    Args:
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
    table_obj = repo.model.__table__
    collection_id = repo.collection.id if spec.per_collection else None
    if maintenance_work_mem is not None and not re.fullmatch(r"\d+\s*(kB|MB|GB)?",
                                                             maintenance_work_mem):  # fmt: skip
        raise ValidationError(f"maintenance_work_mem {maintenance_work_mem!r} is not like '512MB'")
    if concurrently is None:
        concurrently = repo._factory is not None
    engine = _autocommit_engine(repo)
    table = str(engine.dialect.identifier_preparer.format_table(table_obj))
    rows = None
    if spec.method == "ivfflat" and spec.lists is None:
        rows = repo.count()
    ddl = index_ddl(spec, table, dimension=repo.dimension, collection_id=collection_id,
                    rows=rows, concurrently=concurrently)  # fmt: skip
    name = ddl.split(" IF NOT EXISTS ")[1].split(" ")[0]
    memory = (f"SET maintenance_work_mem = '{maintenance_work_mem}'"
              if maintenance_work_mem else None)  # fmt: skip
    try:
        with db_errors(f"create index {name}"):
            if concurrently:
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    if memory:
                        conn.exec_driver_sql(memory)
                    try:
                        conn.exec_driver_sql(ddl)
                    except Exception:
                        conn.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                        raise
                    finally:
                        if memory:
                            conn.exec_driver_sql("RESET maintenance_work_mem")
            else:
                with repo._write(f"create index {name}") as session:
                    if memory:
                        session.execute(text(f"SET LOCAL {memory[4:]}"))
                    session.execute(text(ddl))
    except ValidationError:
        raise
    except Exception as exc:
        raise IndexBuildError(f"building index {name} failed: {exc}") from exc
    finally:
        forget(repo)
    return name


def drop_index(
    repo: DocumentRepository[Any], name: str, *, concurrently: bool | None = None
) -> bool:
    """Drop the ANN index ``name`` from the repository's table; False if it did not exist."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(f"{name!r} is not a valid index name")
    if concurrently is None:
        concurrently = repo._factory is not None
    engine = _autocommit_engine(repo)
    try:
        with repo._read("list indexes") as session:
            known = {ix.name for ix in list_indexes(session, repo.model.__table__)}
        if name not in known:
            return False
        schema = repo.model.__table__.schema
        qualified = f'"{schema}".{name}' if schema else name
        conc = " CONCURRENTLY" if concurrently else ""
        if concurrently:
            autocommit = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            with db_errors(f"drop index {name}"), autocommit as conn:
                conn.exec_driver_sql(f"DROP INDEX{conc} IF EXISTS {qualified}")
        else:
            with repo._write(f"drop index {name}") as session:
                session.execute(text(f"DROP INDEX IF EXISTS {qualified}"))
    finally:
        forget(repo)
    return True
