"""The app's own tables. One references vectorstore's collections table."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, MetaData, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import vectorstore as vs


class AppBase(DeclarativeBase):
    metadata = MetaData(naming_convention={"fk": "fk_%(table_name)s_%(column_0_name)s"})


class Product(AppBase):
    __tablename__ = "app_products"

    sku: Mapped[str] = mapped_column(Text, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    # A Column object, not a string: vectorstore's table lives in another MetaData.
    collection_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey(vs.Collection.__table__.c.id, ondelete="SET NULL")
    )
