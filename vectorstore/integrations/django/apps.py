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
    """After ``manage.py migrate``: upgrade vectorstore's schema if a newer release ships revisions.

    The app's Django migration creates the schema (the alembic head of the
    release that ran it); a later vectorstore release adds alembic revisions,
    not Django migrations, and they are applied here.  Nothing happens on a
    database where vectorstore's schema does not exist (its migration is not
    applied there, or was unapplied).
    """
    import vectorstore as vs

    from . import settings
    from ._connection import engine_for

    if using != settings()["DATABASE"]:
        return
    from django.db import transaction

    with transaction.atomic(using=using), engine_for(using).connect() as conn:
        current = vs.current_revision(conn)
        if current is not None and current != _head():
            vs.migrate(conn)
