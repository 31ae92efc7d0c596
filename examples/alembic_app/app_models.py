"""The app's own tables: one references vectorstore's collections, one holds documents.

``ProductDoc`` is the app's own document table (``DocumentMixin``): its
columns, vector and HNSW / GIN indexes are migrated by the app's history
(``versions/a002_product_docs.py`` was written by ``alembic revision
--autogenerate`` and not edited), while vectorstore's own tables stay in
vectorstore's history.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, MetaData, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import vectorstore as vs
from vectorstore.models import NAMING_CONVENTION


class AppBase(DeclarativeBase):
    # vectorstore's convention names the mixin's indexes; the app keeps its own FK names.
    metadata = MetaData(
        naming_convention={**NAMING_CONVENTION, "fk": "fk_%(table_name)s_%(column_0_name)s"}
    )


class Product(AppBase):
    __tablename__ = "app_products"

    sku: Mapped[str] = mapped_column(Text, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    # A Column object, not a string: vectorstore's table lives in another MetaData.
    collection_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey(vs.Collection.__table__.c.id, ondelete="SET NULL")
    )


class ProductDoc(vs.DocumentMixin, AppBase):
    """Documents about products, in the app's table (pass ``model=ProductDoc`` to a repository)."""

    __tablename__ = "app_product_docs"
