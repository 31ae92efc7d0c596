"""The Django app configuration: checks the settings and keeps the schema at head after migrate."""

from __future__ import annotations

import functools
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class VectorstoreConfig(AppConfig):  # type: ignore[misc]
    name = "vectorstore.integrations.django"
    label = "vectorstore"
    verbose_name = "vectorstore"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import configured

        configured()  # bad settings are one error at start-up, not at the first request
        post_migrate.connect(upgrade_after_migrate, sender=self)


@functools.cache
def _head() -> str:
    from vectorstore.schema.migrate import head_revision

    return head_revision()


def upgrade_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """After ``manage.py migrate``: upgrade vectorstore's schema; after ``flush``: empty it.

    *migrate*: the app's Django migration creates the schema (the alembic head
    of the release that ran it); a later vectorstore release adds alembic
    revisions, not Django migrations, and they are applied here.  Nothing
    happens on a database where vectorstore's schema does not exist (its
    migration is not applied there, or was unapplied).

    *flush* (``manage.py flush``, and pytest-django / Django's
    ``TransactionTestCase`` after each test) empties Django's tables and then
    sends ``post_migrate`` without a ``plan``: vectorstore's tables are not
    Django models, so they are emptied here, or a ``transaction=True`` test's
    documents would still be there in the next test.
    """
    import vectorstore as vs

    from . import configured
    from ._connection import engine_for

    config, model, _ = configured()
    if using != config["DATABASE"]:
        return
    from django.db import transaction
    from sqlalchemy import text

    with transaction.atomic(using=using), engine_for(using).connect() as conn:
        current = vs.current_revision(conn)
        if current is None:
            return
        if "plan" not in kwargs:  # a flush
            tables = {model.__table__, vs.Document.__table__, vs.Collection.__table__}
            names = ", ".join(sorted(_quoted(conn, t) for t in tables))
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        elif current != _head():
            vs.migrate(conn)


def _quoted(conn: Any, table: Any) -> str:
    preparer = conn.dialect.identifier_preparer
    return str(preparer.format_table(table))
