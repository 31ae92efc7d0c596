"""nearest's raw DB-API path, and every SQLAlchemy internal the fast path relies on.

A standalone repository's call whose plan comes from caches runs its
pre-compiled SQL on the DB-API cursor of a pooled connection: SQLAlchemy's
execution machinery (connection, transaction, execution context, result
objects) costs more client time than the query on a warm index.  The SQL,
the bind and result processing are SQLAlchemy's own for the engine's dialect,
so values stay bound parameters and come back as the session path gives them.

:func:`vectorstore.query.run.run` tries this path first when the repository
owns its reads; it returns None whenever the plan needs the database (first
call, stale caches, filters the sample cannot judge, joins) or the engine has
cursor hooks, and the SQLAlchemy path runs instead.  Driver errors are
wrapped as SQLAlchemy would (a disconnect invalidates the pooled
connection), so error translation and the one retry of a read apply
unchanged.

This module is the only one that touches SQLAlchemy's private API (cache
keys, compiled bind processors, instance state): :data:`INTERNALS` lists it,
and :func:`check_internals` is run by the tests against the installed
SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, bindparam
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import AdaptedConnection

from vectorstore._async import await_
from vectorstore._target import Target
from vectorstore._vector import query_param
from vectorstore.metadata_keys import indexed_keys
from vectorstore.metadata_table import metadata_table

from .filters import compile_filter, plain_equalities
from .options import SearchOptions, Strategy
from .plan import SearchPlan, with_fallback
from .settings import settings_sql
from .shadow import matches_first, shadow_condition
from .statement import VECTOR_PARAM, build_statement, reusable, statement_for, statement_key

__all__ = [
    "INTERNALS",
    "check_internals",
    "clear_caches",
    "compiled_statements",
    "documents",
    "eligible",
    "run_raw",
]


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
        key = stmt._generate_cache_key()  # SQLAlchemy internal, see check_internals
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
                for name, value in compiled.construct_params({VECTOR_PARAM: None}).items()
                if name != VECTOR_PARAM
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


_FILTERED: dict[Any, tuple[_Prepared, list[tuple[int, int]], list[Any]]] = {}


def _prepare_filtered(
    target: Target[Any], dialect: Any, opts: SearchOptions, strategy: str
) -> tuple[_Prepared, dict[str, Any]] | None:
    """A filtered statement's compiled form and parameters, without building it per call.

    Top-level metadata equalities share one statement (unless they name an
    indexed key, whose comparison is its own).  A plain dictionary filter seen
    before (same values, same JSON types) reuses its processed parameters.
    Otherwise only the filter is compiled: its SQLAlchemy cache key (structure
    without values) finds the statement compiled for the first filter of that
    shape, and the filter's bound values take the places of that first
    filter's values among its parameters.
    """
    doc = plain_equalities(opts.filter)
    if doc is not None and indexed_keys(target.model).isdisjoint(doc):
        return _prepare_equalities(target, dialect, opts, strategy, doc)
    plain = _plain(opts.filter)
    memo_key = None
    if plain is not None:
        memo_key = (*statement_key(target, opts, strategy, True), dialect, plain)
        memo = _MEMO.get(memo_key)
        if memo is not None:
            return memo[0], dict(memo[1])
    found = _prepare_shape(target, dialect, opts, strategy)
    if found is not None and memo_key is not None:
        if len(_MEMO) >= _PREPARED_MAX:
            _MEMO.clear()
        _MEMO[memo_key] = (found[0], dict(found[1]))
    return found


_FILTER_DOC = "vs_filter_doc"
_EQUALITIES: dict[Any, tuple[_Prepared, dict[str, Any]]] = {}


def _prepare_equalities(
    target: Target[Any],
    dialect: Any,
    opts: SearchOptions,
    strategy: str,
    doc: dict[str, Any],
) -> tuple[_Prepared, dict[str, Any]] | None:
    """The commonest filter, top-level metadata equalities: one statement for all of them.

    They compile to ``metadata @> :doc`` whatever the keys and values (see
    :func:`~vectorstore.query.filters.plain_equalities`), so the statement is
    compiled once and each call only serialises its document.
    """
    key = (*statement_key(target, opts, strategy, True), dialect)
    found = _EQUALITIES.get(key)
    if found is None:
        model = target.model
        condition = model.metadata_.contains(bindparam(_FILTER_DOC, doc, type_=JSONB))
        param = query_param(None, target.dimension, VECTOR_PARAM)
        conditions = [model.collection_id == target.collection_id, condition]
        shadow = metadata_table(model) if strategy == "exact" else None
        if shadow is not None:  # metadata_index = "table": the same document, on its GIN
            on_shadow = shadow.c.metadata.contains(bindparam(_FILTER_DOC, doc, type_=JSONB))
            conditions.append(matches_first(target, shadow, on_shadow))
        stmt = build_statement(target, param, opts, strategy, columns=True, conditions=conditions)
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


#: Filters with more values than this are not remembered by value: a
#: 100,000-value $in kept for each of _PREPARED_MAX recent filters would hold
#: about a gigabyte, and a filter that large costs more to run than to compile.
_MEMO_MAX_VALUES = 256


def _plain(spec: Any) -> Any:
    """A hashable, type-exact key of a small filter of dicts, lists and JSON scalars; else None."""
    budget = [_MEMO_MAX_VALUES]
    return _plain_part(spec, 0, budget)


def _plain_part(spec: Any, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if depth > 32 or budget[0] < 0:
        return None
    kind = type(spec)
    if kind in _PLAIN_SCALARS:
        return (kind, spec)
    if kind is dict:
        items = []
        for key, value in spec.items():
            inner = _plain_part(value, depth + 1, budget)
            if type(key) is not str or inner is None:
                return None
            items.append((key, inner))
        return (dict, tuple(items))
    if kind is list:
        parts = []
        for value in spec:
            inner = _plain_part(value, depth + 1, budget)
            if inner is None:
                return None
            parts.append(inner)
        return (list, tuple(parts))
    return None


def _prepare_shape(
    target: Target[Any], dialect: Any, opts: SearchOptions, strategy: str
) -> tuple[_Prepared, dict[str, Any]] | None:
    model = target.model
    condition = compile_filter(opts.filter, model)
    if condition is None:
        return None
    semi = shadow_condition(target, opts.filter, first=True) if strategy == "exact" else None
    if semi is not None:  # part of the filter's key: its values change with the filter's
        condition = and_(condition, semi)
    fkey = condition._generate_cache_key()
    if fkey is None:
        return None
    key = (*statement_key(target, opts, strategy, True), dialect, fkey.key)
    found = _FILTERED.get(key)
    if found is None:
        param = query_param(None, target.dimension, VECTOR_PARAM)
        conditions = [model.collection_id == target.collection_id, condition]
        stmt = build_statement(target, param, opts, strategy, columns=True, conditions=conditions)
        prepared = _prepare(dialect, stmt, False)
        if prepared is None:
            return None
        entry = prepared[0]
        full = stmt._generate_cache_key()
        assert full is not None  # _prepare returned None otherwise
        template = list(full.bindparams)
        places = _places(template, fkey.bindparams)
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


def _places(template: Sequence[Any], filtered: Sequence[Any]) -> list[tuple[int, int]]:
    """(i, j) for every parameter ``template[i]`` that is the filter's ``filtered[j]``.

    By identity, in the order of a nested loop over both (i, then j), but
    through a dict from id to positions: comparing every pair was quadratic
    (a 16,000-value ``$in`` bound 16,000 parameters).
    """
    positions: dict[int, list[int]] = {}
    for j, bind in enumerate(filtered):
        positions.setdefault(id(bind), []).append(j)
    return [(i, j) for i, bind in enumerate(template) for j in positions.get(id(bind), ())]


def _processed_params(entry: Any, extracted: Any) -> dict[str, Any]:
    """The statement's parameters with this call's values, through the bind processors."""
    binds = entry.binds
    return {
        name: (binds[name](value) if name in binds else value)
        for name, value in entry.compiled.construct_params(
            {VECTOR_PARAM: None}, extracted_parameters=extracted
        ).items()
        if name != VECTOR_PARAM
    }


#: Drivers (and their paramstyles) the raw path speaks; asyncpg through SQLAlchemy's adapter.
_RAW_DRIVERS = {("psycopg2", "pyformat"), ("psycopg", "pyformat"), ("asyncpg", "numeric_dollar")}


def eligible(engine: Any) -> bool:
    """SQLAlchemy's path for engines with cursor hooks (tracing, logging) or options."""
    dispatch = engine.dispatch
    return not (
        dispatch.before_cursor_execute or dispatch.after_cursor_execute
        or engine.dialect.dispatch.handle_error or engine.echo or engine._execution_options
        or (engine.dialect.driver, engine.dialect.paramstyle) not in _RAW_DRIVERS
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
    params: Any,
) -> tuple[list[Any], Any]:
    """Settings and query in one round trip, in one implicit transaction: (rows, description).

    The connection is in autocommit mode here (see :func:`run_raw`), so the
    server's implicit transaction scopes the ``set_config(..., true)``
    settings to the query.  psycopg2 binds client-side: the validated,
    parameter-free settings statement and the query go as one simple-protocol
    message (one implicit transaction), and the cursor holds the last
    statement's rows.  psycopg 3 binds server-side and refuses several
    statements in one execute, so the two are pipelined: both are sent before
    the one Sync that ends their implicit transaction.  psycopg 3's async
    connection (inside the greenlet bridge of :mod:`vectorstore.aio`, behind
    SQLAlchemy's adapter) is pipelined the same way, on the driver connection.
    """
    if driver == "asyncpg":
        # No pipeline mode: settings and query run in the transaction the adapter
        # opened (see run_raw); the pool's reset-on-return ends it.
        if settings:
            cursor.execute(settings_sql(settings))
        cursor.execute(sql, params)
        return list(cursor.fetchall()), cursor.description
    if settings:
        if driver == "psycopg2":
            cursor.execute(settings_sql(settings) + "; " + sql, params)
            return list(cursor.fetchall()), cursor.description
        if isinstance(dbapi_connection, AdaptedConnection):
            found: tuple[list[Any], Any] = await_(
                _pipelined_async(dbapi_connection.driver_connection, settings, sql, params)
            )
            return found
        if dbapi_connection.autocommit:
            # Without pipeline mode (a libpq older than 14) each statement would be
            # a transaction of its own and the settings would end before the query:
            # then the two share an explicit BEGIN ... COMMIT instead.
            scope = (dbapi_connection.pipeline() if _pipelines(dbapi_connection)
                     else dbapi_connection.transaction())  # fmt: skip
            with scope:
                cursor.execute(settings_sql(settings))
                cursor.execute(sql, params)
                return list(cursor.fetchall()), cursor.description
        cursor.execute(settings_sql(settings))
    cursor.execute(sql, params)
    return list(cursor.fetchall()), cursor.description


