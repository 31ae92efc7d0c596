"""Row-level security as an option: a tenant policy on a per-transaction setting.

:func:`enable_row_level_security` turns on PostgreSQL's row-level security
on a document table with one policy::

    CREATE POLICY vectorstore_tenant ON vectorstore_documents
        USING (collection_id = NULLIF(current_setting('vectorstore.tenant', true), '')::integer)
        WITH CHECK (the same)

A role the policy applies to (any role but the table's owner, superusers and
``BYPASSRLS`` roles; with ``force=True`` the owner too) sees and writes only
the rows of the collection whose id the transaction set with
``SET LOCAL vectorstore.tenant = '<collection id>'`` (or
``set_config('vectorstore.tenant', '<id>', true)``), and nothing at all when
it set none: an app query that forgets its tenant filter reads nothing from
other tenants.

Design decisions:

* **The repository sets it.**  A repository whose table has row-level
  security on (read from the catalog, cached like the ANN indexes) sets the
  tenant at the start of every transaction it reads or writes in: one
  ``set_config`` more per call; such a repository's searches take the
  Session path, not the raw one (:mod:`vectorstore.query.raw`).  In a host's
  Session the setting is the host transaction's until it ends.
* **The id, not the name.**  The policy compares integers: ``collection_id =
  <constant>`` is what the planner already knows how to use (the btree, the
  partition bound: partition pruning still happens, at executor start), and
  the equality on integers is leakproof, so the policy does not stop other
  conditions from using their indexes.  An unset or empty setting is NULL:
  no row passes.
* **The HNSW index keeps serving.**  The policy is one more condition on the
  scan; the ``ORDER BY embedding <=> :q LIMIT k`` still walks the HNSW graph
  (``tests/test_rls.py`` checks the plans with EXPLAIN).
* **Partitions.**  A policy on a partitioned parent applies to queries
  through the parent.  Grant the app role privileges on the parent only (the
  partitions vectorstore creates grant nothing): then the role cannot name a
  partition directly.
"""

from __future__ import annotations

import dataclasses
import time
import weakref
from typing import Any

from sqlalchemy import Connection, Engine, Table, text
from sqlalchemy.orm import Session

from vectorstore._target import Sessions
from vectorstore.errors import ConfigurationError, ValidationError
from vectorstore.metadata_table import metadata_table

from .catalog import CATALOG_TTL_S, qualified_table

__all__ = [
    "POLICY_NAME",
    "TENANT_SETTING",
    "disable_row_level_security",
    "enable_row_level_security",
    "forget_row_security",
    "row_security_enabled",
    "tenant_predicate",
    "tenant_sessions",
    "tenant_sql",
]

#: The per-transaction setting the policy reads: the current collection's id.
TENANT_SETTING = "vectorstore.tenant"
#: The policy's name on every table it is created on.
POLICY_NAME = "vectorstore_tenant"

Bind = Session | Connection


def tenant_predicate() -> str:
    """The policy's condition (SQL): the row's collection is the transaction's tenant."""
    return f"collection_id = NULLIF(current_setting('{TENANT_SETTING}', true), '')::integer"


def tenant_sql(collection_id: int) -> str:
    """``SELECT set_config('vectorstore.tenant', '<id>', true)`` for ``collection_id``."""
    if isinstance(collection_id, bool) or not isinstance(collection_id, int):
        raise ValidationError(f"a tenant is a collection id, got {collection_id!r}")
    return f"SELECT set_config('{TENANT_SETTING}', '{int(collection_id)}', true)"


def _table_of(model_or_table: Any) -> Table:
    table = getattr(model_or_table, "__table__", model_or_table)
    if not isinstance(table, Table):
        raise ValidationError(f"{model_or_table!r} is neither a mapped model nor a Table")
    return table


def enable_row_level_security(bind: Bind, model: Any, *, force: bool = False) -> None:
    """Enable row-level security on ``model``'s table with the tenant policy (idempotent).

    In ``bind``'s transaction (an alembic op's connection, a Session).

    Args:
        model: a document model or its Table.
        force: apply the policy to the table's owner too (``FORCE ROW LEVEL SECURITY``).
    """
    table = _table_of(model)
    if metadata_table(table) is not None:
        raise ConfigurationError(
            f"{table.name} uses metadata_index = 'table': its metadata table has no tenant "
            f"policy, so row-level security on the documents alone would not cover it; "
            f"use metadata_index = 'inline' with row-level security"
        )
    name = qualified_table(bind, table)
    predicate = tenant_predicate()
    bind.execute(text(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY"))
    if force:
        bind.execute(text(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY"))
    bind.execute(text(f"DROP POLICY IF EXISTS {POLICY_NAME} ON {name}"))
    bind.execute(
        text(f"CREATE POLICY {POLICY_NAME} ON {name} USING ({predicate}) WITH CHECK ({predicate})")
    )
    forget_row_security(table)


def disable_row_level_security(bind: Bind, model: Any) -> None:
    """Drop the tenant policy and disable row-level security on ``model``'s table."""
    table = _table_of(model)
    name = qualified_table(bind, table)
    bind.execute(text(f"DROP POLICY IF EXISTS {POLICY_NAME} ON {name}"))
    bind.execute(text(f"ALTER TABLE {name} NO FORCE ROW LEVEL SECURITY"))
    bind.execute(text(f"ALTER TABLE {name} DISABLE ROW LEVEL SECURITY"))
    forget_row_security(table)


_CACHE: weakref.WeakKeyDictionary[Engine, dict[Table, tuple[bool, float]]] = (
    weakref.WeakKeyDictionary()
)


def row_security_enabled(bind: Engine | Session | Connection, table: Table) -> bool:
    """Whether ``table`` has row-level security on (cached per engine for ``CATALOG_TTL_S``).

    With a Session or Connection, a lookup runs on it (in its transaction).
    """
    engine = _engine_of(bind)
    tables = _CACHE.setdefault(engine, {})
    found = tables.get(table)
    now = time.monotonic()
    if found is not None and now - found[1] <= CATALOG_TTL_S:
        return found[0]
    sql = text("SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass(:t)")
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            found_now = conn.execute(sql, {"t": qualified_table(conn, table)}).scalar_one_or_none()
    else:
        found_now = bind.execute(sql, {"t": qualified_table(bind, table)}).scalar_one_or_none()
    enabled = bool(found_now)
    tables[table] = (enabled, now)
    return enabled


def _engine_of(bind: Engine | Session | Connection) -> Engine:
    if isinstance(bind, Engine):
        return bind
    if isinstance(bind, Connection):
        return bind.engine
    found = bind.get_bind()
    return found if isinstance(found, Engine) else found.engine


def forget_row_security(table: Table) -> None:
    """Forget what every engine knows of ``table``'s row-level security.

    Of every Table object of that name and schema (two models may map one table).
    """
    for tables in list(_CACHE.values()):
        for known in [t for t in tables if (t.schema, t.name) == (table.schema, table.name)]:
            tables.pop(known, None)


def tenant_sessions(sessions: Sessions, model: Any, collection_id: int) -> Sessions:
    """``sessions`` setting ``vectorstore.tenant`` to ``collection_id`` when ``model``'s table
    has row-level security on; ``sessions`` itself otherwise."""
    if sessions.tenant == collection_id:
        return sessions
    # In a host's Session the lookup runs in it (no second connection from the pool).
    bind = sessions.session if sessions.session is not None else sessions.write_engine
    if not row_security_enabled(bind, model.__table__):
        return sessions
    return dataclasses.replace(sessions, tenant=int(collection_id))
