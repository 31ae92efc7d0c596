"""The supported way to use vectorstore inside Django: SQLAlchemy beside Django's ORM.

Design decisions:

* **One configuration.**  The SQLAlchemy engine is built from Django's own
  ``DATABASES["default"]`` (:func:`database_url`), so vectorstore uses the same
  server, database and credentials as the rest of the project.
* **One engine per process and configuration.**  Engines are pooled and
  created lazily on first use (never at import time), and a new one is made if
  the settings change (as ``override_settings`` does in tests).
* **One embedder per process.**  Loading a model is expensive; it happens once.
* **The request owns the transaction.**  The middleware gives each request a
  Session and closes it at the end; a view commits what it wants kept.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from sqlalchemy import URL, Engine
from sqlalchemy.orm import Session

import vectorstore as vs

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_embedders: dict[str, vs.Embedder] = {}


def database_url(alias: str = "default") -> URL:
    """The SQLAlchemy URL of a Django database alias (PostgreSQL only)."""
    db: dict[str, Any] = settings.DATABASES[alias]
    if "postgresql" not in db["ENGINE"]:
        raise vs.ConfigurationError(f"vectorstore needs PostgreSQL; {alias!r} is {db['ENGINE']}")
    host = db.get("HOST") or None
    port = int(db["PORT"]) if db.get("PORT") else None
    socket_folder = host is not None and host.startswith("/")
    query = {"host": host} if socket_folder else {}
    if socket_folder and port is not None:
        query["port"] = str(port)
    return URL.create(
        "postgresql+psycopg2",
        username=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=None if socket_folder else host,
        port=None if socket_folder else port,
        database=db["NAME"],
        query=query,
    )


def engine(alias: str = "default") -> Engine:
    """The process's Engine for ``alias`` (created on first use)."""
    url = database_url(alias)
    key = url.render_as_string(hide_password=False)
    with _lock:
        if key not in _engines:
            _engines[key] = vs.make_engine(url)
        return _engines[key]


def embedder() -> vs.Embedder:
    """The process's embedder, from ``settings.VECTORSTORE_MODEL``."""
    model: str = getattr(settings, "VECTORSTORE_MODEL", vs.DEFAULT_MODEL_NAME)
    with _lock:
        if model not in _embedders:
            _embedders[model] = (
                vs.HashingTestEmbedder() if model == "hashing"
                else vs.SentenceTransformerEmbedder(model)
            )  # fmt: skip
        return _embedders[model]


def repository(session: Session) -> vs.DocumentRepository[vs.Document]:
    """A repository on ``session`` for ``settings.VECTORSTORE_COLLECTION``."""
    return vs.DocumentRepository(
        session, collection=getattr(settings, "VECTORSTORE_COLLECTION", "documents"),
        embedder=embedder(),
    )  # fmt: skip


def dispose_all() -> None:
    """Close every pooled connection (tests, or before forking workers)."""
    with _lock:
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()