async def _pipelined_async(
    connection: Any, settings: Mapping[str, str], sql: str, params: dict[str, Any]
) -> tuple[list[Any], Any]:
    async with connection.pipeline(), connection.cursor() as cursor:
        await cursor.execute(settings_sql(settings))
        await cursor.execute(sql, params)
        return list(await cursor.fetchall()), cursor.description


def prepared_for(
    target: Target[Any], dialect: Any, opts: SearchOptions, strategy: str
) -> tuple[_Prepared, dict[str, Any]] | None:
    """The compiled statement of a call and its parameters (None: SQLAlchemy's path)."""
    if opts.filter is not None:
        return _prepare_filtered(target, dialect, opts, strategy)
    return _prepare(dialect, statement_for(target, opts, strategy, True), reusable(opts))


def run_raw(
    target: Target[Any], engine: Any, plan: SearchPlan
) -> tuple[list[Any], SearchPlan, Strategy | None] | None:
    """Run ``plan`` on a pooled DB-API connection; None when it must take SQLAlchemy's path."""
    dialect = engine.dialect
    first = prepared_for(target, dialect, plan.options, plan.strategy)
    if first is None:
        return None
    vector_text = first[0].binds[VECTOR_PARAM](plan.vector)
    dbapi_error = dialect.loaded_dbapi.Error
    sql: str | None = first[0].sql
    params: dict[str, Any] = first[1]
    raw = cursor = None
    # A read needs no transaction of its own: in autocommit mode the settings
    # and the query (one implicit transaction, see _execute_raw) are the whole
    # exchange, with no BEGIN or COMMIT round trip.  SQLAlchemy's pre-ping
    # toggles autocommit the same way; the pool gets the connection back as it was.
    restore = False
    # asyncpg (positional $n parameters, no pipeline) keeps its transaction.
    positional = dialect.paramstyle == "numeric_dollar"
    try:
        raw = engine.raw_connection()
        dbapi_connection = raw.dbapi_connection
        if not positional and not dbapi_connection.autocommit:
            dbapi_connection.autocommit = restore = True
        cursor = raw.cursor()

        def execute(step: SearchPlan) -> list[Any]:
            nonlocal sql, params
            found = (
                first
                if step is plan
                else prepared_for(target, dialect, step.options, step.strategy)
            )
            assert found is not None  # the exact form of a statement SQLAlchemy could compile
            entry, params = found
            params[VECTOR_PARAM] = vector_text
            sql = entry.sql
            args = [params[n] for n in entry.compiled.positiontup] if positional else params
            rows, description = _execute_raw(dbapi_connection, cursor, dialect.driver,
                                             step.settings, sql, args)  # fmt: skip
            if entry.results is None:
                entry.results = _result_processors(entry, dialect, description)
            return _processed_rows(entry, rows)

        done = with_fallback(plan, execute)
        cursor.close()
        if positional:
            dbapi_connection.rollback()  # end the read's transaction (and its settings) now
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
    return done


