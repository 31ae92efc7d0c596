"""One safe retry of a read whose pooled connection turned out to be dead.

A pooled connection can die between two calls (``pg_terminate_backend``, a
server restart, a proxy's idle timeout).  Engines made by
:func:`vectorstore.make_engine` pre-ping and never hand out such a connection;
an engine built without ``pool_pre_ping`` hands it out and the first statement
fails.  For a *read* in a transaction the repository opened itself, running
the read once more on a fresh connection is safe: nothing was written, the
caller had received no row yet (the read's rows are materialised before it
returns) and the failed transaction held nothing of the caller's.

:func:`retry_read` retries exactly once and only when all of this holds:

* the repository owns its read transactions (``standalone`` or a read
  engine); a read inside the host app's Session is never retried, because the
  lost connection took the host's transaction with it;
* the error is a :class:`~vectorstore.ConnectionLostError` raised through
  SQLAlchemy with ``connection_invalidated`` set, i.e. SQLAlchemy recognised a
  disconnect and discarded the connection, so the retry gets another one.

Writes never go through here: a write whose connection broke may have
committed, so it always surfaces as ``ConnectionLostError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc

from .errors import ConnectionLostError

__all__ = ["retry_read"]

T = TypeVar("T")


def _owns_reads(repo: Any) -> bool:
    return getattr(repo, "_read_factory", None) is not None or (
        getattr(repo, "_factory", None) is not None
    )


def _invalidated(exc: BaseException) -> bool:
    cause = exc.__cause__
    return isinstance(cause, sa_exc.DBAPIError) and bool(cause.connection_invalidated)


def retry_read(repo: Any, read: Callable[[], T]) -> T:
    """Run ``read()``; once more if its connection proved dead (see the module docstring).

    ``read`` must open its own transaction, only read, and return fully
    materialised results.
    """
    try:
        return read()
    except ConnectionLostError as exc:
        if not (_owns_reads(repo) and _invalidated(exc)):
            raise
    return read()
