"""What shapes one nearest call: :class:`SearchOptions`, validated once by :func:`make_options`.

Also the defaults the planner falls back on, each with the measurement
behind it.  Nothing here does I/O: a bad option is a ValidationError before
any SQL exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import numpy as np
from sqlalchemy import ColumnElement
from sqlalchemy.orm.util import AliasedClass

from vectorstore._metrics import (
    PRECISIONS,
    Metric,
    Precision,
    max_distance_for_score,
    normalize_metric,
)
from vectorstore.errors import ValidationError

from .filters import FilterLike

__all__ = [
    "DEFAULT_EF_SEARCH",
    "DEFAULT_EXACT_THRESHOLD",
    "DEFAULT_FILTERED_EF_SEARCH",
    "DEFAULT_MAX_SCAN_TUPLES",
    "DEFAULT_PROBES",
    "DEFAULT_RERANK",
    "HNSW_MAX_EF",
    "STRATEGIES",
    "JoinTarget",
    "NearestOptions",
    "QueryShape",
    "SearchOptions",
    "Strategy",
    "candidates",
    "explicit_settings",
    "make_options",
    "positive_int",
]

#: What ``join=`` takes: a mapped class of the app's, or an ``aliased()`` one.
JoinTarget = type[Any] | AliasedClass[Any]

#: How nearest ranks: chosen per query (``"auto"``), an ANN index scan, an
#: iterative index scan that keeps going until k rows pass the filter, or an
#: exact ranking of the filtered rows.
Strategy = Literal["auto", "index", "iterative", "exact"]
STRATEGIES: tuple[Strategy, ...] = ("auto", "index", "iterative", "exact")

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
#: Matching rows an iterative scan's first candidate list should hold (see
#: iterative_ef): the list is widened past DEFAULT_FILTERED_EF_SEARCH where
#: the filter's local share is under a quarter.
WIDE_MATCHES = 100
#: Binary quantization: candidates = (k + offset) x this, re-ranked on the full
#: vectors.  Sign bits keep little of a 384-d vector: on 100k clustered vectors
#: 4x found a third of the true neighbours, 10x 0.53, 20x 0.76, 40x 0.95, and
#: 40x still ran faster than the full-precision index (benchmarks/results/search.md).
DEFAULT_RERANK = 40
#: An iterative scan away from the filtered rows fetches (k + offset) x this
#: matching ids and keeps the nearest k + offset of them.  In relaxed_order the
#: first matches a scan meets are near the query, not always the nearest: on
#: 1,000,000 clustered rows with a correlated filter keeping 50 % and queries
#: away from it, fetching k gave recall@10 0.95 (3 of 10 queries at 0.8-0.9),
#: 4 x k 0.98 (benchmarks/bench_scale.py, docs/scale.md).  Where the filtered
#: rows are as dense near the query as anywhere, k suffices and the extra
#: tuples would only cost (1.06x -> 1.2x hand-written SQL at 50 % on 100k rows).
ITERATIVE_FETCH = 4
#: The planner fetches ITERATIVE_FETCH x k when the filter's local share near
#: the query is below this fraction of its share of the whole collection.
AWAY_SHARE = 0.5
#: IVFFlat probes when none is given (pgvector's default is 1).
DEFAULT_PROBES = 10
#: The row-count rule, now the fallback of the cost model (see query/cost.py):
#: it decides for filters the metadata sample cannot judge (the text column,
#: ``$like``, expressions, joins), and an explicit ``exact_threshold=`` keeps
#: it for a call.  Measured on 100k rows with *random* filters: at 1% (1,000
#: rows) exact ranking and an iterative scan cost about the same, at 10% the
#: iterative scan was ~10x faster.  On correlated filters no row count is
#: right (benchmarks/results/filtered_correlated_tables.md): a query far from
#: the filtered rows needs the exact ranking at 30%, one inside them the
#: iterative scan at 1%.
DEFAULT_EXACT_THRESHOLD = 5_000
#: Tuples an iterative HNSW scan may visit before giving up (pgvector's default 20k).
DEFAULT_MAX_SCAN_TUPLES = 40_000
#: pgvector's upper bound of hnsw.ef_search.
HNSW_MAX_EF = 1000
#: Upper bound of k, offset and other counts: far beyond any real query, far below bigint.
_MAX_COUNT = 2**31 - 1


@dataclass(frozen=True)
class SearchOptions:
    """Everything that shapes one nearest call (validated by :func:`make_options`)."""

    k: int = 10
    metric: Metric = "cosine"
    filter: FilterLike = None
    max_distance: float | None = None
    offset: int = 0
    with_embedding: bool = False
    strategy: Strategy = "auto"
    ef_search: int | None = None
    probes: int | None = None
    max_scan_tuples: int = DEFAULT_MAX_SCAN_TUPLES
    exact_threshold: int | None = None
    precision: Precision = "vector"
    rerank: int | None = None
    join: JoinTarget | None = None
    join_on: ColumnElement[bool] | None = None
    mmr: float | None = None
    fetch_k: int | None = None
    #: Set by the planner, not a nearest option: an iterative scan fetches
    #: (k + offset) x this matching ids and keeps the nearest (see ITERATIVE_FETCH).
    overfetch: int = 1


class QueryShape(TypedDict, total=False):
    """The keyword options that shape a query (see ``DocumentRepository.nearest``).

    ``measure_recall`` takes these; ``explain`` takes them with
    :class:`NearestOptions`' four more.
    """

    metric: str
    filter: FilterLike
    max_distance: float | None
    min_score: float | None
    offset: int
    with_embedding: bool
    max_scan_tuples: int | None
    exact_threshold: int | None
    precision: str
    rerank: int | None
    join: JoinTarget | None
    join_on: ColumnElement[bool] | None
    mmr: float | None
    fetch_k: int | None


class NearestOptions(QueryShape, total=False):
    """Every keyword option of ``DocumentRepository.nearest``, typed (for ``explain``)."""

    k: int
    strategy: str
    ef_search: int | None
    probes: int | None


def positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    """``value`` as an int in [1, 2**31 - 1] ([0, ...] with ``allow_zero``), else an error."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValidationError(f"{name} must be an integer, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValidationError(f"{name} must be {'>= 0' if allow_zero else 'positive'}, got {value}")
    if value > _MAX_COUNT:
        # A larger LIMIT (or k * a candidate factor) overflows PostgreSQL's bigint.
        raise ValidationError(f"{name} must be at most {_MAX_COUNT}, got {value}")
    return int(value)


