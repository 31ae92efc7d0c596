"""nearest's raw DB-API path: cached plans run on the driver's cursor.

A standalone repository's call whose plan comes from caches runs its
pre-compiled SQL on the DB-API cursor of a pooled connection: SQLAlchemy's
execution machinery (connection, transaction, execution context, result
objects) costs more client time than the query on a warm index.  The SQL,
the bind and result processing are SQLAlchemy's own for the engine's dialect,
so values stay bound parameters and come back as the session path gives them.

:func:`vectorstore.search.run` tries this path first for a standalone (or
read-engine) repository; it returns None whenever the plan needs the database
(first call, stale caches, filters the sample cannot judge, joins) or the
engine has cursor hooks, and the SQLAlchemy path runs instead.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, bindparam
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB

from ._selectivity import cached_sample
from .filters import compile_filter, plain_equalities
from .search import (
    _VECTOR_PARAM,
    SearchOptions,
    SearchPlan,
    _exact_plan,
    _gucs,
    _statement,
    build_statement,
    exact_threshold,
    query_param,
    settings_sql,
)

if TYPE_CHECKING:
    from .repository import DocumentRepository

__all__ = ["cached_plan", "eligible", "run_raw"]


def cached_plan(
    repo: DocumentRepository[Any], engine: Any, vector: Any, opts: SearchOptions
) -> SearchPlan | None:
    """``plan_search``'s decision when every input is cached; None if it needs the database."""
    from . import indexes

    info = indexes._CACHE.get(repo)
    if (
        info is None
        or time.monotonic() - info.read_at > indexes.CATALOG_TTL_S
        or info.collection_id != repo.collection.id
    ):
        return None
    estimated = None
    strategy, reason = opts.strategy, "requested"
    if strategy == "auto":
        if not info.has_index(opts.metric, opts.precision):
            strategy, reason = "exact", f"no {opts.precision} ANN index for metric {opts.metric}"
        elif opts.filter is None and info._share is not None and info._share >= 0.9:
            strategy, reason = "index", "no filter; the collection is the table"
        else:
            if opts.filter is None and info._share is None:
                return None
            table = str(engine.dialect.identifier_preparer.format_table(repo.model.__table__))
            sample = cached_sample(engine, table, info.collection_id)
            estimated = None if sample is None else sample.estimate(opts.filter)
            if sample is None or estimated is None:
                return None
            threshold = exact_threshold(opts)
            strategy = "exact" if estimated <= threshold else "iterative"
            sign = "<=" if strategy == "exact" else ">"
            reason = (f"sampled estimate {estimated} of {sample.rows} rows {sign} "
                      f"threshold {threshold}")  # fmt: skip
    prepared = None
    if opts.filter is None:
        stmt = _statement(repo, opts, strategy, True)
    else:
        prepared = _prepare_filtered(repo, engine.dialect, opts, strategy)
        if prepared is None:
            return None
        stmt = prepared[0].compiled.statement
    return SearchPlan(
        statement=stmt, strategy=strategy, prepared=prepared,
        settings=_gucs(opts, strategy, info.iterative_supported), estimated_rows=estimated,
        reason=reason, vector=vector, options=opts, params={_VECTOR_PARAM: vector},
    )  # fmt: skip


@dataclass
class _Prepared:
    """A compiled statement for one dialect: SQL text, fixed parameters, processors."""

    compiled: Any
    sql: str
    fixed: dict[str, Any]
    binds: dict[str, Any]
    results: list[Any] | None = None


_PREPARED: dict[Any, _Prepared] = {}
_PREPARED_MAX = 1024


