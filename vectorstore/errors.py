"""The exceptions vectorstore raises, in one shallow tree.

    VectorStoreError
    ├── ConfigurationError            settings that cannot work (bad URL, missing extra)
    │   └── MissingDependencyError    an optional extra is not installed
    ├── ServerError                   the embedded PostgreSQL could not start or stop
    ├── EmbedderError                 a model could not be loaded or failed to embed
    │   └── EmbedderQualityError      a backend's vectors failed the quality gate
    ├── SchemaError                   the database schema is missing, too old, or lacks pgvector
    │   └── ExtensionMissingError     pgvector is not installed or too old on the server
    ├── CollectionNotFoundError       (also LookupError)
    ├── DocumentNotFoundError         (also LookupError)
    ├── ValidationError               (also ValueError) bad user input, caught before writing
    │   ├── DimensionMismatchError    a vector's length differs from the column's dimension
    │   ├── EmbeddingModelMismatchError  an embedder other than the collection's model
    │   └── FilterError               a malformed metadata filter
    ├── ConflictError                 a unique external id already exists
    ├── DatabaseError                 a driver error, wrapped with context
    │   ├── ConnectionLostError       the server went away mid-call (the call may not have run)
    │   ├── QueryTimeoutError         statement_timeout or lock_timeout fired
    │   ├── ReadOnlyError             a write was sent through a read-only engine
    │   ├── ConcurrencyError          deadlock or serialization failure: retry the transaction
    │   └── StorageFullError          the server's disk is full: alert an operator
    ├── WriteError                    a buffered writer could not write some records
    └── IndexBuildError               an ANN index could not be (re)built

    VectorStoreWarning (UserWarning)
    ├── IndexMemoryWarning            an HNSW build's graph does not fit maintenance_work_mem
    └── UnindexedFilterWarning        no index serves a filter: nearest read a large collection

Driver errors are translated in exactly one place, :func:`translate_db_error`,
which classifies by SQLSTATE (the ``pgcode``/``sqlstate`` attribute of the
psycopg2 or psycopg 3 exception), never by matching message text.  Callers
always get ``raise ... from exc`` so the original driver error stays attached.

Every class has a ``retryable`` attribute: True only where running the same
call again, unchanged, is both safe and likely to succeed.  It is False on
:class:`VectorStoreError` and everything not listed here:

* :class:`ConcurrencyError` (class attribute True): the server aborted the
  transaction to break a deadlock (40P01) or to keep SERIALIZABLE /
  REPEATABLE READ isolation (40001).  Nothing of it was committed; retry the
  *whole transaction*: a standalone repository's call as it is, or, in the
  host app's Session, its unit of work from the start after a rollback.  The
  Session-bound repository's savepoint is rolled back, but the host's
  transaction still holds the locks (and the snapshot) that conflicted, so
  repeating only the repository call would meet the same conflict.
* :class:`QueryTimeoutError` (False; True on an instance for ``lock_timeout``,
  55P03): a ``statement_timeout`` fires again on the same statement, so it is
  a budget to raise or a query to change; a lock wait that timed out depends
  on another transaction and may well succeed later.
* :class:`ConnectionLostError` (False): a *write* whose connection broke may
  have committed (the COMMIT reached the server but its answer did not reach
  us), so it is not blindly retryable: check first, or re-run it idempotently
  (external ids with ``on_conflict="skip"``).  A *read* is safe to repeat -
  a standalone repository already retries one once on a fresh connection.
* :class:`StorageFullError` (False): nothing succeeds until space is freed.

Not mapped, on purpose: 53200 (out_of_memory) and 53300 (too_many_connections)
stay a plain :class:`DatabaseError` (with ``sqlstate`` set).  An
out-of-memory failure is as often caused by the query itself (a large
``maintenance_work_mem`` for an index build) as by load, so neither "retry"
nor "alert" is right by default; too many connections is refused while
connecting, where neither driver reports a SQLSTATE, and so surfaces as a
:class:`ConnectionLostError`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from sqlalchemy import exc as sa_exc

__all__ = [
    "CollectionNotFoundError",
    "ConcurrencyError",
    "ConfigurationError",
    "ConflictError",
    "ConnectionLostError",
    "DatabaseError",
    "DimensionMismatchError",
    "DocumentNotFoundError",
    "EmbedderError",
    "EmbedderQualityError",
    "EmbeddingModelMismatchError",
    "ExtensionMissingError",
    "FilterError",
    "IndexBuildError",
    "IndexMemoryWarning",
    "MissingDependencyError",
    "QueryTimeoutError",
    "ReadOnlyError",
    "SchemaError",
    "ServerError",
    "StorageFullError",
    "UnindexedFilterWarning",
    "ValidationError",
    "VectorStoreError",
    "VectorStoreWarning",
    "VerificationError",
    "WriteError",
    "db_errors",
    "driver_error",
    "printable",
    "sqlstate",
    "translate_db_error",
]


class VectorStoreError(Exception):
    """Base class of every error vectorstore raises on purpose.

    Attributes:
        retryable: True when running the same call (or, for
            :class:`ConcurrencyError`, the same transaction) again unchanged is
            safe and may succeed; see the module docstring for each class.
    """

    retryable: bool = False


class ConfigurationError(VectorStoreError):
    """Settings that cannot work: a malformed URL, an unsupported driver."""


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional dependency (an extra) is needed for this feature."""