def make_options(
    k: int = 10,
    *,
    metric: str = "cosine",
    filter: FilterLike = None,
    max_distance: float | None = None,
    min_score: float | None = None,
    offset: int = 0,
    with_embedding: bool = False,
    strategy: str = "auto",
    ef_search: int | None = None,
    probes: int | None = None,
    max_scan_tuples: int | None = None,
    exact_threshold: int | None = None,
    precision: str = "vector",
    rerank: int | None = None,
    join: JoinTarget | None = None,
    join_on: ColumnElement[bool] | None = None,
    mmr: float | None = None,
    fetch_k: int | None = None,
) -> SearchOptions:
    """Validate nearest's keyword arguments into a :class:`SearchOptions`."""
    k = positive_int("k", k)
    canonical = normalize_metric(metric)
    offset = positive_int("offset", offset, allow_zero=True)
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
        bound = max_distance_for_score(canonical, float(min_score))
        limit = bound if limit is None else min(limit, bound)
    if ef_search is not None:
        ef_search = positive_int("ef_search", ef_search)
        if ef_search > HNSW_MAX_EF:
            raise ValidationError(f"ef_search must be at most {HNSW_MAX_EF}, got {ef_search}")
    if probes is not None:
        probes = positive_int("probes", probes)
    scan_tuples = (DEFAULT_MAX_SCAN_TUPLES if max_scan_tuples is None
                   else positive_int("max_scan_tuples", max_scan_tuples))  # fmt: skip
    if exact_threshold is not None:
        exact_threshold = positive_int("exact_threshold", exact_threshold, allow_zero=True)
    if precision not in PRECISIONS:
        raise ValidationError(
            f"precision must be 'vector', 'halfvec' or 'binary', got {precision!r}"
        )
    if precision == "binary" and canonical not in ("cosine", "l2"):
        raise ValidationError("binary quantization re-ranks by cosine or l2 only")
    if rerank is not None:
        rerank = positive_int("rerank", rerank)
    if (join is None) != (join_on is None):
        raise ValidationError("join= and join_on= go together")
    if mmr is not None:
        if isinstance(mmr, bool) or not isinstance(mmr, int | float) or not 0.0 <= mmr <= 1.0:
            raise ValidationError(f"mmr (lambda) must be a number in [0, 1], got {mmr!r}")
        mmr = float(mmr)
    if fetch_k is not None:
        fetch_k = positive_int("fetch_k", fetch_k)
    return SearchOptions(
        k=k, metric=canonical, filter=filter, max_distance=limit, offset=offset,
        with_embedding=bool(with_embedding), strategy=strategy,
        ef_search=ef_search, probes=probes, max_scan_tuples=scan_tuples,
        exact_threshold=exact_threshold, precision=precision, rerank=rerank,
        join=join, join_on=join_on, mmr=mmr,
        fetch_k=fetch_k,
    )  # fmt: skip


