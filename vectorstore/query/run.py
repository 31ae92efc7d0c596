"""nearest: plan, execute with the one fallback, threshold, sort, and say what was decided.

The query path is: a validated float32 vector (the repository embedded a text
query already) -> :func:`~.plan.plan_search` -> one SQL statement under
``set_config(..., true)`` settings -> typed results.  Three executors run the
same plan:

* **raw** (:mod:`.raw`): when the repository owns its reads and the plan comes
  from caches, the pre-compiled statement runs on a pooled DB-API cursor in
  autocommit mode: settings and query in one implicit transaction and one
  round trip (one message on psycopg2, one pipeline on psycopg 3), no BEGIN,
  no COMMIT.  Engines with cursor or error hooks (tracing, logging), ``echo``
  or execution options keep SQLAlchemy's path, so those hooks see every
  statement.
* **owned**: otherwise, for owned reads, Core rows on a pooled connection in a
  short transaction; documents are built from the rows as detached
  instances, as the session path would leave them.
* **session**: inside the host app's Session (and for joins), the ORM.  The
  query runs inside a SAVEPOINT whose settings are rolled back after the
  fetch, which restores the caller's values.

Guarantee: if at least ``k`` rows match, ``k`` rows come back: an ANN scan that
returns fewer is re-run exactly (:func:`~.plan.with_fallback`), and so is one
whose rows provably are not the nearest (a sampled matching row nearer than
its farthest row is missing, see :mod:`.cost`); the result set records the
fallback and why.

A distance threshold (``max_distance`` / ``min_score``) is applied to the ``k``
fetched rows, never pushed into the index scan: a threshold nothing meets would
otherwise walk the whole index.  So a threshold returns the rows of the ``k``
nearest that meet it (``ResultSet.threshold_bounded`` says so).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from vectorstore._metrics import score_of
from vectorstore._target import Target
from vectorstore.results import ResultSet, SearchResult

from . import raw
from .mmr import mmr_select
from .options import SearchOptions, Strategy
from .plan import SearchPlan, plan_search, with_fallback
from .settings import settings_scope, settings_sql
from .statement import VECTOR_PARAM, loaded_columns, statement_for

__all__ = ["run"]


def run(target: Target[Any], vector: Any, opts: SearchOptions) -> ResultSet[Any]:
    """One nearest call for a validated query ``vector``: plan, execute, wrap."""
    started = time.perf_counter()
    sessions = target.sessions
    engine = sessions.read_engine
    if engine is not None and opts.join is None and sessions.tenant is None:
        rows, plan, fallback = _run_owned(target, engine, vector, opts)
    else:
        with sessions.read("nearest") as session:
            found = plan_search(target, vector, opts, conn=session.connection())
            assert found is not None  # with a connection, a plan is always made
            rows, plan, fallback = with_fallback(
                found,
                lambda step: _fetch(session, target, step, sessions.owns_reads),
                lambda row: (row[0].id, float(row[1])),
            )
    hits = [
        SearchResult(row[0], float(row[1]), score_of(opts.metric, float(row[1])),
                     row[2] if opts.join is not None else None)
        for row in rows
    ]  # fmt: skip
    # relaxed_order scans may return rows slightly out of order: sort once here.
    hits.sort(key=lambda h: h.distance)
    if opts.mmr is not None:
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
        estimates=dict(plan.estimates),
        threshold_bounded=bounded, elapsed_s=time.perf_counter() - started,
    )  # fmt: skip


def _fetch(session: Session, target: Target[Any], plan: SearchPlan, owned: bool) -> list[Any]:
    stmt = statement_for(target, plan.options, plan.strategy, False)
    with settings_scope(session, plan.settings, owned=owned):
        return list(session.execute(stmt, {VECTOR_PARAM: plan.vector}).all())


def _run_owned(
    target: Target[Any], engine: Engine, vector: Any, opts: SearchOptions
) -> tuple[list[Any], SearchPlan, Strategy | None]:
    """A read we own: the raw path when the plan comes from caches, else Core rows.

    The session machinery and the identity map cost more than the query on a
    warm index, and these results are detached anyway; so the documents are
    built straight from the rows as detached instances.
    """
    model = target.model
    keys = loaded_columns(model, opts.with_embedding or opts.mmr is not None)[0]
    ident, far = _id_position(model, keys), len(keys)

    def key(row: Any) -> tuple[Any, float]:
        return row[ident], float(row[far])

    with target.sessions.errors("nearest"):
        if raw.eligible(engine):
            cached = plan_search(target, vector, opts, conn=None, engine=engine)
            done = None if cached is None else raw.run_raw(target, engine, cached)
            if done is not None:
                rerun = done[1].rerun_for(done[0], key)
                if rerun is not None:  # a witness was missed: rank exactly
                    again = raw.run_raw(target, engine, rerun)
                    done = None if again is None else (again[0], again[1], done[1].strategy)
            if done is not None:
                return raw.documents(model, keys, done[0]), done[1], done[2]
        with engine.begin() as conn:
            plan = plan_search(target, vector, opts, conn=conn)
            assert plan is not None
            if plan.settings:
                conn.exec_driver_sql(settings_sql(plan.settings))

            def execute(step: SearchPlan) -> list[Any]:
                stmt = statement_for(target, step.options, step.strategy, True)
                return list(conn.execute(stmt, {VECTOR_PARAM: step.vector}).all())

            rows, plan, fallback = with_fallback(plan, execute, key)
    return raw.documents(model, keys, rows), plan, fallback


_ID_POSITION: dict[tuple[Any, tuple[str, ...]], int] = {}


def _id_position(model: Any, keys: tuple[str, ...]) -> int:
    """Where the primary key is among the loaded columns (cached per model)."""
    found = _ID_POSITION.get((model, keys))
    if found is None:
        mapper = model.__mapper__
        found = keys.index(mapper.get_property_by_column(mapper.primary_key[0]).key)
        _ID_POSITION[(model, keys)] = found
    return found
