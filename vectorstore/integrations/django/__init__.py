"""The Django app: ``INSTALLED_APPS = [..., "vectorstore.integrations.django"]``.

::

    # settings.py
    INSTALLED_APPS = [..., "vectorstore.integrations.django"]
    VECTORSTORE = {"COLLECTION": "articles"}          # every key is optional

    # a view, a task, a test
    from django.db import transaction
    from vectorstore.integrations import django as vectorstore

    with transaction.atomic():
        article = Article.objects.create(title="Cats")
        with vectorstore.repository() as repo:
            repo.add(article.body, metadata={"article_id": article.pk})

``manage.py migrate`` creates (and later upgrades) vectorstore's tables,
running vectorstore's own alembic revisions with their own version table
(``vectorstore_alembic_version``).  Commands: ``vectorstore_ingest``,
``vectorstore_stats``, ``vectorstore_index``.

Design decisions:

* **One connection, one transaction.**  The repository's Session runs on the
  DB-API connection Django holds for the current thread and alias (see
  :mod:`vectorstore.integrations.django._connection` for who issues BEGIN and
  COMMIT), so vectorstore sees the rows Django wrote in the same transaction,
  its writes commit and roll back with ``transaction.atomic()`` and with
  pytest-django's test transactions, and it opens no connection that could
  block the test database's teardown.
* **A block, not a global.**  :func:`repository` is a context manager: its
  block is ``transaction.atomic()`` (a savepoint inside yours), and its
  Session is closed when the block ends.  Nothing of SQLAlchemy's outlives
  the block, so no cached state survives a rollback of Django's transaction.
* **Settings** come from ``settings.VECTORSTORE`` (keys in
  :data:`SETTINGS_DEFAULTS`), the database from ``DATABASES``: the driver is
  the one Django's backend loaded (psycopg 3, else psycopg2).  The embedder is
  made once per process and model.
* **Joins to Django models** use :func:`mapped`: a SQLAlchemy class mapped
  onto the model's table (from ``_meta``, no reflection query), for
  ``nearest(join=..., join_on=..., filter=...)``.  The join and the filter on
  the model's columns run inside the one ranking statement, so a filtered
  search still returns k rows; ranking first and fetching primary keys into a
  queryset afterwards would filter *after* the top k and return fewer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import URL, Engine
from sqlalchemy.orm import Session

import vectorstore as vs
from vectorstore.integrations._shared import check_dimension, document_model, embedder_from

from ._connection import driver_for, engine_for
from ._mapping import mapped

__all__ = [
    "SETTINGS_DEFAULTS",
    "configured",
    "database_url",
    "embedder",
    "engine",
    "mapped",
    "repository",
    "session",
    "settings",
]

#: The keys of ``settings.VECTORSTORE`` and their defaults.
SETTINGS_DEFAULTS: dict[str, Any] = {
    "DATABASE": "default",  # the DATABASES alias vectorstore's tables live in
    "COLLECTION": "documents",
    "EMBEDDER": vs.DEFAULT_MODEL_NAME,  # a model name ("hashing": the test embedder) or an Embedder
    "DEVICE": None,
    "MODEL": None,  # a DocumentMixin class or "package.module:Class"; default vectorstore.Document
}


def settings() -> dict[str, Any]:
    """``settings.VECTORSTORE`` over :data:`SETTINGS_DEFAULTS`, checked.

    Raises:
        ConfigurationError: an unknown key, a non-PostgreSQL database, an
            embedder whose dimension is not the document model's.
    """
    from django.conf import settings as django_settings

    given = getattr(django_settings, "VECTORSTORE", {}) or {}
    if not isinstance(given, dict):
        raise vs.ConfigurationError("settings.VECTORSTORE must be a dict")
    unknown = sorted(set(given) - set(SETTINGS_DEFAULTS))
    if unknown:
        raise vs.ConfigurationError(
            f"settings.VECTORSTORE: unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join(SETTINGS_DEFAULTS)}"
        )
    merged = {**SETTINGS_DEFAULTS, **given}
    if merged["DATABASE"] not in django_settings.DATABASES:
        raise vs.ConfigurationError(
            f"settings.VECTORSTORE['DATABASE'] is {merged['DATABASE']!r}, not a DATABASES alias"
        )
    if not isinstance(merged["COLLECTION"], str) or not merged["COLLECTION"]:
        raise vs.ConfigurationError("settings.VECTORSTORE['COLLECTION'] must be a non-empty string")
    return merged


def configured() -> tuple[dict[str, Any], type[Any], vs.Embedder]:
    """The settings, the document model and the embedder they name, checked together.

    The app calls it at start-up (``AppConfig.ready``), so bad settings stop
    ``manage.py`` and the server before the first request.  No model is loaded.
    """
    config = settings()
    model = document_model(config["MODEL"], "settings.VECTORSTORE['MODEL']")
    chosen = embedder_from(config["EMBEDDER"], config["DEVICE"], "settings.VECTORSTORE['EMBEDDER']")
    check_dimension(chosen, model, "settings.VECTORSTORE['EMBEDDER']")
    return config, model, chosen


def _alias(using: str | None) -> str:
    return using or str(settings()["DATABASE"])


def engine(using: str | None = None) -> Engine:
    """The Engine on Django's own connection for ``using`` (default: the configured alias)."""
    return engine_for(_alias(using))


