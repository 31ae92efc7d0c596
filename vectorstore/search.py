"""nearest: one place decides how a similarity query runs, and every result says so.

The query path is: query (vector, or text through the Embedder) -> *plan* ->
one SQL statement under ``SET LOCAL`` settings -> typed results.

Planning (``strategy="auto"``) chooses per query between three strategies,
because none wins everywhere (pgvector's over-filtering problem):

* ``"index"``: a plain ANN index scan (no filter beyond the collection, and the
  collection is most of the table).  ``hnsw.ef_search`` is raised to at least
  ``k + offset`` because an HNSW scan never returns more than ef_search rows.
* ``"exact"``: an exact ranking of the rows the filter selects (at most
  ``exact_threshold``, default :data:`DEFAULT_EXACT_THRESHOLD`).  Ordering by
  ``distance + 0`` keeps the planner off the ANN index while btree/GIN indexes
  still select the rows.  Wins when the filter keeps few rows.
* ``"iterative"``: an ANN scan that keeps going until ``k`` rows pass the
  filter (pgvector 0.8+ ``hnsw.iterative_scan`` / ``ivfflat.iterative_scan``
  in ``relaxed_order``, bounded by ``max_scan_tuples`` / ``max_probes``; rows
  are re-sorted by distance after the fetch).  On older pgvector, a widened
  ``ef_search`` / ``probes`` scan stands in.

The filter's size is estimated without a round trip from the collection's
cached metadata sample (:mod:`vectorstore._selectivity`: PostgreSQL keeps no
statistics inside ``jsonb``, so its estimates there are fixed guesses).  For
shapes the sample cannot judge (column fields, ``$like``, ``$contains``,
SQLAlchemy expressions, joins) the planner's estimate is used, and an estimate
below twice the threshold is checked by a bounded count (``LIMIT threshold +
1``).  A wrong choice costs time, never correctness.  Once an ANN strategy is
chosen with a filter, ``enable_sort`` is turned off for the query so the
planner, misled by the same JSONB guesses, cannot swap the index scan for a
filter-then-sort plan.

The hot path is short: a standalone repository runs the call on a pooled
connection without the ORM session (documents are built from the rows as
detached instances, as the session path would leave them), the settings go in
one ``SELECT set_config(...)`` statement, and an unfiltered statement is built
once with the query vector as a named parameter.  When the plan comes from
caches (catalog, collection share, metadata sample), the call skips
SQLAlchemy's execution machinery: the statement compiled once for the
engine's dialect runs on the DB-API cursor of a pooled connection, with
SQLAlchemy's bind and result processors (values stay bound parameters).  The
read runs in autocommit mode with settings and query in one implicit
transaction and one round trip (one message on psycopg2, one pipeline on
psycopg 3): no BEGIN, no COMMIT.  A filtered call compiles
only its filter; the filter's cache key finds the statement compiled for that
shape, and a repeated plain filter skips even that.  Engines with
cursor or error hooks (tracing, logging), ``echo`` or execution options keep
SQLAlchemy's path, so those hooks see every statement.  Driver errors are
wrapped as SQLAlchemy would (a disconnect invalidates the pooled connection),
so error translation and the one retry of a read apply unchanged.

Guarantee: if at least ``k`` rows match, ``k`` rows come back -- an ANN scan
that returns fewer is re-run exactly, and the result set records the fallback.

A distance threshold (``max_distance`` / ``min_score``) is applied to the ``k``
fetched rows, never pushed into the index scan: a threshold nothing meets would
otherwise walk the whole index.  So a threshold returns the rows of the ``k``
nearest that meet it (``ResultSet.threshold_bounded`` says so).

Settings never leak.  In a session the host app owns, the query runs inside a
SAVEPOINT, the settings are ``set_config(..., is_local => true)`` and the
savepoint is rolled back after the fetch, which restores the caller's values;
a standalone repository's transaction ends with the call.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pgvector.sqlalchemy import BIT, HALFVEC, Vector
from sqlalchemy import ColumnElement, Select, bindparam, cast, func, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, defer

from ._batch import validate_vector
from ._selectivity import metadata_sample
from ._single import vector_literal
from .errors import ValidationError, db_errors
from .filters import compile_filter
from .indexes import inspect_indexes, qualified_table
from .results import ResultSet, SearchResult

if TYPE_CHECKING:
    from .repository import DocumentRepository

__all__ = [
    "METRICS",
    "STRATEGIES",
    "Metric",
    "SearchOptions",
    "SearchPlan",
    "Strategy",
    "distance_expression",
    "settings_scope",
]

Metric = Literal["cosine", "l2", "inner_product", "l1"]
Strategy = Literal["auto", "index", "iterative", "exact"]
Quantization = Literal["halfvec", "binary"]
METRICS: tuple[str, ...] = ("cosine", "l2", "inner_product", "l1")
STRATEGIES: tuple[str, ...] = ("auto", "index", "iterative", "exact")
_ALIASES = {"ip": "inner_product", "dot": "inner_product", "euclidean": "l2",
            "manhattan": "l1", "taxicab": "l1"}  # fmt: skip
_COMPARATOR = {"cosine": "cosine_distance", "l2": "l2_distance",
               "inner_product": "max_inner_product", "l1": "l1_distance"}  # fmt: skip

#: ef_search when none is given.  pgvector's default (40) measured recall@10
#: 0.943 on real MiniLM embeddings and 100 gave 0.981; on 100k clustered
#: synthetic vectors 100 gave 0.943 and 200 gave 0.98 (unfiltered and through
#: iterative scans): see benchmarks/results/search.md.
DEFAULT_EF_SEARCH = 200
#: ef_search of an iterative scan under a filter, when none is given.  A filter
#: keeping a share s of the rows pushes the k-th match to about rank k/s of
#: the unfiltered ranking, so the candidate list must be wider for the same
#: recall: on 100k clustered vectors, 200 gave recall@10 0.986 / 0.982 at 10% /
#: 50% and 300-400 gave 0.996 / 0.992, at about the same latency
#: (benchmarks/results/search.md).
DEFAULT_FILTERED_EF_SEARCH = 400
#: Binary quantization: candidates = (k + offset) x this, re-ranked on the full
#: vectors.  Sign bits keep little of a 384-d vector: on 100k clustered vectors
#: 4x found a third of the true neighbours, 10x 0.53, 20x 0.76, 40x 0.95, and
#: 40x still ran faster than the full-precision index (benchmarks/results/search.md).
DEFAULT_RERANK = 40
#: IVFFlat probes when none is given (pgvector's default is 1).
DEFAULT_PROBES = 10
#: Filters that keep at most this many rows are ranked exactly.  Measured on
#: 100k rows: at 1% (1,000 rows) exact ranking and an iterative scan cost
#: about the same and between 2% and 8% they stay within noise of each other,
#: at 10% the iterative scan is ~10x faster; and a 2,000-row collection
#: sharing a table's HNSW graph with 100k others got recall 0.71 through an
#: iterative scan but 1.0 exactly.  So: exact up to 5,000.
DEFAULT_EXACT_THRESHOLD = 5_000
#: Tuples an iterative HNSW scan may visit before giving up (pgvector's default 20k).
DEFAULT_MAX_SCAN_TUPLES = 40_000
_HNSW_MAX_EF = 1000
#: Upper bound of k, offset and other counts: far beyond any real query, far below bigint.
_MAX_COUNT = 2**31 - 1
_FALLBACK_EF = 1000


def normalize_metric(metric: str) -> str:
    """The canonical metric name; raises ValidationError for an unknown one."""
    name = _ALIASES.get(metric, metric) if isinstance(metric, str) else metric
    if name not in METRICS:
        raise ValidationError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    return str(name)


def score_of(metric: str, distance: float) -> float:
    """Similarity score of a distance: higher is more similar (see SearchResult)."""
    if metric == "cosine":
        return 1.0 - distance
    if metric == "inner_product":
        return -distance
    return 1.0 / (1.0 + distance)


def max_distance_for_score(metric: str, min_score: float) -> float:
    """The largest distance whose score is still at least ``min_score``."""
    if metric == "cosine":
        return 1.0 - min_score
    if metric == "inner_product":
        return -min_score
    return math.inf if min_score <= 0 else 1.0 / min_score - 1.0


class QueryVector(Vector):
    """pgvector's ``vector`` type for query parameters, with a faster text form.

    pgvector's own bind processor formats each component in a Python loop
    (~150 us for 384 floats, a tenth of a whole indexed query); one ``%``
    with a per-dimension template of ``%.9g`` fields does it in C (~50 us).
    Nine significant digits round-trip every float32 exactly.
    """

    cache_ok = True

    def bind_processor(self, dialect: Any) -> Any:
        def process(value: Any) -> str | None:
            if value is None or isinstance(value, str):
                return value
            return vector_literal(value)

        return process


def query_param(vector: Any, dimension: int, name: str | None = None) -> Any:
    """A bound query vector (``name``: a fixed name, for statements reused across calls)."""
    if isinstance(vector, ColumnElement):
        return vector
    if name is not None:
        return bindparam(name, type_=QueryVector(dimension))
    return bindparam(None, vector, type_=QueryVector(dimension))


def distance_expression(
    column: Any, vector: Any, metric: str, *, precision: str = "vector", dimension: int
) -> ColumnElement[float]:
    """pgvector's distance operator between ``column`` and ``vector``.

    ``precision="halfvec"`` casts both sides to ``halfvec(dim)``, the form a
    halfvec expression index is built on; ``"binary"`` compares
    ``binary_quantize(...)::bit(dim)`` by Hamming distance.  ``vector`` is a
    vector or a bound parameter from :func:`query_param`.
    """
    param = query_param(vector, dimension)
    if precision == "binary":
        left = cast(func.binary_quantize(column), BIT(dimension))
        right = cast(func.binary_quantize(cast(param, Vector(dimension))), BIT(dimension))
        return left.hamming_distance(right)  # type: ignore[no-any-return]
    if precision == "halfvec":
        left = cast(column, HALFVEC(dimension))
        right = cast(param, HALFVEC(dimension))
        return getattr(left, _COMPARATOR[metric])(right)  # type: ignore[no-any-return]
    return getattr(column, _COMPARATOR[metric])(param)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class SearchOptions:
    """Everything that shapes one nearest call (validated by :func:`make_options`)."""

    k: int = 10
    metric: str = "cosine"
    filter: Any = None
    max_distance: float | None = None
    offset: int = 0
    with_embedding: bool = False
    strategy: str = "auto"
    ef_search: int | None = None
    probes: int | None = None
    max_scan_tuples: int = DEFAULT_MAX_SCAN_TUPLES
    exact_threshold: int | None = None
    precision: str = "vector"
    rerank: int | None = None
    join: Any = None
    join_on: Any = None
    mmr: float | None = None
    fetch_k: int | None = None


def _positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValidationError(f"{name} must be an integer, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValidationError(f"{name} must be {'>= 0' if allow_zero else 'positive'}, got {value}")
    if value > _MAX_COUNT:
        # A larger LIMIT (or k * a candidate factor) overflows PostgreSQL's bigint.
        raise ValidationError(f"{name} must be at most {_MAX_COUNT}, got {value}")
    return int(value)


def make_options(
    k: int,
    *,
    metric: str = "cosine",
    filter: Any = None,
    max_distance: float | None = None,
    min_score: float | None = None,
    offset: int = 0,
    with_embedding: bool = False,
    strategy: str = "auto",
    exact: bool = False,
    ef_search: int | None = None,
    probes: int | None = None,
    max_scan_tuples: int = DEFAULT_MAX_SCAN_TUPLES,
    exact_threshold: int | None = None,
    precision: str = "vector",
    rerank: int | None = None,
    join: Any = None,
    join_on: Any = None,
    mmr: float | None = None,
    fetch_k: int | None = None,
) -> SearchOptions:
    """Validate nearest's keyword arguments into a :class:`SearchOptions`."""
    k = _positive_int("k", k)
    metric = normalize_metric(metric)
    offset = _positive_int("offset", offset, allow_zero=True)
    if exact:
        strategy = "exact"
    if strategy not in STRATEGIES:
        raise ValidationError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    limit = None
    for name, value in (("max_distance", max_distance), ("min_score", min_score)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ValidationError(f"{name} must be a number, got {value!r}")
    if max_distance is not None:
        limit = float(max_distance)
    if min_score is not None:
        bound = max_distance_for_score(metric, float(min_score))
        limit = bound if limit is None else min(limit, bound)
    if ef_search is not None:
        ef_search = _positive_int("ef_search", ef_search)
        if ef_search > _HNSW_MAX_EF:
            raise ValidationError(f"ef_search must be at most {_HNSW_MAX_EF}, got {ef_search}")
    if probes is not None:
        probes = _positive_int("probes", probes)
    max_scan_tuples = _positive_int("max_scan_tuples", max_scan_tuples)
    if exact_threshold is not None:
        exact_threshold = _positive_int("exact_threshold", exact_threshold, allow_zero=True)
    if precision not in ("vector", "halfvec", "binary"):
        raise ValidationError(
            f"precision must be 'vector', 'halfvec' or 'binary', got {precision!r}"
        )
    if precision == "binary" and metric != "cosine" and metric != "l2":
        raise ValidationError("binary quantization re-ranks by cosine or l2 only")
    if rerank is not None:
        rerank = _positive_int("rerank", rerank)
    if (join is None) != (join_on is None):
        raise ValidationError("join= and join_on= go together")
    if mmr is not None:
        if isinstance(mmr, bool) or not isinstance(mmr, int | float) or not 0.0 <= mmr <= 1.0:
            raise ValidationError(f"mmr (lambda) must be a number in [0, 1], got {mmr!r}")
        mmr = float(mmr)
    if fetch_k is not None:
        fetch_k = _positive_int("fetch_k", fetch_k)
    return SearchOptions(
        k=k, metric=metric, filter=filter, max_distance=limit, offset=offset,
        with_embedding=bool(with_embedding), strategy=strategy, ef_search=ef_search,
        probes=probes, max_scan_tuples=max_scan_tuples, exact_threshold=exact_threshold,
        precision=precision, rerank=rerank, join=join, join_on=join_on, mmr=mmr,
        fetch_k=fetch_k,
    )  # fmt: skip


def query_vector(repo: DocumentRepository[Any], query: Any) -> np.ndarray[Any, Any]:
    """The query as a validated float32 vector (a text is embedded)."""
    if isinstance(query, str):
        return repo.embed_query(query)
    if isinstance(query, np.ndarray) and query.dtype.kind == "f" and query.ndim == 1:
        # The common case: a float vector of the right size.  A float64 value
        # beyond float32's range becomes inf here and takes validate_vector's error.
        vector = query.astype(np.float32, copy=False)
        if vector.shape[0] == repo.dimension and bool(np.isfinite(vector).all()):
            return vector
    return np.asarray(validate_vector(query, repo.dimension)[0], dtype=np.float32)


# -- settings ---------------------------------------------------------------------
_SETTING_VALUE = re.compile(r"^[a-z0-9_]{1,32}$")
_SETTING_NAME = re.compile(r"^((hnsw|ivfflat)\.[a-z_]{1,32}|enable_sort)$")


def settings_sql(settings: Mapping[str, str]) -> str:
    """One ``SELECT set_config(..., true), ...`` for all ``settings`` (one round trip).

    Names and values come from this module (numbers it formatted, fixed
    keywords) and are checked again here, so rendering them is safe; a fixed
    text per combination also keeps the driver's and the server's work small.
    """
    return _settings_sql(tuple(settings.items()))


@lru_cache(maxsize=256)
def _settings_sql(items: tuple[tuple[str, str], ...]) -> str:
    parts = []
    for name, value in items:
        if not _SETTING_NAME.match(name) or not _SETTING_VALUE.match(value):
            raise ValidationError(f"refusing setting {name!r} = {value!r}")
        parts.append(f"set_config('{name}', '{value}', true)")
    return "SELECT " + ", ".join(parts)


@contextmanager
def settings_scope(session: Session, settings: Mapping[str, str], *, owned: bool) -> Iterator[None]:
    """Apply ``settings`` for the duration of the block only.

    ``owned``: the transaction ends with the call (standalone repository), so
    transaction-local settings are enough.  Otherwise the block runs in a
    SAVEPOINT that is rolled back at the end, restoring the caller's settings
    (reads need not persist).
    """
    if not settings:
        yield
        return
    sql = settings_sql(settings)
    if owned:
        session.connection().exec_driver_sql(sql)
        yield
        return
    nested = session.begin_nested()
    try:
        session.connection().exec_driver_sql(sql)
        yield
    finally:
        if nested.is_active:
            nested.rollback()


def _gucs(opts: SearchOptions, strategy: str, iterative_supported: bool) -> dict[str, str]:
    if strategy == "exact":
        return {}
    wanted = opts.k + opts.offset
    if opts.precision == "binary" or opts.rerank:
        wanted = _candidates(opts)
    filtered = opts.filter is not None or opts.join is not None
    widened = filtered and strategy == "iterative"
    default = DEFAULT_FILTERED_EF_SEARCH if widened else DEFAULT_EF_SEARCH
    ef = max(opts.ef_search or default, min(wanted, _HNSW_MAX_EF))
    probes = opts.probes or DEFAULT_PROBES
    out = {"hnsw.ef_search": str(ef), "ivfflat.probes": str(probes)}
    if filtered:
        # The strategy is decided: an ANN scan.  With a filter the planner may
        # still prefer "filter, then sort" (its JSONB estimates are fixed guesses
        # that run low; measured: a 10% filter estimated at 51 rows, ranked
        # exactly in 50 ms instead of a 3 ms index scan).  Sorting is what the
        # index scan avoids, so disabling it pins the plan to the index.
        out["enable_sort"] = "off"
    if strategy == "iterative":
        if iterative_supported:
            out.update({
                "hnsw.iterative_scan": "relaxed_order",
                "hnsw.max_scan_tuples": str(opts.max_scan_tuples),
                "ivfflat.iterative_scan": "relaxed_order",
            })  # fmt: skip
        else:
            out["hnsw.ef_search"] = str(_FALLBACK_EF)
    return out


def explicit_settings(
    ef_search: int | None, probes: int | None, iterative: bool, max_scan_tuples: int | None
) -> dict[str, str]:
    """Settings for :meth:`DocumentRepository.search_settings`, validated."""
    out: dict[str, str] = {}
    if ef_search is not None:
        ef = _positive_int("ef_search", ef_search)
        if ef > _HNSW_MAX_EF:
            raise ValidationError(f"ef_search must be at most {_HNSW_MAX_EF}, got {ef}")
        out["hnsw.ef_search"] = str(ef)
    if probes is not None:
        out["ivfflat.probes"] = str(_positive_int("probes", probes))
    if iterative:
        out["hnsw.iterative_scan"] = "relaxed_order"
        out["ivfflat.iterative_scan"] = "relaxed_order"
    if max_scan_tuples is not None:
        out["hnsw.max_scan_tuples"] = str(_positive_int("max_scan_tuples", max_scan_tuples))
    return out


def _candidates(opts: SearchOptions) -> int:
    factor = opts.rerank or (DEFAULT_RERANK if opts.precision == "binary" else 4)
    return (opts.k + opts.offset) * factor


# -- statements ---------------------------------------------------------------------
@dataclass
class SearchPlan:
    """How one nearest call runs: the statement, its settings, and why.

    Attributes:
        statement: the SELECT (documents, distance[, joined entity]), or the
            document's loaded columns and distance for the light row path.
        strategy: ``"index"``, ``"iterative"`` or ``"exact"``.
        settings: the planner/pgvector settings applied with SET LOCAL.
        estimated_rows: the estimate of the rows the filter keeps (from the
            collection's metadata sample, else from the planner).
        counted_rows: the bounded count, when one was taken (capped at threshold + 1).
        reason: a short explanation of the choice.
        params: values for the statement's named parameters (the query vector).
    """

    statement: Select[Any]
    strategy: str
    settings: dict[str, str]
    estimated_rows: int | None = None
    counted_rows: int | None = None
    reason: str = ""
    vector: Any = None
    options: SearchOptions = field(default_factory=SearchOptions)
    params: dict[str, Any] = field(default_factory=dict)
    #: the raw path's compiled statement and this call's processed parameters
    prepared: Any = None


def where_clause(repo: DocumentRepository[Any], opts: SearchOptions) -> list[ColumnElement[bool]]:
    """The collection predicate and the compiled filter."""
    model = repo.model
    conditions: list[ColumnElement[bool]] = [model.collection_id == repo.collection.id]
    compiled = compile_filter(opts.filter, model)
    if compiled is not None:
        conditions.append(compiled)
    return conditions


_LOADED: dict[tuple[Any, bool], tuple[tuple[str, ...], tuple[Any, ...]]] = {}


def loaded_columns(model: Any, with_embedding: bool) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """Attribute keys and columns that loading ``model`` would fill (deferred ones left out)."""
    found = _LOADED.get((model, with_embedding))
    if found is None:
        keys, columns = [], []
        for prop in model.__mapper__.column_attrs:
            if prop.deferred or (prop.key == "embedding" and not with_embedding):
                continue
            keys.append(prop.key)
            columns.append(getattr(model, prop.key))
        found = _LOADED.setdefault((model, with_embedding), (tuple(keys), tuple(columns)))
    return found


def build_statement(
    repo: DocumentRepository[Any],
    vector: Any,
    opts: SearchOptions,
    strategy: str,
    *,
    columns: bool = False,
    conditions: list[ColumnElement[bool]] | None = None,
) -> Select[Any]:
    """The one SELECT of a nearest call for ``strategy`` (no settings attached).

    ``vector``: the query vector, or a bound parameter (:func:`query_param`).
    ``columns``: select the document's loaded columns instead of the entity
    (the light row path of a standalone repository; no ``join``).
    """
    model = repo.model
    dim = repo.dimension
    full = distance_expression(model.embedding, vector, opts.metric, dimension=dim)
    if conditions is None:
        conditions = where_clause(repo, opts)
    limit = opts.k + opts.offset
    if opts.mmr is not None:
        limit = max(limit, opts.fetch_k or 4 * limit)
    entities: list[Any] = (
        [*loaded_columns(model, opts.with_embedding or opts.mmr is not None)[1]]
        if columns
        else [model]
    )
    distance = full.label("distance")
    entities.append(distance)
    if opts.join is not None:
        entities.append(opts.join)
    quantized = opts.precision != "vector"
    if columns and strategy == "exact" and not quantized:
        # The rows the filter keeps, ranked in an outer query: OFFSET 0 keeps
        # the planner from pushing the ORDER BY into the ANN index, and each
        # distance is computed once (``ORDER BY distance + 0`` computes it twice
        # per row, and sends the query vector twice).
        ranked = select(*entities).where(*conditions).offset(0).subquery("ranked")
        return select(*ranked.c).order_by(ranked.c.distance).limit(limit)
    if quantized and strategy != "exact":
        # Candidates by the compact index, re-ranked on the full vectors, one statement.
        approx = distance_expression(model.embedding, vector, opts.metric,
                                     precision=opts.precision, dimension=dim)  # fmt: skip
        inner = select(model.id).where(*conditions)
        if opts.join is not None:
            inner = inner.join(opts.join, opts.join_on)
        inner = inner.order_by(approx).limit(_candidates(opts) if opts.rerank or
                                             opts.precision == "binary" else limit)  # fmt: skip
        stmt = select(*entities).where(model.id.in_(inner.scalar_subquery()))
        order: Any = full
    else:
        stmt = select(*entities).where(*conditions)
        # "+ 0" is not the indexed operator expression, so no ANN index is used;
        # otherwise the label: the query vector is sent (and parsed) once.
        order = full + 0 if strategy == "exact" else distance
    if opts.join is not None:
        stmt = stmt.join(opts.join, opts.join_on)
    stmt = stmt.order_by(order).limit(limit)
    if not columns and not opts.with_embedding and opts.mmr is None:
        stmt = stmt.options(defer(model.embedding))
    return stmt


_VECTOR_PARAM = "query_vector"
_STATEMENTS: dict[tuple[Any, ...], Select[Any]] = {}
_STATEMENTS_MAX = 512


def _statement(
    repo: DocumentRepository[Any], opts: SearchOptions, strategy: str, columns: bool
) -> Select[Any]:
    """The statement with the query vector as a named parameter.

    Without a filter or join the statement depends only on a few options, so
    it is built once and reused: SQLAlchemy then finds its compiled form in
    its cache, and nothing is rebuilt per call.
    """
    if opts.filter is not None or opts.join is not None:
        param = query_param(None, repo.dimension, _VECTOR_PARAM)
        return build_statement(repo, param, opts, strategy, columns=columns)
    key = (repo.model, repo.collection.id, strategy, columns, opts.metric, opts.precision,
           opts.k + opts.offset, opts.with_embedding, opts.mmr is not None, opts.fetch_k,
           opts.rerank)  # fmt: skip
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        if len(_STATEMENTS) >= _STATEMENTS_MAX:
            _STATEMENTS.clear()
        param = query_param(None, repo.dimension, _VECTOR_PARAM)
        stmt = _STATEMENTS.setdefault(key, build_statement(repo, param, opts, strategy,
                                                            columns=columns))  # fmt: skip
    return stmt


# -- planning ----------------------------------------------------------------------
def exact_threshold(opts: SearchOptions) -> int:
    """Filters keeping at most this many rows are ranked exactly (see the constant)."""
    chosen = DEFAULT_EXACT_THRESHOLD if opts.exact_threshold is None else opts.exact_threshold
    return max(chosen, opts.k + opts.offset)


def _connection(bind: Session | Connection) -> Connection:
    return bind if isinstance(bind, Connection) else bind.connection()


def _estimate(conn: Connection, stmt: Select[Any]) -> int:
    from .diagnostics import Explain

    plan = conn.execute(Explain(stmt, analyze=False)).scalar_one()
    return int(plan[0]["Plan"]["Plan Rows"])


def _bounded_count(conn: Connection, conditions: Sequence[Any], model: Any, join: Any,
                   join_on: Any, cap: int) -> int:  # fmt: skip
    inner = select(literal(1)).select_from(model)
    if join is not None:
        inner = inner.join(join, join_on)
    inner = inner.where(*conditions).limit(cap)
    return int(conn.execute(select(func.count()).select_from(inner.subquery())).scalar_one())


def plan_search(
    repo: DocumentRepository[Any],
    bind: Session | Connection,
    vector: Any,
    opts: SearchOptions,
    *,
    columns: bool = False,
) -> SearchPlan:
    """Choose the strategy and build the statement (see the module docstring)."""
    conn = _connection(bind)
    info = inspect_indexes(repo, conn)
    has_index = info.has_index(opts.metric, opts.precision)
    iterative_ok = info.iterative_supported
    estimated = counted = None
    strategy = opts.strategy
    reason = "requested"
    if strategy == "auto":
        if not has_index:
            strategy, reason = "exact", f"no {opts.precision} ANN index for metric {opts.metric}"
        elif (opts.filter is None and opts.join is None
              and info.collection_share(conn, repo) >= 0.9):  # fmt: skip
            strategy, reason = "index", "no filter; the collection is the table"
        else:
            table = qualified_table(conn, repo.model.__table__)
            sample = metadata_sample(conn, table, info.collection_id)
            threshold = exact_threshold(opts)
            estimated = sample.estimate(opts.filter) if opts.join is None else None
            if estimated is not None:
                strategy = "exact" if estimated <= threshold else "iterative"
                sign = "<=" if strategy == "exact" else ">"
                reason = (f"sampled estimate {estimated} of {sample.rows} rows {sign} "
                          f"threshold {threshold}")  # fmt: skip
            else:
                strategy, estimated, counted, reason = _plan_by_count(repo, conn, opts, threshold)
    stmt = _statement(repo, opts, strategy, columns)
    return SearchPlan(
        statement=stmt, strategy=strategy, settings=_gucs(opts, strategy, iterative_ok),
        estimated_rows=estimated, counted_rows=counted, reason=reason, vector=vector,
        options=opts, params={_VECTOR_PARAM: vector},
    )  # fmt: skip


def _plan_by_count(
    repo: DocumentRepository[Any], conn: Connection, opts: SearchOptions, threshold: int
) -> tuple[str, int, int | None, str]:
    """For filters the sample cannot judge: the planner's estimate, then a bounded count."""
    conditions = where_clause(repo, opts)
    probe = select(literal(1)).select_from(repo.model)
    if opts.join is not None:
        probe = probe.join(opts.join, opts.join_on)
    estimated = _estimate(conn, probe.where(*conditions))
    if estimated > 2 * threshold:
        return "iterative", estimated, None, f"planner estimates {estimated} rows > 2 x {threshold}"
    # Planner estimates for JSONB operators are fixed guesses that run low, so a
    # small estimate is checked with a count capped at threshold + 1.
    counted = _bounded_count(conn, conditions, repo.model, opts.join, opts.join_on, threshold + 1)
    if counted <= threshold:
        return "exact", estimated, counted, f"filter keeps {counted} rows <= {threshold}"
    return "iterative", estimated, counted, f"filter keeps more than {threshold} rows"


# -- execution ----------------------------------------------------------------------
def owns_sessions(repo: DocumentRepository[Any]) -> bool:
    """True when reads run in a transaction the repository opens and ends itself."""
    return repo._read_factory is not None or repo._factory is not None


def _fetch(session: Session, plan: SearchPlan, owned: bool) -> list[Any]:
    with settings_scope(session, plan.settings, owned=owned):
        return list(session.execute(plan.statement, plan.params).all())


def _exact_plan(
    repo: DocumentRepository[Any], plan: SearchPlan, returned: int, columns: bool
) -> SearchPlan:
    opts = plan.options
    return SearchPlan(
        statement=_statement(repo, opts, "exact", columns), strategy="exact", settings={},
        estimated_rows=plan.estimated_rows, counted_rows=plan.counted_rows,
        reason=f"{plan.strategy} returned {returned} < {opts.k + opts.offset} rows",
        vector=plan.vector, options=opts, params=plan.params,
    )  # fmt: skip


def _light_engine(repo: DocumentRepository[Any]) -> Any:
    factory = repo._read_factory or repo._factory
    assert factory is not None
    return factory.kw["bind"]


def _run_light(
    repo: DocumentRepository[Any], vector: Any, opts: SearchOptions
) -> tuple[list[Any], SearchPlan, str | None]:
    """A standalone repository's nearest: Core rows on a pooled connection.

    The session machinery and the identity map cost more than the query on a
    warm index, and a standalone repository's results are detached anyway; so
    the documents are built straight from the rows as detached instances.
    """
    from . import _search_raw as raw

    model = repo.model
    keys = loaded_columns(model, opts.with_embedding or opts.mmr is not None)[0]
    fallback = None
    _ = repo.collection  # resolved (and cached) outside the read transaction
    engine = _light_engine(repo)
    with db_errors(f"nearest in collection {repo.collection_name!r}"):
        plan = raw.cached_plan(repo, engine, vector, opts) if raw.eligible(engine) else None
        done = None if plan is None else raw.run_raw(repo, engine, plan)
        if done is not None:
            return _documents(model, keys, done[0]), done[1], done[2]
        with engine.begin() as conn:
            plan = plan_search(repo, conn, vector, opts, columns=True)
            if plan.settings:
                conn.exec_driver_sql(settings_sql(plan.settings))
            rows = conn.execute(plan.statement, plan.params).all()
            if plan.strategy != "exact" and len(rows) < opts.k + opts.offset:
                # The ANN scan stopped short (over-filtering or scan bounds): rank exactly.
                fallback = plan.strategy
                plan = _exact_plan(repo, plan, len(rows), True)
                rows = conn.execute(plan.statement, plan.params).all()
    return _documents(model, keys, rows), plan, fallback


_SHAPES: dict[tuple[Any, tuple[str, ...]], tuple[Any, Any, tuple[int, ...], frozenset[str]]] = {}


def _shape(model: Any, keys: tuple[str, ...]) -> tuple[Any, Any, tuple[int, ...], frozenset[str]]:
    """Per model and loaded keys: class manager, identity class, key positions, keys to expire."""
    found = _SHAPES.get((model, keys))
    if found is None:
        mapper = model.__mapper__
        manager = mapper.class_manager
        pk = tuple(keys.index(mapper.get_property_by_column(c).key) for c in mapper.primary_key)
        # What _expire_attributes marks expired on a fresh instance: the scalar
        # attributes not loaded (relationships are left to their own loaders).
        expired = frozenset(
            k for k in manager if k not in keys and manager[k].impl.accepts_scalar_loader
        )
        found = _SHAPES.setdefault((model, keys), (manager, mapper._identity_class, pk, expired))
    return found


def _documents(model: Any, keys: tuple[str, ...], rows: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(detached document, distance) per row of loaded columns + distance.

    The state ``make_transient_to_detached`` leaves (identity key set,
    attributes not loaded expired, so touching one raises
    DetachedInstanceError rather than reading as None), with what it works out
    per instance (unloaded keys, the identity's class and columns) worked out
    once per model.  Listeners of the ``expire`` event (none by default) still
    see it, through SQLAlchemy's own method.
    """
    manager, identity_class, pk, expired = _shape(model, keys)
    listened = bool(manager.dispatch.expire)
    n = len(keys)
    out = []
    for row in rows:
        doc = manager.new_instance()
        state = doc._sa_instance_state
        values = doc.__dict__
        values.update(zip(keys, row[:n], strict=True))
        state.key = (identity_class, tuple(row[i] for i in pk), None)
        if listened:
            state._expire_attributes(values, expired)
        elif expired:
            state.expired_attributes = set(expired)
        out.append((doc, row[n]))
    return out


def run(repo: DocumentRepository[Any], query: Any, opts: SearchOptions) -> ResultSet[Any]:
    """Plan, execute (with the exact fallback), threshold, sort and wrap one nearest call."""
    vector = query_vector(repo, query)
    started = time.perf_counter()
    owned = owns_sessions(repo)
    if owned and opts.join is None:
        rows, plan, fallback = _run_light(repo, vector, opts)
    else:
        fallback = None
        with repo._read("nearest") as session:
            plan = plan_search(repo, session, vector, opts)
            rows = _fetch(session, plan, owned)
            if plan.strategy != "exact" and len(rows) < opts.k + opts.offset:
                fallback = plan.strategy
                plan = _exact_plan(repo, plan, len(rows), False)
                rows = _fetch(session, plan, owned)
    hits = [
        SearchResult(row[0], float(row[1]), score_of(opts.metric, float(row[1])),
                     row[2] if opts.join is not None else None)
        for row in rows
    ]  # fmt: skip
    # relaxed_order scans may return rows slightly out of order: sort once here.
    hits.sort(key=lambda h: h.distance)
    if opts.mmr is not None:
        from .hybrid import mmr_select

        hits = mmr_select(vector, hits, opts.k + opts.offset, opts.mmr, opts.metric)
    hits = hits[opts.offset : opts.offset + opts.k]
    bounded = False
    if opts.max_distance is not None:
        kept = [h for h in hits if h.distance <= opts.max_distance]
        bounded = len(kept) < len(hits) or len(hits) == opts.k
        hits = kept
    return ResultSet(
        results=tuple(hits), k=opts.k, strategy=plan.strategy, metric=opts.metric,
        settings=dict(plan.settings), fallback_from=fallback, reason=plan.reason,
        estimated_rows=plan.estimated_rows, counted_rows=plan.counted_rows,
        threshold_bounded=bounded, elapsed_s=time.perf_counter() - started,
    )  # fmt: skip
