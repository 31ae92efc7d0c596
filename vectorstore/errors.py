"""The exceptions vectorstore raises, in one shallow tree.

    VectorStoreError
    ├── ConfigurationError            settings that cannot work (bad URL, missing extra)
    │   └── MissingDependencyError    an optional extra is not installed
    ├── ServerError                   the embedded PostgreSQL could not start or stop
    ├── EmbedderError                 a model could not be loaded or failed to embed
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
    │   └── ReadOnlyError             a write was sent through a read-only engine
    ├── WriteError                    a buffered writer could not write some records
    └── IndexBuildError               an ANN index could not be (re)built

Driver errors are translated in exactly one place, :func:`translate_db_error`,
which classifies by SQLSTATE (the ``pgcode``/``sqlstate`` attribute of the
psycopg2 or psycopg 3 exception), never by matching message text.  Callers
always get ``raise ... from exc`` so the original driver error stays attached.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import exc as sa_exc

__all__ = [
    "CollectionNotFoundError",
    "ConfigurationError",
    "ConflictError",
    "ConnectionLostError",
    "DatabaseError",
    "DimensionMismatchError",
    "DocumentNotFoundError",
    "EmbedderError",
    "EmbeddingModelMismatchError",
    "ExtensionMissingError",
    "FilterError",
    "IndexBuildError",
    "MissingDependencyError",
    "QueryTimeoutError",
    "ReadOnlyError",
    "SchemaError",
    "ServerError",
    "ValidationError",
    "VectorStoreError",
    "WriteError",
    "db_errors",
    "driver_error",
    "sqlstate",
    "translate_db_error",
]


class VectorStoreError(Exception):
    """Base class of every error vectorstore raises on purpose."""


class ConfigurationError(VectorStoreError):
    """Settings that cannot work: a malformed URL, an unsupported driver."""


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional dependency (an extra) is needed for this feature."""


class ServerError(VectorStoreError):
    """The embedded PostgreSQL server could not be started, reached or stopped."""


class EmbedderError(VectorStoreError):
    """An embedding model could not be loaded (e.g. a hub name while offline) or failed."""


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
    """The connection to the server broke; the operation may or may not have run."""


class QueryTimeoutError(DatabaseError):
    """The statement was cancelled by statement_timeout, lock_timeout or a user cancel."""


class ReadOnlyError(DatabaseError):
    """A write was attempted on a read-only connection (e.g. a replica)."""


class WriteError(VectorStoreError):
    """A buffered writer failed to write some records.

    Attributes:
        unwritten: the records that were not written, in order, so they can be retried.
    """

    def __init__(self, message: str, *, unwritten: Sequence[Any]) -> None:
        super().__init__(message)
        self.unwritten = list(unwritten)


class IndexBuildError(VectorStoreError):
    """An ANN index could not be created or rebuilt; the table's rows are untouched.

    Attributes:
        definitions: the ``CREATE INDEX`` statements that did not complete, so
            that ``vectorstore.rebuild_ann_indexes`` can run them again.
    """

    def __init__(self, message: str, *, definitions: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.definitions = list(definitions)


# SQLSTATE classes, see the PostgreSQL manual, appendix A "Error codes".
_CONNECTION_CLASSES = ("08", "57P01", "57P02", "57P03")
_TIMEOUT_CODES = ("57014", "55P03", "25P03")
_READ_ONLY_CODES = ("25006",)
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


def _driver_message(exc: BaseException) -> str:
    orig = driver_error(exc)
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    lines = str(orig).strip().splitlines()
    message = primary or (lines[0] if lines else type(orig).__name__)
    detail = getattr(diag, "message_detail", None)
    if detail:
        message += f"; {detail}"
    return message


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


@contextmanager
def db_errors(action: str) -> Iterator[None]:
    """Translate any driver error raised in the block into vectorstore's tree."""
    try:
        yield
    except VectorStoreError:
        raise
    except (sa_exc.DBAPIError, sa_exc.OperationalError) as exc:
        raise translate_db_error(exc, action) from exc
    except Exception as exc:
        # Raw DB-API errors (the COPY path talks to the driver directly).
        if sqlstate(exc) is not None or type(exc).__module__.startswith(("psycopg", "psycopg2")):
            raise translate_db_error(exc, action) from exc
        raise