def _processed_rows(entry: _Prepared, rows: list[Any]) -> list[Any]:
    processors = [(i, p) for i, p in enumerate(entry.results or []) if p is not None]
    if not processors:
        return rows
    processed = []
    for row in rows:
        values = list(row)
        for i, process in processors:
            values[i] = process(values[i])
        processed.append(values)
    return processed


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


def documents(model: Any, keys: tuple[str, ...], rows: Sequence[Any]) -> list[tuple[Any, Any]]:
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


def _result_processors(entry: _Prepared, dialect: Any, description: Any) -> list[Any]:
    types = [c.type for c in entry.compiled.statement.selected_columns]
    return [
        t._cached_result_processor(dialect, d[1]) for t, d in zip(types, description, strict=True)
    ]


def compiled_statements() -> list[str]:
    """The SQL text of every statement the raw path holds compiled (a diagnostic).

    Shows what is sent to the server: placeholders, never a filter's values.
    """
    entries = {id(e): e for e in _PREPARED.values()}
    entries.update({id(found[0]): found[0] for found in _EQUALITIES.values()})
    entries.update({id(found[0]): found[0] for found in _FILTERED.values()})
    entries.update({id(found[0]): found[0] for found in _MEMO.values()})
    return sorted({entry.sql for entry in entries.values()})


