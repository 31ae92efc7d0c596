"""Quoted SQL names of mapped tables, for DDL and catalog lookups written as text."""

from __future__ import annotations

from typing import Any

__all__ = ["quoted_table"]


def quoted_table(table: Any) -> str:
    """``table``'s name, schema-qualified when it has one, as a quoted SQL identifier.

    ``table``: a SQLAlchemy ``Table`` of a model whose names were checked when
    it was declared (``vectorstore._identifiers.check_model_identifiers``).
    """
    return f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'
