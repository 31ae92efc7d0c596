"""Validation of the names users supply: collection names and SQL identifiers.

Design decision: the two kinds of name are treated differently on purpose.

* A **collection name** is data: it is only ever sent as a bound parameter, so
  any printable text is safe.  We still refuse what PostgreSQL cannot store or
  what is certainly a mistake (empty, NUL, invalid Unicode, absurdly long), so
  the error is ours and clear rather than a driver's.
* A **table or schema name** of an app's document model becomes SQL text (DDL,
  ``COPY``, queries).  SQLAlchemy quotes identifiers, but a name such as
  ``docs; DROP TABLE x`` is never intended, and PostgreSQL silently truncates
  names over 63 bytes (two long names could then collide).  So identifiers must
  be plain: a letter or underscore, then letters, digits, ``_`` or ``$``, at most
  63 bytes.  They are quoted on use as well (defence in depth).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ValidationError

__all__ = [
    "MAX_COLLECTION_NAME",
    "MAX_IDENTIFIER_BYTES",
    "check_collection_name",
    "check_identifier",
    "check_model_identifiers",
]

#: PostgreSQL's NAMEDATALEN - 1: longer identifiers are silently truncated.
MAX_IDENTIFIER_BYTES = 63
#: Collection names are values, but a name is not a document.
MAX_COLLECTION_NAME = 200
_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def check_collection_name(name: Any) -> str:
    """Return ``name`` if it is usable as a collection name, else raise ValidationError."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("collection name must be a non-empty string")
    if "\x00" in name or len(name) > MAX_COLLECTION_NAME:
        raise ValidationError(
            f"collection name must be at most {MAX_COLLECTION_NAME} characters, without NUL"
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"collection name is not valid Unicode (lone surrogate at position {exc.start})"
        ) from exc
    return name


def check_identifier(name: Any, what: str) -> str:
    """Return ``name`` if it is a plain SQL identifier (see the module docstring).

    Args:
        name: the identifier, e.g. a model's ``__tablename__``.
        what: what it names, for the message (``"table name"``).

    Raises:
        ValidationError: the name is not a plain identifier of at most 63 bytes.
    """
    if not isinstance(name, str) or _PLAIN_IDENTIFIER.fullmatch(name) is None:
        raise ValidationError(
            f"{what} {name!r} is not a plain SQL identifier (a letter or '_', then letters, "
            "digits, '_' or '$')"
        )
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise ValidationError(
            f"{what} {name!r} is longer than PostgreSQL's {MAX_IDENTIFIER_BYTES}-byte identifier "
            "limit (it would be silently truncated)"
        )
    return name


def check_model_identifiers(model: Any) -> None:
    """Check the table name and schema of a mapped document model (see :func:`check_identifier`).

    Raises:
        ValidationError: ``model`` is not a mapped class, or its names are not plain.
    """
    table = getattr(model, "__table__", None)
    if table is None:
        raise ValidationError(f"model must be a mapped class using DocumentMixin, got {model!r}")
    check_identifier(table.name, "table name")
    if table.schema is not None:
        check_identifier(table.schema, "schema name")
