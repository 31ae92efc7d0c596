"""vectorstore's tables, created by vectorstore's own alembic revisions.

The revisions run on Django's connection, inside this migration's transaction,
and record themselves in ``vectorstore_alembic_version`` (not in Django's
``django_migrations``, which records this migration).  Later releases' alembic
revisions are applied after ``migrate`` (see ``apps.upgrade_after_migrate``).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def _connection(schema_editor: Any) -> Any:
    from vectorstore.integrations.django._connection import engine_for

    return engine_for(schema_editor.connection.alias).connect()


def _ours(schema_editor: Any) -> bool:
    from vectorstore.integrations.django import settings

    return bool(schema_editor.connection.alias == settings()["DATABASE"])


def upgrade(apps: Any, schema_editor: Any) -> None:
    import vectorstore as vs

    if _ours(schema_editor):
        with _connection(schema_editor) as conn:
            vs.migrate(conn)


def downgrade(apps: Any, schema_editor: Any) -> None:
    import vectorstore as vs

    if _ours(schema_editor):
        with _connection(schema_editor) as conn:
            vs.downgrade(conn, "base")


class Migration(migrations.Migration):  # type: ignore[misc]
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations = [migrations.RunPython(upgrade, downgrade, elidable=False)]