def _prepare(
    dialect: Any, stmt: Select[Any], reused: bool
) -> tuple[_Prepared, dict[str, Any]] | None:
    """The statement's compiled form and this call's processed parameters (None: unsupported).

    A statement reused across calls (unfiltered) is found by identity; a
    filtered one is built per call and found by SQLAlchemy's cache key, whose
    extracted parameters carry this call's filter values.
    """
    entry = _PREPARED.get((id(stmt), dialect))
    extracted = None
    if entry is None or entry.compiled.statement is not stmt:
        key = stmt._generate_cache_key()
        if key is None:
            return None
        extracted = key.bindparams
        entry = _PREPARED.get((key.key, dialect))
        if entry is None:
            compiled = stmt.compile(dialect=dialect, cache_key=key)
            if compiled.post_compile_params or compiled.literal_execute_params:
                return None  # expanding IN lists and the like: SQLAlchemy's path
            binds: dict[str, Any] = dict(compiled._bind_processors)
            fixed = {
                name: (binds[name](value) if name in binds else value)
                for name, value in compiled.construct_params({_VECTOR_PARAM: None}).items()
                if name != _VECTOR_PARAM
            }
            entry = _Prepared(compiled, compiled.string, fixed, binds)
            if len(_PREPARED) >= _PREPARED_MAX:
                _PREPARED.clear()
            _PREPARED[(key.key, dialect)] = entry
            if reused:
                _PREPARED[(id(stmt), dialect)] = entry
    if extracted is None or entry.compiled.statement is stmt:
        params = dict(entry.fixed)
    else:
        params = _processed_params(entry, extracted)
    return entry, params


def opts_reused(opts: SearchOptions) -> bool:
    """Whether ``_statement`` reuses one statement object for these options."""
    return opts.filter is None and opts.join is None


_FILTERED: dict[Any, tuple[_Prepared, list[tuple[int, int]], list[Any]]] = {}


def _prepare_filtered(
    repo: DocumentRepository[Any], dialect: Any, opts: SearchOptions, strategy: str
) -> tuple[_Prepared, dict[str, Any]] | None:
    """A filtered statement's compiled form and parameters, without building it per call.

    A plain dictionary filter seen before (same values, same JSON types) reuses
    its processed parameters.  Otherwise only the filter is compiled: its
    SQLAlchemy cache key (structure without values) finds the statement
    compiled for the first filter of that shape, and the filter's bound values
    take the places of that first filter's values among its parameters.
    """
    doc = plain_equalities(opts.filter)
    if doc is not None:
        return _prepare_equalities(repo, dialect, opts, strategy, doc)
    plain = _plain(opts.filter)
    memo_key = None
    if plain is not None:
        memo_key = (repo.model, repo.collection.id, strategy, opts.metric, opts.precision,
                    opts.k + opts.offset, opts.with_embedding, opts.mmr is not None,
                    opts.fetch_k, opts.rerank, dialect, plain)  # fmt: skip
        memo = _MEMO.get(memo_key)
        if memo is not None:
            return memo[0], dict(memo[1])
    found = _prepare_shape(repo, dialect, opts, strategy)
    if found is not None and memo_key is not None:
        if len(_MEMO) >= _PREPARED_MAX:
            _MEMO.clear()
        _MEMO[memo_key] = (found[0], dict(found[1]))
    return found


_FILTER_DOC = "vs_filter_doc"
_EQUALITIES: dict[Any, tuple[_Prepared, dict[str, Any]]] = {}


def _prepare_equalities(
    repo: DocumentRepository[Any],
    dialect: Any,
    opts: SearchOptions,
    strategy: str,
    doc: dict[str, Any],
) -> tuple[_Prepared, dict[str, Any]] | None:
    """The commonest filter, top-level metadata equalities: one statement for all of them.

    They compile to ``metadata @> :doc`` whatever the keys and values (see
    :func:`~vectorstore.filters.plain_equalities`), so the statement is
    compiled once and each call only serialises its document.
    """
    key = (repo.model, repo.collection.id, strategy, opts.metric, opts.precision,
           opts.k + opts.offset, opts.with_embedding, opts.mmr is not None, opts.fetch_k,
           opts.rerank, dialect)  # fmt: skip
    found = _EQUALITIES.get(key)
    if found is None:
        model = repo.model
        condition = model.metadata_.contains(bindparam(_FILTER_DOC, doc, type_=JSONB))
        param = query_param(None, repo.dimension, _VECTOR_PARAM)
        conditions = [model.collection_id == repo.collection.id, condition]
        stmt = build_statement(repo, param, opts, strategy, columns=True, conditions=conditions)
        prepared = _prepare(dialect, stmt, False)
        if prepared is None or _FILTER_DOC not in prepared[1]:
            return None
        if len(_EQUALITIES) >= _PREPARED_MAX:
            _EQUALITIES.clear()
        # This statement's own parameters: the compiled form may be shared (by
        # SQLAlchemy's cache key) with a statement of another LIMIT.
        found = _EQUALITIES[key] = prepared
    entry, params = found[0], dict(found[1])
    process = entry.binds.get(_FILTER_DOC)
    params[_FILTER_DOC] = doc if process is None else process(doc)
    return entry, params


