"""Alembic environment for vectorstore's tables.

The database URL comes from, in order: an open connection handed over by
``vectorstore.migrate()``, ``-x url=...`` on the alembic command line, the
``sqlalchemy.url`` option, ``VECTORSTORE_DATABASE_URL``, and finally the
embedded server.  Our version table is ``vectorstore_alembic_version`` so an app
with its own alembic history can share the database.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, pool

from vectorstore.config import make_engine
from vectorstore.models import Base
from vectorstore.schema.alembic_hooks import include_object, render_item

VERSION_TABLE = "vectorstore_alembic_version"

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_object=include_object,
        render_item=render_item,
        compare_type=True,
        compare_server_default=False,
        transaction_per_migration=False,
    )


def run_migrations_offline() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    context.configure(
        url=url,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
        render_item=render_item,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    handed: Any = config.attributes.get("connection")
    if handed is not None:
        _configure(handed)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = make_engine(url or None, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