class ServerError(VectorStoreError):
    """The embedded PostgreSQL server could not be started, reached or stopped."""


class EmbedderError(VectorStoreError):
    """An embedding model could not be loaded (e.g. a hub name while offline) or failed."""


class EmbedderQualityError(EmbedderError):
    """A faster backend's vectors are not torch fp32's: refused by the quality gate."""


class SchemaError(VectorStoreError):
    """The database schema is missing or does not match what this version needs."""


class ExtensionMissingError(SchemaError):
    """pgvector is not available on the server, or is too old."""


class CollectionNotFoundError(VectorStoreError, LookupError):
    """No collection has the requested name."""


class DocumentNotFoundError(VectorStoreError, LookupError):
    """No document has the requested id."""


class ValidationError(VectorStoreError, ValueError):
    """User input that cannot be stored or searched; raised before anything is written.

    Attributes:
        row: the position of the offending record in the input, when there is one.
        external_id: its external id, when it has one.
    """

    def __init__(
        self, message: str, *, row: int | None = None, external_id: str | None = None
    ) -> None:
        self.row = row
        self.external_id = external_id
        where = []
        if row is not None:
            where.append(f"row {row}")
        if external_id is not None:
            where.append(f"external_id {external_id!r}")
        message = printable(message)
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.reason = message


class DimensionMismatchError(ValidationError):
    """A vector's length differs from the dimension of the embedding column."""


class EmbeddingModelMismatchError(ValidationError):
    """The embedder's model is not the model that produced the collection's vectors."""


class FilterError(ValidationError):
    """A metadata filter is malformed: unknown operator, wrong operand type, bad shape."""


class ConflictError(VectorStoreError):
    """A document with the same external id already exists in the collection."""


class DatabaseError(VectorStoreError):
    """A database error, wrapped with what vectorstore was doing.

    Attributes:
        sqlstate: the five-character SQLSTATE code, when the driver reported one.
    """

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class ConnectionLostError(DatabaseError):
    """The connection to the server broke; the operation may or may not have run.

    Not retryable as such (``retryable`` is False): a write whose connection
    broke may have committed, so re-sending it blindly could write twice.
    Re-run a write idempotently (external ids and ``on_conflict="skip"``) or
    check what it left; a read can simply be repeated.
    """


class QueryTimeoutError(DatabaseError):
    """The statement was cancelled by statement_timeout, lock_timeout or a user cancel.

    ``retryable`` is False for a statement timeout or a cancel (the same
    statement runs out of time again) and True on an instance whose SQLSTATE is
    55P03 (``lock_timeout``): the lock holder may be gone on the next attempt.
    """

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message, sqlstate=sqlstate)
        if sqlstate in _LOCK_TIMEOUT_CODES:
            self.retryable = True  # per instance: see the docstring


class ReadOnlyError(DatabaseError):
    """A write was attempted on a read-only connection (e.g. a replica)."""


class ConcurrencyError(DatabaseError):
    """The server aborted the transaction: a deadlock (40P01) or a serialization failure (40001).

    Nothing of the transaction was committed.  Retry the whole transaction, not
    only the statement that failed: for a standalone repository that is the
    same call again; inside the host app's Session, roll the Session back and
    run its unit of work again from the start (its earlier statements still
    hold the locks and snapshot that conflicted).  Bound and space the retries
    (a short random back-off): the other transaction may still be running.
    """

    retryable: bool = True


class StorageFullError(DatabaseError):
    """The server ran out of disk space (SQLSTATE 53100); the statement was rolled back.

    Not retryable: nothing succeeds until an operator frees space or grows the
    volume, so this is the error to alert on.
    """


class WriteError(VectorStoreError):
    """A buffered writer failed to write some records.

    Attributes:
        unwritten: the records that were not written, in order, so they can be retried.
    """

    def __init__(self, message: str, *, unwritten: Sequence[Any]) -> None:
        super().__init__(message)
        self.unwritten = list(unwritten)


