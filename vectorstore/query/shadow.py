"""Reads of the ``metadata_index = "table"`` layout: the semi-join on the shadow's GIN index.

The documents table of that layout has no index on ``metadata``
(:mod:`vectorstore.metadata_table`), so a read whose speed comes from a
metadata index (an exact ranking of the filtered rows, a count, a page, the
batches of ``update_where``) adds::

    id IN (SELECT document_id FROM <table>_metadata
           WHERE collection_id = :c AND <the filter's metadata conjuncts>)

to the unchanged filter: the conjuncts compiled against the shadow's
``metadata``, whose GIN index serves them.  The whole filter is still
evaluated on the documents' own columns, so the result is the inline
layout's (the shadow only narrows which rows are looked at).  HNSW scans
filter row-wise and need no join: :func:`shadow_condition` is only asked
where it helps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, Table, any_, func, select
from sqlalchemy.dialects.postgresql import ARRAY

from vectorstore._target import Target
from vectorstore.metadata_table import metadata_table

from .filters import compile_metadata_filter, metadata_conjuncts

__all__ = ["matches_first", "shadow_batches", "shadow_condition"]

#: ``pick(last, n)``: the next ``n`` candidate ids above ``last``, in id order.
BatchPicker = Callable[[int, int], Select[tuple[int]]]


def _shadow_filter(target: Target[Any], spec: Any) -> tuple[Table, ColumnElement[bool]] | None:
    """``target``'s shadow table and ``spec``'s metadata conjuncts compiled against it."""
    shadow = metadata_table(target.model)
    if shadow is None:
        return None
    part = metadata_conjuncts(spec)
    if part is None:
        return None
    compiled = compile_metadata_filter(part, target.model, shadow.c.metadata)
    return None if compiled is None else (shadow, compiled)


def matches_first(
    target: Target[Any], shadow: Table, condition: ColumnElement[bool]
) -> ColumnElement[bool]:
    """``id = ANY(ARRAY(SELECT document_id FROM <shadow> WHERE <condition>))``.

    The shadow's matches are found first (an InitPlan on its GIN index) and
    the documents fetched by primary key.  PostgreSQL misjudges the size of
    ``id IN (SELECT ...)``: on 100,000 rows with a 1 % filter it walked half
    the documents' primary key into a merge join (19.6 ms against 8.8 ms).
    """
    ids = select(shadow.c.document_id).where(
        shadow.c.collection_id == target.collection_id, condition
    )
    found: ColumnElement[bool] = target.model.id == any_(
        func.array(ids.scalar_subquery(), type_=ARRAY(BigInteger))
    )
    return found


def shadow_condition(
    target: Target[Any], spec: Any, *, first: bool = False
) -> ColumnElement[bool] | None:
    """The semi-join on ``target``'s shadow table for ``spec``; None for the inline layout.

    None too when ``spec`` has no metadata conjunct (a filter on document
    columns only, a SQLAlchemy expression): nothing for the shadow's index.
    ``first=True`` (an exact ranking): :func:`matches_first`.
    """
    found = _shadow_filter(target, spec)
    if found is None:
        return None
    shadow, compiled = found
    if first:
        return matches_first(target, shadow, compiled)
    ids = select(shadow.c.document_id).where(
        shadow.c.collection_id == target.collection_id, compiled
    )
    semi: ColumnElement[bool] = target.model.id.in_(ids)
    return semi


def shadow_batches(target: Target[Any], spec: Any) -> BatchPicker | None:
    """Batches of candidate ids for ``update_where`` / ``delete_where``, read from the shadow.

    A batch of a change by filter is "the next ``n`` matching ids above the
    last one".  Through the semi-join the planner must join every match to
    sort them (a whole pass per batch); read from the shadow alone, the next
    ``n`` ids are a walk of its primary key (or of its GIN index, for a
    narrow filter).  The candidates are a superset of the matches in their
    id range (the filter's other conjuncts are checked on the documents), so
    the caller continues while a batch of candidates is full.  None for the
    inline layout, or a filter without a metadata conjunct.
    """
    found = _shadow_filter(target, spec)
    if found is None:
        return None
    shadow, compiled = found
    key = shadow.c.document_id
    own = shadow.c.collection_id == target.collection_id

    def pick(last: int, n: int) -> Select[tuple[int]]:
        return select(key).where(own, compiled, key > last).order_by(key).limit(n)

    return pick