#: Recently seen plain dictionary filters (exact values) -> compiled statement and
#: processed parameters: a repeated filter (a tenant, a category) skips compiling.
_MEMO: dict[Any, tuple[_Prepared, dict[str, Any]]] = {}
_PLAIN_SCALARS = (str, int, float, bool, type(None))


def _plain(spec: Any, depth: int = 0) -> Any:
    """A hashable, type-exact key of a filter made of dicts, lists and JSON scalars; else None."""
    if depth > 32:
        return None
    kind = type(spec)
    if kind in _PLAIN_SCALARS:
        return (kind, spec)
    if kind is dict:
        items = []
        for key, value in spec.items():
            inner = _plain(value, depth + 1)
            if type(key) is not str or inner is None:
                return None
            items.append((key, inner))
        return (dict, tuple(items))
    if kind is list:
        parts = tuple(_plain(v, depth + 1) for v in spec)
        return None if None in parts else (list, parts)
    return None


def _prepare_shape(
    repo: DocumentRepository[Any], dialect: Any, opts: SearchOptions, strategy: str
) -> tuple[_Prepared, dict[str, Any]] | None:
    model = repo.model
    condition = compile_filter(opts.filter, model)
    if condition is None:
        return None
    fkey = condition._generate_cache_key()
    if fkey is None:
        return None
    key = (model, repo.collection.id, strategy, opts.metric, opts.precision,
           opts.k + opts.offset, opts.with_embedding, opts.mmr is not None, opts.fetch_k,
           opts.rerank, dialect, fkey.key)  # fmt: skip
    found = _FILTERED.get(key)
    if found is None:
        param = query_param(None, repo.dimension, _VECTOR_PARAM)
        conditions = [model.collection_id == repo.collection.id, condition]
        stmt = build_statement(repo, param, opts, strategy, columns=True, conditions=conditions)
        prepared = _prepare(dialect, stmt, False)
        if prepared is None:
            return None
        entry = prepared[0]
        full = stmt._generate_cache_key()
        assert full is not None  # _prepare returned None otherwise
        template = list(full.bindparams)
        places = [(i, j) for i, b in enumerate(template)
                  for j, f in enumerate(fkey.bindparams) if b is f]  # fmt: skip
        if {j for _, j in places} != set(range(len(fkey.bindparams))):
            return prepared  # the filter's values were not found: no reuse
        if len(_FILTERED) >= _PREPARED_MAX:
            _FILTERED.clear()
        _FILTERED[key] = (entry, places, template)
        return prepared
    entry, places, template = found
    extracted = list(template)
    for i, j in places:
        extracted[i] = fkey.bindparams[j]
    return entry, _processed_params(entry, extracted)


def _processed_params(entry: Any, extracted: Any) -> dict[str, Any]:
    """The statement's parameters with this call's values, through the bind processors."""
    binds = entry.binds
    return {
        name: (binds[name](value) if name in binds else value)
        for name, value in entry.compiled.construct_params(
            {_VECTOR_PARAM: None}, extracted_parameters=extracted
        ).items()
        if name != _VECTOR_PARAM
    }


def eligible(engine: Any) -> bool:
    """SQLAlchemy's path for engines with cursor hooks (tracing, logging) or options."""
    dispatch = engine.dispatch
    return not (
        dispatch.before_cursor_execute or dispatch.after_cursor_execute
        or engine.dialect.dispatch.handle_error or engine.echo or engine._execution_options
        or engine.dialect.driver not in ("psycopg2", "psycopg")
        or engine.dialect.paramstyle != "pyformat"
    )  # fmt: skip


def _pipelines(dbapi_connection: Any) -> bool:
    """Whether this psycopg 3 connection's libpq supports pipeline mode (cached per class)."""
    found = _PIPELINE.get(type(dbapi_connection))
    if found is None:
        import psycopg

        found = _PIPELINE[type(dbapi_connection)] = bool(psycopg.Pipeline.is_supported())
    return found


_PIPELINE: dict[type, bool] = {}