def embedder() -> vs.Embedder:
    """The configured embedder (one per process and model)."""
    return configured()[2]


def database_url(using: str | None = None) -> URL:
    """A SQLAlchemy URL of the same database, for tools that need connections of their own.

    (alembic on the command line, a standalone repository in a worker.)  The
    driver is the one Django's backend uses.
    """
    from django.db import connections

    alias = _alias(using)
    driver = driver_for(alias)
    db: dict[str, Any] = connections[alias].settings_dict
    host = db.get("HOST") or None
    port = str(db["PORT"]) if db.get("PORT") else None
    query: dict[str, str] = {}
    if host is not None and host.startswith("/"):  # a unix socket folder
        query["host"] = host
        host = None
        if port is not None:
            query["port"] = port
            port = None
    return URL.create(
        f"postgresql+{driver}",
        username=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=host,
        port=int(port) if port else None,
        database=db["NAME"],
        query=query,
    )


@contextmanager
def session(using: str | None = None) -> Iterator[Session]:
    """A SQLAlchemy Session on Django's connection, in ``transaction.atomic()``.

    The Session never commits: the atomic block does (or, nested in yours, your
    transaction does).  It is closed when the block ends.
    """
    from django.db import transaction

    alias = _alias(using)
    _connect(alias)
    with transaction.atomic(using=alias), Session(engine_for(alias)) as opened:
        yield opened


def _connect(alias: str) -> None:
    """Open Django's connection, so that a server that is down is vectorstore's error."""
    from django.db import DatabaseError, connections

    wrapper = connections[alias]
    driver_for(alias)
    try:
        wrapper.ensure_connection()
    except DatabaseError as exc:
        raise vs.ConnectionLostError(f"could not connect to DATABASES[{alias!r}]: {exc}") from exc


@contextmanager
def repository(
    collection: str | None = None,
    *,
    using: str | None = None,
    embedder: vs.Embedder | None = None,
    model: type[Any] | None = None,
    create: bool = True,
) -> Iterator[vs.DocumentRepository[Any]]:
    """A repository on Django's connection for the block (``transaction.atomic()``).

    Args:
        collection: the collection (default ``VECTORSTORE["COLLECTION"]``).
        using: the database alias (default ``VECTORSTORE["DATABASE"]``).
        embedder: instead of the configured one.
        model: a ``DocumentMixin`` class instead of the configured one.
        create: create the collection on first write (default).

    Raises:
        ConfigurationError: bad settings (see :func:`settings`).
    """
    config, configured_model, configured_embedder = configured()
    chosen_model = model or configured_model
    chosen = embedder or configured_embedder
    if model is not None or embedder is not None:
        check_dimension(chosen, chosen_model, "the embedder")
    with session(using or config["DATABASE"]) as opened:
        yield vs.DocumentRepository(
            opened,
            collection=collection or config["COLLECTION"],
            embedder=chosen,
            model=chosen_model,
            create=create,
        )
