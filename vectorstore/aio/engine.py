"""Async engines: which URLs the async API takes, and :func:`make_async_engine`.

The async drivers are asyncpg (the default) and psycopg 3's async mode.  A URL
names its driver as for :func:`vectorstore.make_engine`; one that names none
(``postgresql://``), and the URL found in ``VECTORSTORE_DATABASE_URL`` or made
for the embedded server (a psycopg2 URL), get ``asyncpg``.  psycopg2 given
explicitly is refused: it has no asyncio mode.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqlalchemy import URL, make_url
from sqlalchemy.exc import ArgumentError

from vectorstore.config import normalize_url, resolve_url
from vectorstore.errors import ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["ASYNC_DRIVERS", "make_async_engine", "normalize_async_url", "sqlalchemy_asyncio"]

#: Async drivers the async API supports, the default first.
ASYNC_DRIVERS = ("asyncpg", "psycopg")
_ALIASES = {"psycopg_async": "psycopg"}


def sqlalchemy_asyncio() -> ModuleType:
    """``sqlalchemy.ext.asyncio``, imported on first use (it needs greenlet).

    ``import vectorstore`` works without greenlet; the async API then says
    which extra to install.
    """
    try:
        import sqlalchemy.ext.asyncio as module
    except ImportError as exc:
        raise MissingDependencyError(
            "the async API needs SQLAlchemy's asyncio support (greenlet) and an async "
            "driver: pip install 'vectorstore[async]'"
        ) from exc
    return module


def normalize_async_url(url: str | URL) -> URL:
    """Parse ``url`` and make its async driver explicit (``postgresql+asyncpg`` by default).

    Raises:
        ConfigurationError: the URL is malformed, not PostgreSQL, or names a
            driver without asyncio support.
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError) as exc:
        raise ConfigurationError("database URL could not be parsed") from exc
    backend, _, driver = parsed.drivername.partition("+")
    driver = _ALIASES.get(driver, driver) or ASYNC_DRIVERS[0]
    if backend in ("postgresql", "postgres") and driver not in ASYNC_DRIVERS:
        raise ConfigurationError(
            f"PostgreSQL driver {driver!r} has no asyncio support; "
            f"use one of {', '.join(ASYNC_DRIVERS)} (postgresql+asyncpg://...)"
        )
    # The sync checks (PostgreSQL only, valid ports) on the same URL, then our driver back.
    checked = normalize_url(parsed.set(drivername=f"{backend}+psycopg"))
    return checked.set(drivername=f"postgresql+{driver}")


def _resolve(url: str | URL | None) -> URL:
    if url is not None and str(url) != "":
        return normalize_async_url(url)
    # The environment's or the embedded server's URL, with the default async driver.
    found = resolve_url(None)
    driver = found.drivername.partition("+")[2]
    return found.set(
        drivername=f"postgresql+{driver if driver in ASYNC_DRIVERS else ASYNC_DRIVERS[0]}"
    )


def make_async_engine(url: str | URL | None = None, **kwargs: Any) -> AsyncEngine:
    """Create an AsyncEngine for ``url`` (explicit > ``VECTORSTORE_DATABASE_URL`` > embedded).

    As :func:`vectorstore.make_engine`, connections are pre-pinged.

    Raises:
        ConfigurationError: the URL cannot work (see :func:`normalize_async_url`),
            or SQLAlchemy refused it or ``kwargs`` (password masked).
    """
    kwargs.setdefault("pool_pre_ping", True)
    resolved = _resolve(url)
    try:
        engine: AsyncEngine = sqlalchemy_asyncio().create_async_engine(resolved, **kwargs)
        return engine
    except ArgumentError as exc:
        message = str(exc)
        if resolved.password:
            message = message.replace(str(resolved.password), "***")
        raise ConfigurationError(f"could not create an engine: {message}") from exc
