"""SQLAlchemy on Django's own DB-API connection: one connection, one transaction.

The engine of :func:`engine` never opens a connection of its own.  Each
checkout hands SQLAlchemy the DB-API connection Django holds for the current
thread and database alias (``connections[alias].connection``), so whatever
vectorstore reads and writes runs in Django's transaction: inside
``transaction.atomic()`` and pytest-django's test transactions, committed and
rolled back with them.

Who does what, and why:

* **Django owns BEGIN, COMMIT and ROLLBACK.**  The dialect's ``do_begin``,
  ``do_commit`` and ``do_rollback`` do nothing, and the pool's reset-on-return
  is off, so neither a Session that ends nor a connection SQLAlchemy gives back
  ends Django's transaction.  vectorstore's repository is used bound to a
  Session (the host owns the transaction), so its writes and scoped reads run
  in SAVEPOINTs: a failed write rolls back to its savepoint and leaves
  Django's transaction usable.  SAVEPOINTs need a transaction: the public
  entry points (:func:`vectorstore.integrations.django.repository`) run their
  block in ``transaction.atomic()``, which is a real transaction outside any
  atomic block and a savepoint inside one.
* **Nothing is closed by SQLAlchemy.**  The pool is a ``NullPool`` whose
  "close" (``do_close``) does nothing: the connection is Django's to close, so
  vectorstore leaves no connection open at test-database teardown.
* **Per-connection set-up is Django's.**  The dialect's ``on_connect`` hooks
  (which would run at every checkout here: psycopg 3's would add a notice
  handler each time) are off, and hstore detection is off.  Django loads
  ``jsonb`` as text on its connections (it decodes JSONField itself), so the
  dialect's JSONB type decodes text results; Django's own JSONField loading is
  untouched.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from sqlalchemy import URL, Engine, create_engine, pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2

import vectorstore as vs

__all__ = [
    "DjangoPsycopg2Dialect",
    "DjangoPsycopgDialect",
    "dispose_engines",
    "driver_for",
    "engine_for",
]

_DIALECTS = {
    "psycopg2": "vectorstore_django_psycopg2",
    "psycopg": "vectorstore_django_psycopg",
}


def _text_jsonb(base: type[Any]) -> type[Any]:
    class TextJSONB(base):  # type: ignore[misc]
        """JSONB whose results may arrive as JSON text (Django's loader): decode them."""

        def result_processor(self, dialect: Any, coltype: Any) -> Any:
            inner = super().result_processor(dialect, coltype)

            def process(value: Any) -> Any:
                if isinstance(value, str):
                    value = json.loads(value)
                return inner(value) if inner is not None else value

            return process

    return TextJSONB


class _HostOwned:
    """Dialect behaviour shared by both drivers: the transaction and the connection are Django's."""

    def do_begin(self, dbapi_connection: Any) -> None:
        pass  # psycopg begins implicitly when Django has turned autocommit off

    def do_commit(self, dbapi_connection: Any) -> None:
        pass  # Django commits (transaction.atomic or its autocommit)

    def do_rollback(self, dbapi_connection: Any) -> None:
        pass  # Django rolls back; vectorstore's own failures roll back to a SAVEPOINT

    def do_close(self, dbapi_connection: Any) -> None:
        pass  # the connection is Django's to close

    def on_connect(self) -> None:
        return None  # Django configured the connection; hooks here would run per checkout


class DjangoPsycopg2Dialect(_HostOwned, PGDialect_psycopg2):
    """psycopg2 on Django's connection (Django's psycopg2 backend)."""

    supports_statement_cache = True

    colspecs = {
        **PGDialect_psycopg2.colspecs,
        JSONB: _text_jsonb(PGDialect_psycopg2.colspecs[JSONB]),
    }


class DjangoPsycopgDialect(_HostOwned, PGDialect_psycopg):
    """psycopg 3 on Django's connection (Django's psycopg backend, the default when installed)."""

    supports_statement_cache = True

    colspecs = {
        **PGDialect_psycopg.colspecs,
        JSONB: _text_jsonb(PGDialect_psycopg.colspecs[JSONB]),
    }


for _driver, _name in _DIALECTS.items():
    registry.register(
        f"postgresql.{_name}",
        __name__,
        "DjangoPsycopg2Dialect" if _driver == "psycopg2" else "DjangoPsycopgDialect",
    )

_lock = threading.Lock()
_engines: dict[tuple[str, str, str], Engine] = {}


def driver_for(alias: str) -> str:
    """``psycopg`` or ``psycopg2``: the driver Django's backend uses for ``alias``."""
    from django.db import connections

    wrapper = connections[alias]
    if wrapper.vendor != "postgresql":
        raise vs.ConfigurationError(
            f"vectorstore needs PostgreSQL with pgvector; DATABASES[{alias!r}] is "
            f"{wrapper.settings_dict['ENGINE']!r}"
        )
    module = str(wrapper.Database.__name__).split(".")[0]
    if module not in _DIALECTS:
        raise vs.ConfigurationError(f"DATABASES[{alias!r}]: unsupported driver {module!r}")
    return module


def _dbapi_connection(alias: str) -> Any:
    from django.db import connections

    wrapper = connections[alias]
    wrapper.ensure_connection()
    return wrapper.connection


def engine_for(alias: str) -> Engine:
    """The process's Engine on Django's connection for ``alias`` (made on first use).

    One per alias, driver and database name: pytest-django's test database (a
    new name) gets an engine of its own, so no cache of the real database's
    catalog is used on it.
    """
    from django.db import connections

    driver = driver_for(alias)
    name = str(connections[alias].settings_dict["NAME"])
    key = (alias, driver, name)
    with _lock:
        found = _engines.get(key)
        if found is None:
            url = URL.create(f"postgresql+{_DIALECTS[driver]}", database=name)
            found = _engines[key] = create_engine(
                url,
                creator=lambda: _dbapi_connection(alias),
                poolclass=pool.NullPool,
                pool_reset_on_return=None,
                use_native_hstore=False,
            )
        return found


def dispose_engines() -> None:
    """Forget the engines (they hold no connection of their own; Django's stay open)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
