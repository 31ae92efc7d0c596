"""A SQLAlchemy class mapped onto a Django model's table, for ``nearest(join=...)``.

Built from the model's ``_meta`` (its concrete fields' column names and
types), not by reflecting the database, so it costs no query and works
before the first request.  The classes live in a MetaData of their own:
alembic and ``create_all`` never see them.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
    Time,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from sqlalchemy.types import NullType, TypeEngine

import vectorstore as vs

__all__ = ["mapped"]

_TYPES: dict[str, TypeEngine[Any]] = {
    "AutoField": Integer(),
    "BigAutoField": BigInteger(),
    "SmallAutoField": SmallInteger(),
    "IntegerField": Integer(),
    "BigIntegerField": BigInteger(),
    "SmallIntegerField": SmallInteger(),
    "PositiveIntegerField": Integer(),
    "PositiveBigIntegerField": BigInteger(),
    "PositiveSmallIntegerField": SmallInteger(),
    "BooleanField": Boolean(),
    "CharField": Text(),
    "TextField": Text(),
    "SlugField": Text(),
    "EmailField": Text(),
    "URLField": Text(),
    "FilePathField": Text(),
    "FileField": Text(),
    "ImageField": Text(),
    "DateTimeField": DateTime(timezone=True),
    "DateField": Date(),
    "TimeField": Time(),
    "FloatField": Float(),
    "DecimalField": Numeric(),
    "JSONField": JSONB(),
    "UUIDField": Uuid(),
}

_lock = threading.Lock()
_registry = registry(metadata=MetaData())
_mapped: dict[Any, type[Any]] = {}


def _column_type(field: Any) -> TypeEngine[Any]:
    internal = field.get_internal_type()
    if internal in ("ForeignKey", "OneToOneField"):
        return _column_type(field.target_field)
    return _TYPES.get(internal, NullType())


def mapped(model: Any) -> type[Any]:
    """A SQLAlchemy class on ``model``'s table: one attribute per concrete field.

    Attributes are named as Django's ``attname`` (a foreign key ``author`` is
    ``author_id``).  Use it to join and filter in one ranking statement::

        Book = vectorstore.mapped(models.Book)
        hits = repo.nearest("whales", k=10, join=Book,
                            join_on=Book.id == vs.Document.metadata_["book_id"].as_integer(),
                            filter=Book.year < 1900)
        books = models.Book.objects.in_bulk([hit.extra.id for hit in hits])

    Raises:
        ConfigurationError: ``model`` is not a Django model class.
    """
    meta = getattr(model, "_meta", None)
    if meta is None or not hasattr(meta, "concrete_fields"):
        raise vs.ConfigurationError(f"mapped() takes a Django model class, got {model!r}")
    with _lock:
        found = _mapped.get(model)
        if found is not None:
            return found
        columns = [
            Column(field.column, _column_type(field), key=field.attname,
                   primary_key=bool(field.primary_key))
            for field in meta.concrete_fields
        ]  # fmt: skip
        table = Table(meta.db_table, _registry.metadata, *columns)
        cls = type(f"{model.__name__}Row", (), {"__doc__": f"Rows of {meta.db_table}."})
        _registry.map_imperatively(cls, table)
        _mapped[model] = cls
        return cls
