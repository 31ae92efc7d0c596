"""Run vectorstore's alembic migrations from code (``import vectorstore.schema.migrate``).

The revisions live in ``migrations/`` at the repository root and ship inside the
wheel as the package ``vectorstore._migrations``, so ``alembic upgrade head``
from a checkout and :func:`migrate` from an installed package run the very same
scripts.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, text

from vectorstore.config import make_engine
from vectorstore.errors import SchemaError, db_errors

__all__ = [
    "VERSION_TABLE",
    "check_schema",
    "current_revision",
    "downgrade",
    "head_revision",
    "migrate",
    "migrations_dir",
]

VERSION_TABLE = "vectorstore_alembic_version"


def migrations_dir() -> Path:
    """The folder that holds ``env.py`` and ``versions/`` (installed or checkout)."""
    spec = importlib.util.find_spec("vectorstore._migrations")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    if (checkout / "env.py").exists():
        return checkout
    raise SchemaError("vectorstore's migration scripts are missing from this installation")


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def _connection(target: str | URL | Engine | Connection | None) -> Iterator[Connection]:
    if isinstance(target, Connection):
        yield target
        return
    owned = not isinstance(target, Engine)
    engine = make_engine(target) if not isinstance(target, Engine) else target
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        if owned:
            engine.dispose()


def migrate(target: str | URL | Engine | Connection | None = None, revision: str = "head") -> None:
    """Upgrade vectorstore's schema to ``revision`` (default: the latest).

    Args:
        target: a URL, an Engine or an open Connection; default as in
            :func:`vectorstore.config.resolve_url` (environment, then embedded).
        revision: an alembic revision id or ``"head"``.

    Raises:
        ExtensionMissingError: pgvector is missing on the server or too old.
    """
    with db_errors("migrate"), _connection(target) as connection:
        command.upgrade(_config(connection), revision)


def downgrade(
    target: str | URL | Engine | Connection | None = None, revision: str = "base"
) -> None:
    """Downgrade vectorstore's schema to ``revision`` (default: remove its tables)."""
    with db_errors("downgrade"), _connection(target) as connection:
        command.downgrade(_config(connection), revision)


def current_revision(target: str | URL | Engine | Connection | None = None) -> str | None:
    """The revision the database is at, or None when vectorstore's schema is absent."""
    with db_errors("read the schema revision"), _connection(target) as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str:
    """The newest revision this version of vectorstore ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def check_schema(target: str | URL | Engine | Connection | None = None) -> list[Any]:
    """Compare the models with the database; return alembic's list of differences.

    An empty list means the migrations and the models agree (``alembic check``).
    """
    from alembic.autogenerate import compare_metadata

    from vectorstore.models import Base

    from .alembic_hooks import include_object

    with db_errors("check the schema"), _connection(target) as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": VERSION_TABLE,
                "include_object": include_object,
                "compare_type": True,
                "target_metadata": Base.metadata,
            },
        )
        found = list(compare_metadata(context, Base.metadata))
        return found + _storage_drift(connection, Base.metadata)


def _storage_drift(connection: Connection, metadata: Any) -> list[Any]:
    """``("modify_storage", schema, table, column, found, "m")`` per column not kept in the row.

    Alembic does not compare a column's ``attstorage``; the document tables
    declare theirs (:mod:`vectorstore.column_storage`).
    """
    from vectorstore._sql_names import quoted_table
    from vectorstore.column_storage import INLINE_COLUMNS

    wanted = [
        (table, name)
        for table in metadata.tables.values()
        if table.info.get("vectorstore_column_storage")
        for name in INLINE_COLUMNS
        if name in table.c
    ]
    out: list[Any] = []
    for table, name in wanted:
        qualified = quoted_table(table)
        storage = connection.execute(
            text(
                "SELECT attstorage FROM pg_attribute "
                "WHERE attrelid = to_regclass(:t) AND attname = :c AND NOT attisdropped"
            ),
            {"t": qualified, "c": name},
        ).scalar_one_or_none()
        if storage is not None and storage != "m":
            out.append(("modify_storage", table.schema, table.name, name, storage, "m"))
    return out