def explicit_settings(
    ef_search: int | None, probes: int | None, iterative: bool, max_scan_tuples: int | None
) -> dict[str, str]:
    """Settings for :meth:`DocumentRepository.search_settings`, validated."""
    out: dict[str, str] = {}
    if ef_search is not None:
        ef = positive_int("ef_search", ef_search)
        if ef > HNSW_MAX_EF:
            raise ValidationError(f"ef_search must be at most {HNSW_MAX_EF}, got {ef}")
        out["hnsw.ef_search"] = str(ef)
    if probes is not None:
        out["ivfflat.probes"] = str(positive_int("probes", probes))
    if iterative:
        out["hnsw.iterative_scan"] = "relaxed_order"
        out["ivfflat.iterative_scan"] = "relaxed_order"
    if max_scan_tuples is not None:
        out["hnsw.max_scan_tuples"] = str(positive_int("max_scan_tuples", max_scan_tuples))
    return out


def iterative_fetch(opts: SearchOptions) -> int:
    """Rows an iterative scan fetches (by id) before keeping the nearest k + offset."""
    return (opts.k + opts.offset) * opts.overfetch


def overfetch_for(local_share: float, overall_share: float) -> int:
    """The fetch factor of an iterative scan: ITERATIVE_FETCH away from the filtered rows."""
    return ITERATIVE_FETCH if local_share < AWAY_SHARE * overall_share else 1


def iterative_ef(local_share: float) -> int:
    """The ef_search an iterative scan gets where the filter's local share is ``local_share``.

    The scan's first candidate list holds about ``ef_search x local_share``
    matching rows, and the k-th of them sits ever nearer the end of the list,
    where HNSW's order is least exact.  So the list is widened until it holds
    WIDE_MATCHES matching rows, from DEFAULT_FILTERED_EF_SEARCH up to
    pgvector's bound.  Measured on a tenant of 16,651 rows in a 100,000-row
    table (share 0.17) through the table-wide index: recall@10 0.970 / 0.987
    / 0.993 / 0.993 at ef_search 200 / 400 / 600 / 1000, about 34 / 68 / 100
    / 167 of its own rows in the list (benchmarks/bench_tenants_ef.py).
    Correlated filters with half the rows near the query matching or more
    keep the 400 they had (recall 0.997-1.0 there, docs/filtered-search.md).
    """
    if local_share <= 0:
        return HNSW_MAX_EF
    wide = math.ceil(WIDE_MATCHES / local_share)
    return max(DEFAULT_FILTERED_EF_SEARCH, min(HNSW_MAX_EF, wide))


def candidates(opts: SearchOptions) -> int:
    """Rows a quantized or re-ranked scan fetches before re-ranking on the full vectors."""
    factor = opts.rerank or (DEFAULT_RERANK if opts.precision == "binary" else 4)
    return (opts.k + opts.offset) * factor
