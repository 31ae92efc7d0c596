"""The partitioned layout of vectorstore's own documents table, for running the suite on it.

``VECTORSTORE_TEST_LAYOUT=partitioned`` (``make test-partitioned``) makes the
template database's ``vectorstore_documents`` LIST-partitioned by collection
(the layout a ``partition_by_collection = True`` model declares), so the
tests written against :class:`vectorstore.Document` run unchanged against
partitions: every collection they create gets its own partition and indexes.
"""

from __future__ import annotations

import os

from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase

import vectorstore as vs
from vectorstore.models import NAMING_CONVENTION

__all__ = ["LAYOUT", "PartitionedDocument", "make_partitioned", "partitioned_layout"]

LAYOUT = os.environ.get("VECTORSTORE_TEST_LAYOUT", "shared")


class _TwinBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class PartitionedDocument(vs.DocumentMixin, _TwinBase):
    """``vectorstore_documents`` as a partitioned table (same columns, same name)."""

    __tablename__ = "vectorstore_documents"
    partition_by_collection = True


def make_partitioned(conn: Connection) -> None:
    """Replace the migrated ``vectorstore_documents`` with its partitioned twin (empty)."""
    conn.execute(text("DROP TABLE vectorstore_documents"))
    _TwinBase.metadata.create_all(conn)


def partitioned_layout() -> bool:
    return LAYOUT == "partitioned"
