"""One place decides how a nearest call runs: :func:`plan_search`, and its one fallback.

Planning (``strategy="auto"``) chooses per query between three strategies,
because none wins everywhere (pgvector's over-filtering problem):

* ``"index"``: a plain ANN index scan (no filter beyond the collection, and the
  collection is most of the table).  ``hnsw.ef_search`` is raised to at least
  ``k + offset`` because an HNSW scan never returns more than ef_search rows.
* ``"exact"``: an exact ranking of the rows the filter selects (at most
  ``exact_threshold``, default ``DEFAULT_EXACT_THRESHOLD``).  Wins when the
  filter keeps few rows.
* ``"iterative"``: an ANN scan that keeps going until ``k`` rows pass the
  filter (pgvector 0.8+ ``hnsw.iterative_scan`` / ``ivfflat.iterative_scan``
  in ``relaxed_order``, bounded by ``max_scan_tuples``; rows are re-sorted by
  distance after the fetch).  On older pgvector, a widened ``ef_search``
  scan stands in.

The choice between exact and iterative is by estimated cost (:mod:`.cost`),
without a round trip: the collection's cached sample (:mod:`.selectivity`:
PostgreSQL keeps no statistics inside ``jsonb``, so its estimates there are
fixed guesses) gives the filter's size, and, with the sampled rows'
embeddings, the share of matching rows *near the query*, which is what an
iterative scan meets when the filter follows meaning.  Exact costs the
matching rows times a per-row constant; the iterative scan its start plus the
tuples it returns before ``k`` match times a per-tuple constant, and it is
only chosen where it keeps recall (the k-th match within
:data:`~.cost.SAFE_RANK` rows of the query).  The constants are measured on
the server once per engine.  An explicit ``exact_threshold`` keeps the plain
row-count rule (exact up to that many rows).  For shapes the sample cannot
judge (the ``text`` column, ``$like``, ``$contains``, SQLAlchemy expressions,
joins) the planner's estimate is used, and an estimate below twice
:data:`~.options.DEFAULT_EXACT_THRESHOLD` is checked by a bounded count.

A wrong choice costs time, never correctness: :func:`with_fallback` re-runs
exactly an ANN scan that came back with fewer than ``k`` rows, or one whose
rows are provably not the nearest (a sampled matching row, a *witness*, lies
nearer than its farthest row and is missing).

:func:`plan_search` has two modes with one decision: given a connection it
reads whatever it needs (catalog, statistics, sample, counts); without one
(``conn=None``, the raw fast path) it decides from caches alone and returns
None as soon as an input is not cached, so the caller takes the path that
can read them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from sqlalchemy import Engine, func, literal, select
from sqlalchemy.engine import Connection

from vectorstore._target import Target
from vectorstore.metadata_keys import indexed_keys
from vectorstore.metadata_table import metadata_table
from vectorstore.schema.catalog import Catalog, cached_catalog, read_catalog

from .advice import warn_full_read
from .cost import SAFE_RANK, cached_costs, local_estimate, measure_costs, missed
from .filters import index_served
from .options import (
    DEFAULT_EXACT_THRESHOLD,
    DEFAULT_FILTERED_EF_SEARCH,
    ITERATIVE_FETCH,
    SearchOptions,
    Strategy,
    iterative_ef,
    overfetch_for,
)
from .selectivity import MetadataSample, cached_sample, metadata_sample
from .settings import search_settings
from .statement import Explain, where_clause

__all__ = ["SearchPlan", "exact_threshold", "plan_search", "with_fallback"]

Row = TypeVar("Row")


@dataclass(frozen=True)
class SearchPlan:
    """How one nearest call runs, and why.

    Attributes:
        strategy: ``"index"``, ``"iterative"`` or ``"exact"``.
        settings: the planner / pgvector settings applied for the query only.
        reason: a short explanation of the choice.
        estimated_rows: the estimate of the rows the filter keeps (from the
            collection's metadata sample, else from the planner).
        counted_rows: the bounded count, when one was taken (capped at threshold + 1).
        options: the call's validated options.
        vector: the query vector.
        estimates: what the cost model estimated (``local_share``,
            ``iterative_tuples``, ``exact_ms``, ``iterative_ms``), when it ran.
        witnesses: (id, distance) of sampled matching rows nearest the query;
            an ANN result missing one nearer than its farthest row is re-run exactly.
    """

    strategy: Strategy
    settings: dict[str, str]
    reason: str
    options: SearchOptions
    vector: Any = None
    estimated_rows: int | None = None
    counted_rows: int | None = None
    estimates: dict[str, float] = field(default_factory=dict)
    witnesses: tuple[tuple[int, float], ...] = ()

    def as_exact(self, returned: int) -> SearchPlan:
        """The exact re-run of an ANN plan that returned ``returned`` rows, too few."""
        wanted = self.options.k + self.options.offset
        return replace(
            self, strategy="exact", settings={},
            reason=f"{self.strategy} returned {returned} < {wanted} rows",
        )  # fmt: skip

    def rerun_for(
        self, rows: Sequence[Any], key: Callable[[Any], tuple[Any, float]] | None
    ) -> SearchPlan | None:
        """The exact plan to run instead when ``rows`` fall short or miss a witness; else None."""
        wanted = self.options.k + self.options.offset
        if self.strategy == "exact":
            return None
        if len(rows) < wanted:
            return self.as_exact(len(rows))
        if key is None or not self.witnesses:
            return None
        returned = [key(row) for row in rows]
        witness = missed(self.witnesses, returned)
        if witness is None:
            return None
        return self.as_exact_missed(witness, max(d for _, d in returned))

    def as_exact_missed(self, witness: tuple[int, float], farthest: float) -> SearchPlan:
        """The exact re-run of an ANN plan whose rows provably were not the nearest."""
        return replace(
            self, strategy="exact", settings={},
            reason=(f"{self.strategy} missed sampled matching row {witness[0]} at distance "
                    f"{witness[1]:.4g} < its farthest row {farthest:.4g}"),
        )  # fmt: skip


def exact_threshold(opts: SearchOptions) -> int:
    """Filters keeping at most this many rows are ranked exactly (see the constant)."""
    chosen = DEFAULT_EXACT_THRESHOLD if opts.exact_threshold is None else opts.exact_threshold
    return max(chosen, opts.k + opts.offset)


def plan_search(
    target: Target[Any],
    vector: Any,
    opts: SearchOptions,
    *,
    conn: Connection | None,
    engine: Engine | None = None,
) -> SearchPlan | None:
    """Choose the strategy and settings of one call (see the module docstring).

    Args:
        conn: a connection to read what is not cached; None decides from caches
            alone (then ``engine`` names the caches) and returns None when that
            is not enough.
    """
    if conn is not None:
        engine = conn.engine
        catalog = read_catalog(conn, target.table)
    else:
        assert engine is not None
        found = cached_catalog(engine, target.table)
        if found is None:
            return None
        catalog = found
    cid = target.collection_id
    estimated = counted = None
    estimates: dict[str, float] = {}
    witnesses: tuple[tuple[int, float], ...] = ()
    strategy: Strategy = opts.strategy
    reason = "requested"
    if strategy == "iterative":  # asked for: no estimate says where the filtered rows lie
        opts = replace(opts, overfetch=ITERATIVE_FETCH)
    if strategy == "auto":
        share = None
        if not catalog.has_index(opts.metric, opts.precision, cid):
            strategy, reason = "exact", f"no {opts.precision} ANN index for metric {opts.metric}"
        elif opts.filter is None and opts.join is None:
            share = catalog.share(conn, cid) if conn is not None else catalog.cached_share(cid)
            if share is None:
                return None
            if share >= 0.9:
                strategy, reason = "index", "no filter; the collection is the table"
        if strategy == "auto":
            threshold = exact_threshold(opts)
            served = _served(target, catalog, opts)
            sample = (metadata_sample(conn, catalog.table, cid) if conn is not None
                      else cached_sample(engine, catalog.table, cid))  # fmt: skip
            if sample is not None and opts.join is None:
                estimated = sample.estimate(opts.filter)
            # The cost model knows the full-precision index; quantized scans
            # (halfvec, binary re-ranking) keep the row-count rule.
            by_cost = opts.exact_threshold is None and opts.precision == "vector"
            if sample is not None and estimated is not None and by_cost:
                if share is None:
                    share = (catalog.share(conn, cid) if conn is not None
                             else catalog.cached_share(cid))  # fmt: skip
                if share is None:
                    return None
                chosen = _by_cost(catalog.table, cid, sample, estimated, vector, opts, share,
                                  served=served, conn=conn, engine=engine)  # fmt: skip
                if chosen is None:
                    return None
                strategy, reason, estimates, witnesses = chosen
                if estimates.get("overfetch", 1) > 1:
                    opts = replace(opts, overfetch=int(estimates["overfetch"]))
                if strategy == "iterative" and "ef_search" in estimates:
                    opts = replace(opts, ef_search=int(estimates["ef_search"]))
            elif sample is not None and estimated is not None:
                strategy = "exact" if estimated <= threshold else "iterative"
                sign = "<=" if strategy == "exact" else ">"
                reason = (f"sampled estimate {estimated} of {sample.rows} rows {sign} "
                          f"exact_threshold {threshold}")  # fmt: skip
            elif conn is None:
                return None
            else:
                strategy, estimated, counted, reason = _plan_by_count(target, conn, opts, threshold)
            if strategy == "exact" and not served and sample is not None:
                declared, btree = indexed_keys(target.model), catalog.btree
                warn_full_read(catalog.table, cid, sample.rows, opts.filter, declared,
                               declared & btree.metadata_keys, btree.columns)  # fmt: skip
    settings = search_settings(opts, strategy, catalog.iterative_supported)
    if strategy == "index" and any(
        ix.partition and ix.collection_id == cid
        for ix in catalog.usable(opts.metric, opts.precision, cid)
    ):
        # A tenant's own partition: PostgreSQL prices its HNSW scan above a sort
        # of a few thousand rows (measured on 7,544 rows: the sort 153 ms, the
        # scan 3x faster); the strategy is decided, so the plan is pinned to it.
        settings["enable_sort"] = "off"
    return SearchPlan(
        strategy=strategy, settings=settings,
        reason=reason, options=opts, vector=vector, estimated_rows=estimated,
        counted_rows=counted, estimates=estimates, witnesses=witnesses,
    )  # fmt: skip


def _served(target: Target[Any], catalog: Catalog, opts: SearchOptions) -> bool:
    """Whether an index narrows the rows of the call's filter (else an exact ranking reads all).

    The indexed metadata keys count where their btree exists, and the columns
    a btree leads with, both from the catalog (see :func:`~.filters.index_served`).
    The shadow-table layout filters through its own table: counted as served.
    """
    if opts.filter is None or metadata_table(target.model) is not None:
        return True
    keyed = indexed_keys(target.model) & catalog.btree.metadata_keys
    return index_served(opts.filter, keyed, catalog.btree.columns)


def _by_cost(
    table: str,
    cid: int,
    sample: MetadataSample,
    estimated: int,
    vector: Any,
    opts: SearchOptions,
    share: float,
    *,
    served: bool,
    conn: Connection | None,
    engine: Engine | None,
) -> tuple[Strategy, str, dict[str, float], tuple[tuple[int, float], ...]] | None:
    """Exact or iterative by estimated cost (see :mod:`.cost`); None: costs not cached.

    ``served``: an index narrows the filter's rows; else the exact ranking
    reads every row of the collection (:func:`~.filters.index_served`).
    """
    if conn is not None:
        measured_at = opts.ef_search or DEFAULT_FILTERED_EF_SEARCH
        costs = measure_costs(conn, table, cid, sample, opts.metric, measured_at)
    else:
        assert engine is not None
        found = cached_costs(engine, table, opts.metric)
        if found is None:
            return None
        costs = found
    wanted = opts.k + opts.offset
    exact_ms = costs.exact_ms(estimated)
    head = f"sampled estimate {estimated} of {sample.rows} rows"
    if not served:
        exact_ms += costs.scan_ms(sample.rows)
        head += f" (no index serves the filter: the exact ranking reads all {sample.rows})"
    estimates = {"exact_ms": round(exact_ms, 3)}
    if estimated <= wanted:
        return "exact", f"{head}: at most k + offset = {wanted} match", estimates, ()
    if exact_ms <= costs.iterative_base_ms:
        return "exact", (f"{head}: exact ~{exact_ms:.2f} ms <= an iterative scan's start "
                         f"~{costs.iterative_base_ms:.2f} ms"), estimates, ()  # fmt: skip
    mask = sample.matches(opts.filter)
    local = None if mask is None else local_estimate(sample, mask, vector, opts.metric,
                                                     wanted, share)  # fmt: skip
    if local is None:  # no sampled embeddings: the collection-wide share stands in
        tuples = wanted * sample.rows / max(estimated, 1) / share
        witnesses: tuple[tuple[int, float], ...] = ()
        where = f"share {estimated / max(sample.rows, 1):.3g}"
    else:
        tuples, witnesses = local.tuples, local.witnesses
        where = f"local share {local.share:.3g} in the {local.looked} sampled rows nearest"
        estimates["local_share"] = round(local.share, 4)
    # Away from the filtered rows the scan goes on until ITERATIVE_FETCH x k
    # rows match (see overfetch_for): its cost counts them.
    overall = estimated / max(sample.rows, 1) * share
    factor = 1 if local is None else overfetch_for(local.share, overall)
    if factor > 1:
        estimates["overfetch"] = factor
    # The candidate list widened until it holds WIDE_MATCHES matching rows (see
    # iterative_ef; a collection's own rows in a shared table's graph count as
    # a filter's); a given ef_search stands.
    ef = opts.ef_search or iterative_ef(wanted / tuples if math.isfinite(tuples) else 0.0)
    estimates["ef_search"] = ef
    iterative_ms = (costs.iterative_ms(tuples * factor, ef) if math.isfinite(tuples)
                    else math.inf)  # fmt: skip
    estimates["iterative_tuples"] = round(tuples, 1) if math.isfinite(tuples) else -1.0
    estimates["iterative_ms"] = round(iterative_ms, 3) if math.isfinite(iterative_ms) else -1.0
    fetch = f" (x{factor} fetched, away from the filtered rows)" if factor > 1 else ""
    width = f" at ef_search {ef}" if ef != DEFAULT_FILTERED_EF_SEARCH else ""
    detail = (f"{head}, {where}: iterative ~{tuples:.0f} tuples{fetch}{width} "
              f"~{iterative_ms:.2f} ms, exact ~{exact_ms:.2f} ms")  # fmt: skip
    if tuples > SAFE_RANK:
        return "exact", f"{detail}; > {SAFE_RANK} tuples would lose recall", estimates, ()
    if iterative_ms < exact_ms:
        return "iterative", detail, estimates, witnesses
    return "exact", detail, estimates, ()


def _plan_by_count(
    target: Target[Any], conn: Connection, opts: SearchOptions, threshold: int
) -> tuple[Strategy, int, int | None, str]:
    """For filters the sample cannot judge: the planner's estimate, then a bounded count."""
    conditions = where_clause(target, opts, "exact")  # counted through any metadata index
    probe = select(literal(1)).select_from(target.model)
    if opts.join is not None:
        probe = probe.join(opts.join, opts.join_on)
    plan = conn.execute(Explain(probe.where(*conditions), analyze=False)).scalar_one()
    estimated = int(plan[0]["Plan"]["Plan Rows"])
    if estimated > 2 * threshold:
        return "iterative", estimated, None, f"planner estimates {estimated} rows > 2 x {threshold}"
    # Planner estimates for JSONB operators are fixed guesses that run low, so a
    # small estimate is checked with a count capped at threshold + 1.
    counted = _bounded_count(conn, conditions, target.model, opts, threshold + 1)
    if counted <= threshold:
        return "exact", estimated, counted, f"filter keeps {counted} rows <= {threshold}"
    return "iterative", estimated, counted, f"filter keeps more than {threshold} rows"


def _bounded_count(
    conn: Connection, conditions: Sequence[Any], model: Any, opts: SearchOptions, cap: int
) -> int:
    inner = select(literal(1)).select_from(model)
    if opts.join is not None:
        inner = inner.join(opts.join, opts.join_on)
    inner = inner.where(*conditions).limit(cap)
    return int(conn.execute(select(func.count()).select_from(inner.subquery())).scalar_one())


def with_fallback(
    plan: SearchPlan,
    execute: Callable[[SearchPlan], list[Row]],
    key: Callable[[Row], tuple[Any, float]] | None = None,
) -> tuple[list[Row], SearchPlan, Strategy | None]:
    """Run ``plan``; if an ANN scan returned too few rows, or missed rows, rank exactly instead.

    The guarantee of nearest: if at least ``k`` rows match, ``k`` rows come
    back.  An ANN scan can stop short (over-filtering, scan bounds); the exact
    ranking cannot.  ``key`` gives a row's (id, distance): then a scan whose
    rows provably are not the nearest (see :meth:`SearchPlan.rerun_for`) is
    re-run exactly too.  Returns the rows, the plan that produced them and
    the strategy that fell short (None when none did).
    """
    rows = execute(plan)
    rerun = plan.rerun_for(rows, key)
    if rerun is None:
        return rows, plan, None
    return execute(rerun), rerun, plan.strategy
