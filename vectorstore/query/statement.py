"""The SELECT of a nearest call, built once per shape and found again by one cache key.

``build_statement`` is the one builder of nearest's statement for each
strategy (hybrid search and diagnostics build on it too); ``statement_for``
reuses the statement of an unfiltered call, with the query vector as the
named parameter :data:`VECTOR_PARAM`, so SQLAlchemy finds its compiled form
in its cache and nothing is rebuilt per call.
"""

from __future__ import annotations

from typing import Any

from pgvector.sqlalchemy import BIT, HALFVEC, Vector
from sqlalchemy import ColumnElement, Executable, Select, cast, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import defer
from sqlalchemy.sql.expression import ClauseElement

from vectorstore._metrics import Metric, comparator
from vectorstore._target import Target
from vectorstore._vector import query_param

from .filters import compile_filter
from .options import SearchOptions, candidates, iterative_fetch
from .shadow import shadow_condition

__all__ = [
    "VECTOR_PARAM",
    "Explain",
    "build_statement",
    "distance_expression",
    "loaded_columns",
    "reusable",
    "statement_for",
    "statement_key",
    "where_clause",
]

#: The name of the query vector's parameter in a reusable statement.
VECTOR_PARAM = "query_vector"


class Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON[, ANALYZE, BUFFERS]) <statement>`` with bound parameters."""

    inherit_cache = False

    def __init__(self, statement: Any, *, analyze: bool = False) -> None:
        self.statement = statement
        self.analyze = analyze


@compiles(Explain)
def _compile_explain(element: Explain, compiler: Any, **kw: Any) -> str:
    options = "ANALYZE, BUFFERS, FORMAT JSON" if element.analyze else "FORMAT JSON"
    return f"EXPLAIN ({options}) " + str(compiler.process(element.statement, **kw))


def distance_expression(
    column: Any, vector: Any, metric: Metric, *, precision: str = "vector", dimension: int
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
        return getattr(left, comparator(metric))(right)  # type: ignore[no-any-return]
    return getattr(column, comparator(metric))(param)  # type: ignore[no-any-return]


def where_clause(
    target: Target[Any], opts: SearchOptions, strategy: str | None = None
) -> list[ColumnElement[bool]]:
    """The collection predicate and the compiled filter.

    ``strategy="exact"`` on a ``metadata_index = "table"`` model adds the
    semi-join on the shadow table's GIN index (:mod:`.shadow`); an ANN scan
    filters row-wise and needs none.
    """
    model = target.model
    conditions: list[ColumnElement[bool]] = [model.collection_id == target.collection_id]
    compiled = compile_filter(opts.filter, model)
    if compiled is not None:
        conditions.append(compiled)
        if strategy == "exact":
            semi = shadow_condition(target, opts.filter, first=True)
            if semi is not None:
                conditions.append(semi)
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
    target: Target[Any],
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
    model = target.model
    dim = target.dimension
    full = distance_expression(model.embedding, vector, opts.metric, dimension=dim)
    if conditions is None:
        conditions = where_clause(target, opts, strategy)
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
        inner = inner.order_by(approx).limit(candidates(opts) if opts.rerank or
                                             opts.precision == "binary" else limit)  # fmt: skip
        stmt = select(*entities).where(model.id.in_(inner.scalar_subquery()))
        order: Any = full
    elif strategy == "iterative" and opts.mmr is None and opts.overfetch > 1:
        # A relaxed_order scan's first matches are near, not always the
        # nearest: fetch more ids than wanted, keep the nearest of them.  The
        # outer query orders by the candidates' distance "+ 0": ordered by the
        # distance expression, the planner walks the index a second time,
        # unfiltered, and semi-joins the candidates; by the bare column, it
        # takes the scan's order as sorted and keeps its first rows.
        inner = select(model.id.label("candidate_id"), distance).where(*conditions)
        if opts.join is not None:
            inner = inner.join(opts.join, opts.join_on)
        found = inner.order_by(full).limit(iterative_fetch(opts)).subquery("candidates")
        entities[-1 if opts.join is None else -2] = found.c.distance
        stmt = select(*entities).join(found, model.id == found.c.candidate_id)
        # The collection again: on a partitioned table it prunes the join to one partition.
        stmt = stmt.where(model.collection_id == target.collection_id)
        order = found.c.distance + 0
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


_STATEMENTS: dict[tuple[Any, ...], Select[Any]] = {}
_STATEMENTS_MAX = 512


def statement_key(
    target: Target[Any], opts: SearchOptions, strategy: str, columns: bool
) -> tuple[Any, ...]:
    """What a nearest statement depends on besides its filter: the one cache key.

    Every cache of built or compiled statements (here and in :mod:`.raw`)
    starts its key with this tuple, so none can tell two calls apart that
    need different SQL, nor keep two entries for calls that need the same.
    """
    return (target.model, target.collection_id, strategy, columns, opts.metric, opts.precision,
            opts.k + opts.offset, opts.with_embedding, opts.mmr is not None, opts.fetch_k,
            opts.rerank, opts.overfetch)  # fmt: skip


def statement_for(
    target: Target[Any], opts: SearchOptions, strategy: str, columns: bool
) -> Select[Any]:
    """The statement with the query vector as a named parameter.

    Without a filter or join the statement depends only on a few options, so
    it is built once and reused: SQLAlchemy then finds its compiled form in
    its cache, and nothing is rebuilt per call.
    """
    if not reusable(opts):
        param = query_param(None, target.dimension, VECTOR_PARAM)
        return build_statement(target, param, opts, strategy, columns=columns)
    key = statement_key(target, opts, strategy, columns)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        if len(_STATEMENTS) >= _STATEMENTS_MAX:
            _STATEMENTS.clear()
        param = query_param(None, target.dimension, VECTOR_PARAM)
        built = build_statement(target, param, opts, strategy, columns=columns)
        stmt = _STATEMENTS.setdefault(key, built)
    return stmt


def reusable(opts: SearchOptions) -> bool:
    """Whether :func:`statement_for` reuses one statement object for these options."""
    return opts.filter is None and opts.join is None