class VerificationError(VectorStoreError):
    """A re-embedding's checks failed (row counts, or the sample of nearest results).

    Nothing was switched: readers stay on the old collection, and the new one
    is kept as built so that a second run resumes it.
    """


class IndexBuildError(VectorStoreError):
    """An ANN index could not be created or rebuilt; the table's rows are untouched.

    Attributes:
        definitions: the ``CREATE INDEX`` statements that did not complete, so
            that ``vectorstore.rebuild_ann_indexes`` can run them again.
    """

    def __init__(self, message: str, *, definitions: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.definitions = list(definitions)


class VectorStoreWarning(UserWarning):
    """Base class of the warnings vectorstore emits (something works, but worse than it could)."""


class IndexMemoryWarning(VectorStoreWarning):
    """An HNSW build's graph does not fit in ``maintenance_work_mem``: the build spills.

    The build still completes, several times slower.  Raised as a warning
    before a build whose estimated graph is larger than the setting, and when
    pgvector reports during a build that the graph no longer fits.
    Attributes: ``needed`` (estimated bytes, or None when only pgvector's
    notice was seen) and ``available`` (the setting's bytes, or None).
    """

    def __init__(self, message: str, *, needed: int | None = None,
                 available: int | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.needed = needed
        self.available = available


# SQLSTATE classes, see the PostgreSQL manual, appendix A "Error codes".
_CONNECTION_CLASSES = ("08", "57P01", "57P02", "57P03")
_TIMEOUT_CODES = ("57014", "55P03", "25P03")
_LOCK_TIMEOUT_CODES = ("55P03",)
_READ_ONLY_CODES = ("25006",)
# serialization_failure, deadlock_detected: the transaction was rolled back and
# can be retried.  Other class-40 codes (40002 a deferred constraint failing at
# commit, 40003 statement completion unknown) are not transient.
_CONCURRENCY_CODES = ("40001", "40P01")
_DISK_FULL_CODES = ("53100",)
_UNIQUE_VIOLATION = "23505"
_UNDEFINED_OBJECT_CODES = ("42P01", "42704", "42883", "3F000")
# Class 22 (data exception) and 23 (integrity constraint violation, other than
# the unique violation that the conflict policy reports): a problem of one
# row's value, reported as a ValidationError naming the row when it is known.
_DATA_CLASSES = ("22", "23")


def driver_error(exc: BaseException) -> BaseException:
    """The DB-API exception behind a SQLAlchemy one (``exc`` itself when raw)."""
    return getattr(exc, "orig", None) or exc


def sqlstate(exc: BaseException) -> str | None:
    """The five-character SQLSTATE of a psycopg2 / psycopg 3 error (or SQLAlchemy's wrapper)."""
    orig = driver_error(exc)
    for attr in ("sqlstate", "pgcode"):
        code = getattr(orig, attr, None)
        if isinstance(code, str) and code:
            return code
    diag = getattr(orig, "diag", None)
    code = getattr(diag, "sqlstate", None)
    return code if isinstance(code, str) and code else None


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\n``, ``\\x1b``, ``\\ud800``).

    Error messages quote user input and server text; a raw newline, escape
    sequence or lone surrogate would split a log line, drive a terminal or fail
    to encode.  Printable text (any script) is returned unchanged.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _driver_message(exc: BaseException) -> str:
    orig = driver_error(exc)
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    lines = str(orig).strip().splitlines()
    message = primary or (lines[0] if lines else type(orig).__name__)
    detail = getattr(diag, "message_detail", None)
    if detail is None:
        found = getattr(orig, "detail", None)  # asyncpg keeps DETAIL on the exception
        detail = found if isinstance(found, str) else None
    if detail:
        message += f"; {detail}"
    # The server's text may quote the offending value verbatim.
    return printable(message)


def translate_db_error(
    exc: BaseException,
    action: str,
    *,
    row: int | None = None,
    external_id: str | None = None,
) -> VectorStoreError:
    """Map a driver or SQLAlchemy error to vectorstore's tree, by SQLSTATE.

    This is the one classifier of driver errors.  With ``row`` (the input row a
    COPY failed on, from the server's CONTEXT line) the error names that row:
    a data or constraint error becomes a :class:`ValidationError` of the row, a
    duplicate external id a :class:`ConflictError` naming it.

    Args:
        exc: the exception raised by SQLAlchemy or the DB-API driver.
        action: what vectorstore was doing, e.g. ``"bulk_add into 'docs'"``.
        row: the input row the server rejected, when known.
        external_id: that row's external id, when it has one.
    """
    if isinstance(exc, VectorStoreError):
        return exc
    code = sqlstate(exc)
    reason = _driver_message(exc)
    suffix = f" (SQLSTATE {code})" if code is not None else ""
    data_error = code is not None and code.startswith(_DATA_CLASSES) and code != _UNIQUE_VIOLATION
    if row is not None and data_error:
        return ValidationError(
            f"PostgreSQL rejected the row: {reason}{suffix}", row=row, external_id=external_id
        )
    where = ""
    if row is not None:
        where = f" at row {row}" + (f", external_id {external_id!r}" if external_id else "")
    message = f"{action} failed{where}: {reason}{suffix}"
    if code is not None and code.startswith(_CONNECTION_CLASSES):
        return ConnectionLostError(message, sqlstate=code)
    if code in _TIMEOUT_CODES:
        return QueryTimeoutError(message, sqlstate=code)
    if code in _READ_ONLY_CODES:
        return ReadOnlyError(message, sqlstate=code)
    if code in _CONCURRENCY_CODES:
        return ConcurrencyError(
            message + ". The transaction was rolled back; retry the whole transaction.",
            sqlstate=code,
        )
    if code in _DISK_FULL_CODES:
        return StorageFullError(message, sqlstate=code)
    if code == _UNIQUE_VIOLATION:
        return ConflictError(message)
    if code in _UNDEFINED_OBJECT_CODES:
        return SchemaError(
            message + ". Is the schema migrated? Run `vectorstore db upgrade` "
            "or vectorstore.migrate(url)."
        )
    if code is None and _is_disconnect(exc):
        return ConnectionLostError(message)
    return DatabaseError(message, sqlstate=code)


def _is_disconnect(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    name = type(driver_error(exc)).__name__
    return name in {"OperationalError", "InterfaceError"}


def _earlier_loss(exc: BaseException, before: BaseException | None) -> ConnectionLostError | None:
    """The ConnectionLostError that ``exc`` was raised while handling, if it arose in the block.

    When a write loses its connection, leaving the transaction (a ROLLBACK on
    the dead connection) fails too, with "connection already closed": an error
    that says nothing the first one did not, and hides the server's reason.
    ``before`` is the exception already being handled when the block began; a
    loss from there (a caller retrying inside ``except ConnectionLostError``)
    is not this block's and is never substituted.
    """
    seen: set[int] = set()
    link = exc.__context__
    while link is not None and id(link) not in seen:
        if link is before:
            return None
        if isinstance(link, ConnectionLostError):
            return link
        seen.add(id(link))
        link = link.__context__
    return None


def _raise_translated(exc: BaseException, action: str, before: BaseException | None) -> NoReturn:
    error = translate_db_error(exc, action)
    if isinstance(error, ConnectionLostError):
        earlier = _earlier_loss(exc, before)
        if earlier is not None:
            # Keep the first loss's own cause; the failed cleanup stays its __context__.
            raise earlier from earlier.__cause__
    raise error from exc


@contextmanager
def db_errors(action: str) -> Iterator[None]:
    """Translate any driver error raised in the block into vectorstore's tree.

    A connection loss reported again while the block cleans up (the rollback
    of a transaction whose connection is gone) re-raises the first report,
    which carries the reason, instead of "connection already closed".
    """
    before = sys.exc_info()[1]
    try:
        yield
    except VectorStoreError:
        raise
    except (sa_exc.DBAPIError, sa_exc.OperationalError) as exc:
        _raise_translated(exc, action, before)
    except Exception as exc:
        # Raw DB-API errors (the COPY path talks to the driver directly).
        if sqlstate(exc) is not None or type(exc).__module__.startswith(("psycopg", "psycopg2")):
            _raise_translated(exc, action, before)
        raise


class UnindexedFilterWarning(VectorStoreWarning):
    """No index serves a filter, so nearest ranked a large collection by reading all of it.

    Emitted once per process for each collection and set of unserved fields,
    when nearest chose the exact ranking of a filter that no index narrows on
    a collection of at least ``FULL_READ_WARN_ROWS`` rows (a range on a
    metadata key without a btree, a condition on a column without one,
    ``$ne``, ``$nin``, ``$exists``, a pattern).  The results are exact; the
    cost is the whole collection per query.  The message names what to
    index.  Attributes: ``fields`` (each unserved field and its operators)
    and ``rows`` (the collection's estimated rows).
    """

    def __init__(self, message: str, *, fields: Mapping[str, Sequence[str]], rows: int) -> None:
        super().__init__(message)
        self.fields = {k: tuple(v) for k, v in fields.items()}
        self.rows = rows