def _execute_raw(
    dbapi_connection: Any,
    cursor: Any,
    driver: str,
    settings: Mapping[str, str],
    sql: str,
    params: dict[str, Any],
) -> list[Any]:
    """Settings and query in one round trip, in one implicit transaction.

    The connection is in autocommit mode here (see :func:`run_raw`), so the
    server's implicit transaction scopes the ``set_config(..., true)``
    settings to the query.  psycopg2 binds client-side: the validated,
    parameter-free settings statement and the query go as one simple-protocol
    message (one implicit transaction), and the cursor holds the last
    statement's rows.  psycopg 3 binds server-side and refuses several
    statements in one execute, so the two are pipelined: both are sent before
    the one Sync that ends their implicit transaction.
    """
    if settings:
        if driver == "psycopg2":
            cursor.execute(settings_sql(settings) + "; " + sql, params)
            return list(cursor.fetchall())
        if dbapi_connection.autocommit and _pipelines(dbapi_connection):
            with dbapi_connection.pipeline():
                cursor.execute(settings_sql(settings))
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        cursor.execute(settings_sql(settings))
    cursor.execute(sql, params)
    return list(cursor.fetchall())


def run_raw(
    repo: DocumentRepository[Any], engine: Any, plan: SearchPlan
) -> tuple[list[Any], SearchPlan, str | None] | None:
    """Run ``plan`` on a pooled DB-API connection; None when it must take SQLAlchemy's path."""
    dialect = engine.dialect
    reused = opts_reused(plan.options)
    prepared = plan.prepared or _prepare(dialect, plan.statement, reused)
    if prepared is None:
        return None
    entry, params = prepared
    opts = plan.options
    vector_text = entry.binds[_VECTOR_PARAM](plan.vector)
    params[_VECTOR_PARAM] = vector_text
    fallback = None
    dbapi_error = dialect.loaded_dbapi.Error
    sql: str | None = entry.sql
    raw = cursor = None
    # A read needs no transaction of its own: in autocommit mode the settings
    # and the query (one implicit transaction, see _execute_raw) are the whole
    # exchange, with no BEGIN or COMMIT round trip.  SQLAlchemy's pre-ping
    # toggles autocommit the same way; the pool gets the connection back as it was.
    restore = False
    try:
        raw = engine.raw_connection()
        dbapi_connection = raw.dbapi_connection
        if not dbapi_connection.autocommit:
            dbapi_connection.autocommit = restore = True
        cursor = raw.cursor()
        rows = _execute_raw(dbapi_connection, cursor, dialect.driver, plan.settings, entry.sql,
                            params)  # fmt: skip
        if entry.results is None:
            entry.results = _result_processors(entry, dialect, cursor.description)
        if plan.strategy != "exact" and len(rows) < opts.k + opts.offset:
            fallback = plan.strategy
            plan = _exact_plan(repo, plan, len(rows), True)
            again = _prepare(dialect, plan.statement, reused)
            assert again is not None
            entry, params = again
            params[_VECTOR_PARAM] = vector_text
            sql = entry.sql
            cursor.execute(entry.sql, params)
            rows = list(cursor.fetchall())
            if entry.results is None:
                entry.results = _result_processors(entry, dialect, cursor.description)
        cursor.close()
    except dbapi_error as exc:
        invalidated = bool(dialect.is_disconnect(
            exc, raw.dbapi_connection if raw is not None else None, cursor))  # fmt: skip
        if raw is not None and invalidated:
            raw.invalidate(exc)
        raise sa_exc.DBAPIError.instance(
            sql, params, exc, dbapi_error, connection_invalidated=invalidated, dialect=dialect
        ) from exc
    finally:
        if raw is not None:
            if restore and raw.dbapi_connection is not None and not raw.dbapi_connection.closed:
                raw.dbapi_connection.autocommit = False
            raw.close()  # back to the pool (rolled back there if still in a transaction)
    processors = [(i, p) for i, p in enumerate(entry.results or []) if p is not None]
    if processors:
        processed = []
        for row in rows:
            values = list(row)
            for i, process in processors:
                values[i] = process(values[i])
            processed.append(values)
        rows = processed
    return rows, plan, fallback


def _result_processors(entry: _Prepared, dialect: Any, description: Any) -> list[Any]:
    types = [c.type for c in entry.compiled.statement.selected_columns]
    return [
        t._cached_result_processor(dialect, d[1]) for t, d in zip(types, description, strict=True)
    ]
