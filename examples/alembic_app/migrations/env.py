"""The app's alembic environment: its own tables and version table only.

vectorstore's tables are migrated by vectorstore (``vectorstore db upgrade`` or
``vectorstore.migrate(url)``), with their own version table, before this runs.
Two rules keep the histories apart:

* ``version_table`` stays alembic's default ``alembic_version`` here, and
  vectorstore uses ``vectorstore_alembic_version``: neither sees the other.
* ``include_object`` leaves ``vectorstore_*`` tables out of autogenerate and
  ``alembic check``, so the app never generates a revision that drops them.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from app_models import AppBase
from sqlalchemy import pool

import vectorstore as vs


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
    return not str(table or "").startswith("vectorstore_")


def run_migrations_online() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url")
    engine = vs.make_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=AppBase.metadata,
                include_object=include_object,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run_migrations_online()