def clear_caches() -> None:
    """Forget every compiled statement (they are compiled again on the next call)."""
    for cache in (_PREPARED, _EQUALITIES, _FILTERED, _MEMO):
        cache.clear()


# -- SQLAlchemy internals ------------------------------------------------------------
#: Every private SQLAlchemy name this module relies on, by the object that has it.
#: :func:`check_internals` (run by the test suite) fails loudly, naming the one
#: that moved, when an upgrade of SQLAlchemy changes any of them.
INTERNALS = {
    "ClauseElement": ("_generate_cache_key",),
    "CacheKey": ("key", "bindparams"),
    "SQLCompiler": ("_bind_processors", "construct_params", "post_compile_params",
                    "literal_execute_params", "string", "statement", "positiontup"),
    "TypeEngine": ("_cached_result_processor",),
    "Mapper": ("_identity_class", "class_manager", "primary_key", "get_property_by_column"),
    "ClassManager": ("new_instance", "dispatch"),
    "InstanceState": ("key", "expired_attributes", "_expire_attributes"),
    "Engine": ("_execution_options", "dispatch", "raw_connection"),
    "Dialect": ("dispatch", "is_disconnect", "loaded_dbapi", "identifier_preparer"),
    "DBAPIError": ("instance",),
}  # fmt: skip


def check_internals(engine: Any, model: Any) -> list[str]:
    """The internals of :data:`INTERNALS` missing on this SQLAlchemy (empty: all there)."""
    from sqlalchemy import select

    stmt = select(model.id).where(model.id == 1)
    key = stmt._generate_cache_key()
    compiled = stmt.compile(dialect=engine.dialect, cache_key=key)
    manager = model.__mapper__.class_manager
    instance = manager.new_instance()
    objects = {
        "ClauseElement": stmt, "CacheKey": key, "SQLCompiler": compiled,
        "TypeEngine": model.__table__.c.id.type, "Mapper": model.__mapper__,
        "ClassManager": manager, "InstanceState": instance._sa_instance_state,
        "Engine": engine, "Dialect": engine.dialect, "DBAPIError": sa_exc.DBAPIError,
    }  # fmt: skip
    return [
        f"{kind}.{name}"
        for kind, names in INTERNALS.items()
        for name in names
        if not hasattr(objects[kind], name)
    ]
