"""Exact ranking or iterative index scan: which is cheaper *for this query*, and is it safe?

Why not a row count: real filters follow meaning (a category, a tenant, a time
range of a drifting topic), so the rows a filter keeps are not spread evenly
through the HNSW graph.  Near a query about the filtered topic most
neighbours match and an iterative scan finds ``k`` of them at once; far from
it none do, the scan walks thousands of tuples and, bounded, stops with rows
that are not the nearest (measured: recall 0.4-0.9 where the k-th matching
row ranked beyond ~1,000 in the unfiltered order, whatever the budget).

The estimate, without a round trip: the collection's cached sample
(:mod:`.selectivity`) holds its sampled rows' embeddings, so the query's
distance to each sampled row is one small matrix product.  Among the
sampled rows nearest the query, the share that match the filter is the
*local* share the scan will meet; the scan returns about ``k / local share``
tuples before ``k`` match (:attr:`LocalEstimate.tuples`).  Costs:

* exact: ``matching rows x exact_row_ms`` (fetch, distance, top-k sort);
* iterative: ``iterative_base_ms + tuples x iterative_tuple_ms``, and only
  when ``tuples <= SAFE_RANK``, where the scan kept recall.

The constants are measured on the server at hand once per engine, table and
metric (:func:`measure_costs`: 23 ``EXPLAIN ANALYZE`` runs, about
0.1-0.5 s in all, in a savepoint that is rolled back) and cached; without them the
measured defaults of :data:`DEFAULT_COSTS` stand in.

The sampled matching rows nearest the query are also *witnesses*: each is a
row that matches the filter at a known distance, so an ANN result whose
farthest row is farther than a witness it does not contain provably missed
rows, and is re-ranked exactly (:func:`missed`).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from vectorstore._metrics import Metric

from .options import DEFAULT_FILTERED_EF_SEARCH
from .selectivity import MetadataSample

__all__ = [
    "DEFAULT_COSTS",
    "LOCAL_ROWS",
    "SAFE_RANK",
    "CostModel",
    "LocalEstimate",
    "cached_costs",
    "local_estimate",
    "measure_costs",
    "missed",
]

#: The rank (in the unfiltered distance order) of the k-th matching row up to
#: which an iterative scan kept recall@10 >= 0.98 on correlated filters
#: (benchmarks/bench_filtered_correlated.py: ranks up to ~1,000 gave 1.0;
#: 2,000-5,000 gave 0.4-1.0 at ef_search 400 and at 1,000 alike).
SAFE_RANK = 1_000
#: Sampled rows nearest the query that the local share is read from (at
#: least; more when the sample is dense enough to cover SAFE_RANK rows).
LOCAL_ROWS = 20
#: Witnesses kept per plan: the sampled matching rows nearest the query.
WITNESSES = 8
#: Query vectors (sampled rows) the iterative scan's constants are measured
#: from; the median counts.
QUERIES = 5
#: A row read and filtered, not ranked, against one fetched and ranked
#: (``exact_row_ms``): a range no index served, ranked exactly, read 100,000
#: rows in 95-117 ms (benchmarks/bench_filtered_timerange.py) on a server
#: that measured exact_row_ms 0.0018-0.0025 ms.
SCAN_SHARE = 0.5
#: The share of an iterative scan's start that does not grow with ef_search
#: (see :meth:`CostModel.iterative_ms`).
EF_FIXED = 0.25


@dataclass(frozen=True)
class CostModel:
    """Milliseconds per unit of work on one server (see the module docstring).

    Attributes:
        exact_row_ms: per row the filter keeps, ranked exactly.
        iterative_base_ms: an iterative scan that finds k matches at once,
            at ``hnsw.ef_search`` = ``ef_search``.
        iterative_tuple_ms: per further tuple the scan returns.
        measured: True when measured on this server, False for the defaults.
        ef_search: the ``hnsw.ef_search`` the start was measured at.
    """

    exact_row_ms: float
    iterative_base_ms: float
    iterative_tuple_ms: float
    measured: bool = False
    ef_search: int = DEFAULT_FILTERED_EF_SEARCH

    def exact_ms(self, rows: float) -> float:
        return rows * self.exact_row_ms

    def scan_ms(self, rows: float) -> float:
        """Reading and filtering ``rows`` that no index narrows (see :data:`SCAN_SHARE`)."""
        return rows * self.exact_row_ms * SCAN_SHARE

    def iterative_ms(self, tuples: float, ef_search: int | None = None) -> float:
        """An iterative scan returning ``tuples``, its candidate list ``ef_search`` wide.

        The start grows with the candidate list: on a 178,155-row graph an
        index scan took 12.1 / 20.6 / 31.7 / 40.2 ms at ef_search 200 / 400 /
        700 / 1000 (benchmarks/results/tenants_ef_1000000_tables.md), so a
        quarter of the measured start is taken as fixed and the rest as
        proportional to ef_search (1000 against 400: 2.1x, measured 1.95x).
        """
        base = self.iterative_base_ms
        if ef_search is not None and ef_search != self.ef_search:
            base *= EF_FIXED + (1 - EF_FIXED) * ef_search / self.ef_search
        return base + tuples * self.iterative_tuple_ms


#: Measured on the embedded PostgreSQL 18 / pgvector of the benchmarks (two
#: shared cores, 384-d vectors stored out of line): used until a server's own
#: constants are measured, and for collections too small to measure on.
DEFAULT_COSTS = CostModel(exact_row_ms=0.006, iterative_base_ms=4.0, iterative_tuple_ms=0.03)


@dataclass(frozen=True)
class LocalEstimate:
    """What the sample says about the filter near one query vector.

    Attributes:
        share: matching share among the ``looked`` sampled rows nearest the query.
        looked: sampled rows it was read from.
        tuples: tuples an iterative scan returns before k + offset match.
        witnesses: (id, distance) of the sampled matching rows nearest the query.
    """

    share: float
    looked: int
    tuples: float
    witnesses: tuple[tuple[int, float], ...]


def _distances(sample: MetadataSample, q: Any, metric: Metric) -> Any:
    """The query's distance to every sampled row, as pgvector computes it (float32).

    einsum, not BLAS: on a loaded two-core machine a 2,000 x 384 matrix-vector
    product through BLAS measured 1.3 ms against 0.2 ms, threads contending.
    """
    vectors = sample.vectors
    v = np.asarray(q, dtype=np.float32)
    if metric == "cosine":
        unit = sample.unit_vectors()
        return 1.0 - np.einsum("ij,j->i", unit, v) / max(float(np.linalg.norm(v)), 1e-30)
    if metric == "inner_product":
        return -np.einsum("ij,j->i", vectors, v)
    if metric == "l1":
        return np.abs(vectors - v).sum(axis=1)
    squared = sample.squared_norms() - 2.0 * np.einsum("ij,j->i", vectors, v) + float(v @ v)
    return np.sqrt(np.maximum(squared, 0.0))


def local_estimate(
    sample: MetadataSample, mask: Any, vector: Any, metric: Metric, wanted: int, share: float
) -> LocalEstimate | None:
    """The local share of ``mask``'s rows near ``vector`` (None: no sampled embeddings).

    ``share``: the collection's share of the table (the HNSW graph holds every
    collection's rows, so the scan meets the others' too).
    """
    vectors = sample.vectors
    if vectors is None or len(sample.ids) != len(mask) or not len(mask):
        return None
    d = _distances(sample, vector, metric)
    n = len(mask)
    # The sampled rows that stand for the first SAFE_RANK rows of the table,
    # and at least LOCAL_ROWS of them.
    looked = min(n, max(LOCAL_ROWS, math.ceil(SAFE_RANK * n / max(sample.rows, 1))))
    nearest = np.argpartition(d, looked - 1)[:looked] if looked < n else np.arange(n)
    hits = int(mask[nearest].sum())
    local = hits / looked * share
    tuples = wanted / local if local > 0 else math.inf
    matching = np.flatnonzero(mask)
    if len(matching) > WITNESSES:
        matching = matching[np.argpartition(d[matching], WITNESSES - 1)[:WITNESSES]]
    witnesses = tuple(sorted(((sample.ids[i], float(d[i])) for i in matching),
                             key=lambda w: w[1]))  # fmt: skip
    return LocalEstimate(share=local, looked=looked, tuples=tuples, witnesses=witnesses)


def missed(
    witnesses: tuple[tuple[int, float], ...], returned: list[tuple[Any, float]]
) -> tuple[int, float] | None:
    """A witness nearer than the farthest returned row yet not returned (None: none).

    ``returned``: (id, distance) of the rows an ANN scan returned.  Such a
    witness matches the filter, so the result is provably not the nearest.
    """
    if not witnesses or not returned:
        return None
    far = max(d for _, d in returned)
    ids = {i for i, _ in returned}
    for wid, wd in witnesses:
        # float32 in the sample, float8 on the server: a margin for rounding.
        if wd < far - 1e-5 * max(1.0, abs(far)) and wid not in ids:
            return wid, wd
    return None


# -- measuring the constants ---------------------------------------------------------
_COSTS: weakref.WeakKeyDictionary[Engine, dict[tuple[str, str], CostModel]] = (
    weakref.WeakKeyDictionary()
)
#: Collections smaller than this are not measured on (the defaults stand in).
MEASURE_MIN_ROWS = 1_000
_OPERATOR = {"cosine": "<=>", "l2": "<->", "inner_product": "<#>", "l1": "<+>"}


def cached_costs(engine: Engine, table: str, metric: Metric) -> CostModel | None:
    """The constants measured for ``table`` and ``metric`` on ``engine`` (None: not yet)."""
    found = _COSTS.get(engine)
    return None if found is None else found.get((table, metric))


def _execution_ms(conn: Connection, sql: str, params: dict[str, Any]) -> float:
    plan = conn.execute(text("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql), params)
    return float(plan.scalar_one()[0]["Execution Time"])


def _literal(vector: Any) -> str:
    return "[" + ",".join(f"{x:.9g}" for x in vector.tolist()) + "]"


def measure_costs(
    conn: Connection,
    table: str,
    collection_id: int,
    sample: MetadataSample,
    metric: Metric,
    ef_search: int,
) -> CostModel:
    """Measure (once per engine, table and metric) and cache the cost constants.

    ``EXPLAIN (ANALYZE, TIMING OFF)`` queries inside a savepoint rolled back
    at the end, so the caller's transaction and settings are untouched:

    * an exact ranking of the sampled rows (``id = ANY(ids)``: rows spread
      over the table, as a filter's are), three times, the fastest counting
      (the first warms the caches);
    * iterative scans whose filter keeps every 2nd and every m-th row
      (``id % m = 0``, spread evenly through the graph): about ``10 x 2`` and
      ``10 x m`` tuples returned; the slope is the per-tuple constant.  Both
      from ``2 x`` :data:`QUERIES` different sampled rows' vectors: the first
      half warms the caches, the second half's medians count (a real query
      walks a part of the graph of its own: one vector's warm re-runs
      measured half a real scan's start, a cold server's first scans 4x it).

    A collection under :data:`MEASURE_MIN_ROWS` rows, or any error, gives
    :data:`DEFAULT_COSTS` (cached too: the choice matters little there).
    """
    found = _COSTS.get(conn.engine)
    if found is None:
        found = _COSTS.setdefault(conn.engine, {})
    key = (table, metric)
    if key in found:
        return found[key]
    costs = DEFAULT_COSTS
    if sample.rows >= MEASURE_MIN_ROWS and sample.vectors is not None and len(sample.ids) >= 100:
        costs = _measure(conn, table, collection_id, sample, metric, ef_search) or DEFAULT_COSTS
    found[key] = costs
    return costs


def _measure(
    conn: Connection,
    table: str,
    collection_id: int,
    sample: MetadataSample,
    metric: Metric,
    ef_search: int,
) -> CostModel | None:
    op = _OPERATOR[metric]
    n = len(sample.ids)
    # Scans from QUERIES different sampled rows: a real query walks its own
    # part of the graph, so one vector's warm re-runs measured the scan's
    # start at 7.5 ms where real scans took 11-19 ms (and chose it wrongly).
    # The first half warms the graph's entry and the caches (a restarted
    # server measured 55 ms cold); the second half's median counts.
    count = 2 * QUERIES
    vectors = [_literal(sample.vectors[(2 * i + 1) * n // (2 * count)]) for i in range(count)]
    q = vectors[QUERIES]
    ids = list(sample.ids)
    m = max(4, min(64, sample.rows // 60))
    exact = (f"SELECT id FROM (SELECT id, embedding {op} CAST(:q AS vector) AS d FROM {table} "
             "WHERE id = ANY(:ids) OFFSET 0) s ORDER BY d LIMIT 10")  # fmt: skip
    scan = (f"SELECT id FROM {table} WHERE collection_id = :c AND id % :m = 0 "
            f"ORDER BY embedding {op} CAST(:q AS vector) LIMIT 10")  # fmt: skip
    try:
        conn.exec_driver_sql("SAVEPOINT vectorstore_costs")
    except DBAPIError:  # no transaction block (an autocommit engine): the defaults
        return None
    try:
        conn.exec_driver_sql(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            f"set_config('hnsw.ef_search', '{int(ef_search)}', true), "
            "set_config('hnsw.max_scan_tuples', '1000000', true), "
            "set_config('ivfflat.iterative_scan', 'relaxed_order', true), "
            "set_config('ivfflat.probes', '10', true), "
            "set_config('enable_sort', 'off', true), set_config('enable_seqscan', 'off', true)"
        )
        exact_ms = min(_execution_ms(conn, exact, {"q": q, "ids": ids}) for _ in range(3))
        near, far = [], []
        for i, v in enumerate(vectors[1::2] + vectors[0::2]):  # interleaved halves
            pair = [_execution_ms(conn, scan, {"q": v, "c": collection_id, "m": every})
                    for every in (2, m)]  # fmt: skip
            if i >= QUERIES:
                near.append(pair[0])
                far.append(pair[1] - pair[0])
    except DBAPIError:  # a server refusing (permissions, timeouts): the defaults
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT vectorstore_costs")
        conn.exec_driver_sql("RELEASE SAVEPOINT vectorstore_costs")
        return None
    conn.exec_driver_sql("ROLLBACK TO SAVEPOINT vectorstore_costs")
    conn.exec_driver_sql("RELEASE SAVEPOINT vectorstore_costs")
    # The slope from each vector's own pair (paired, the noise between
    # vectors cancels); a slope lost in noise keeps the default.
    slope = float(np.median(far)) / (10 * (m - 2))
    per_tuple = slope if slope > 0 else DEFAULT_COSTS.iterative_tuple_ms
    return CostModel(
        exact_row_ms=max(exact_ms / len(ids), 1e-5),
        iterative_base_ms=max(float(np.median(near)) - 20 * per_tuple, 0.05),
        iterative_tuple_ms=per_tuple,
        measured=True,
        ef_search=int(ef_search),
    )
