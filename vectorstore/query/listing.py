"""Filter-scoped reads: count, exists, get_many, a keyset-paged list, and a streaming iterate.

Pages are keyset pages, never OFFSET: a page asks for rows *after* the last
row of the previous page in the sort order (``(created_at, id) > (:t, :i)``),
so page 1,000 costs what page 1 costs (an OFFSET scan reads and throws away
every row before it), and a row inserted while a caller pages never shifts
the rows after it into a page already read or out of the next one.  The sort
always ends on ``id``, which is unique, so the order is total.

The cursor a :class:`Page` hands back (``next_after``) is an opaque string
(URL-safe: it can travel in a query string); it names the sort order it was
made for, and a cursor of another order, or one that is not a cursor at all,
is a :class:`~vectorstore.ValidationError`.

:func:`iterate` walks the whole collection (or a filter's rows) in id order
one keyset chunk at a time, each chunk its own short read, so memory holds
one chunk whatever the collection's size and no server-side cursor stays
open between chunks (it works the same in the host's Session, standalone,
and through the async bridge).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, exists, func, or_, select, tuple_
from sqlalchemy.orm import defer

from vectorstore._target import Target
from vectorstore.errors import ValidationError
from vectorstore.results import Page

from .filters import FilterLike, compile_filter
from .shadow import shadow_condition

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_PAGE_SIZE",
    "ORDERS",
    "Order",
    "check_positive",
    "count",
    "exists_any",
    "get_many",
    "iterate",
    "list_page",
    "scope",
]

#: Rows per page of ``list`` unless ``limit=`` says otherwise.
DEFAULT_PAGE_SIZE = 100
#: Rows per chunk of ``iterate``.
DEFAULT_CHUNK = 1_000
Order = Literal["id", "-id", "created_at", "-created_at"]
#: The sort orders ``list`` takes ("-" is descending; ties broken by id).
ORDERS: tuple[str, ...] = ("id", "-id", "created_at", "-created_at")


def check_positive(value: Any, name: str) -> int:
    """``value`` as a positive integer, or a ValidationError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationError(f"{name} must be a positive integer, got {value!r}")
    return value


def scope(
    target: Target[Any], filter: FilterLike, *, semi_join: bool = True
) -> ColumnElement[bool]:
    """This collection's rows, narrowed by ``filter`` (compiled; FilterError when malformed).

    ``semi_join=False`` leaves out the ``metadata_index = "table"`` layout's
    semi-join (for a caller that picks candidates from the shadow itself:
    :func:`.shadow.shadow_batches`).
    """
    compiled = compile_filter(filter, target.model)
    own: ColumnElement[bool] = target.model.collection_id == target.collection_id
    if compiled is None:
        return own
    # metadata_index = "table": the shadow's GIN index
    semi = shadow_condition(target, filter) if semi_join else None
    return own & compiled if semi is None else own & compiled & semi


def count(target: Target[Any], filter: FilterLike = None) -> int:
    """How many documents of the collection ``filter`` matches (all without one)."""
    where = scope(target, filter)
    stmt = select(func.count()).select_from(target.model).where(where)

    def read() -> int:
        with target.sessions.read("count") as session:
            return int(session.execute(stmt).scalar_one())

    return target.sessions.retry_read(read)


def exists_any(target: Target[Any], filter: FilterLike) -> bool:
    """True when at least one document matches ``filter`` (stops at the first)."""
    stmt = select(exists().where(scope(target, filter)))

    def read() -> bool:
        with target.sessions.read("exists") as session:
            return bool(session.execute(stmt).scalar_one())

    return target.sessions.retry_read(read)


def get_many(target: Target[Any], ids: Sequence[int], external_ids: Sequence[str]) -> list[Any]:
    """Documents by id and by external id, in the order asked (missing ones left out).

    A document named twice (by both keys, or repeated) comes back once, at
    its first place.
    """
    model = target.model
    keys = []
    if ids:
        keys.append(model.id.in_(list(ids)))
    if external_ids:
        keys.append(model.external_id.in_(list(external_ids)))
    if not keys:
        return []
    stmt = select(model).where(model.collection_id == target.collection_id, or_(*keys))

    def read() -> Sequence[Any]:
        with target.sessions.read("get") as session:
            return session.scalars(stmt).all()

    rows = target.sessions.retry_read(read)
    by_id = {row.id: row for row in rows}
    by_ext = {row.external_id: row for row in rows if row.external_id is not None}
    out: list[Any] = []
    seen: set[int] = set()
    for row in [by_id.get(i) for i in ids] + [by_ext.get(e) for e in external_ids]:
        if row is not None and row.id not in seen:
            seen.add(row.id)
            out.append(row)
    return out


def _encode(order: str, value: Any, last_id: int) -> str:
    shown = value.isoformat() if isinstance(value, datetime) else value
    raw = json.dumps([order, shown, last_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: Any, order: str) -> tuple[Any, int]:
    bad = ValidationError(f"after= is not a cursor of a list ordered by {order!r}: {cursor!r}")
    if not isinstance(cursor, str) or not cursor or len(cursor) > 1000:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, value, last_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise bad from exc
    if made_for != order or isinstance(last_id, bool) or not isinstance(last_id, int):
        raise bad
    if order.lstrip("-") == "created_at":
        try:
            value = datetime.fromisoformat(value)
        except (TypeError, ValueError) as exc:
            raise bad from exc
    return value, last_id


def list_page(
    target: Target[Any],
    filter: FilterLike,
    *,
    order_by: str,
    limit: int,
    after: str | None,
    with_embedding: bool = False,
) -> Page[Any]:
    """One keyset page of the documents ``filter`` matches, sorted by ``order_by``."""
    if order_by not in ORDERS:
        raise ValidationError(f"order_by must be one of {', '.join(ORDERS)}; got {order_by!r}")
    n = check_positive(limit, "limit")
    model = target.model
    descending = order_by.startswith("-")
    name = order_by.lstrip("-")
    where = scope(target, filter)
    if name == "id":
        keys: list[Any] = [model.id]
    else:
        keys = [getattr(model, name), model.id]
    if after is not None:
        value, last_id = _decode(after, order_by)
        current = tuple_(*keys) if len(keys) > 1 else keys[0]
        bound = tuple_(value, last_id) if len(keys) > 1 else last_id
        where = where & (current < bound if descending else current > bound)
    ordering = [k.desc() if descending else k.asc() for k in keys]
    stmt = select(model).where(where).order_by(*ordering).limit(n + 1)
    if not with_embedding:
        stmt = stmt.options(defer(model.embedding))

    def read() -> Sequence[Any]:
        with target.sessions.read("list") as session:
            return session.scalars(stmt).all()

    rows = list(target.sessions.retry_read(read))
    if len(rows) <= n:
        return Page(rows, None)
    rows = rows[:n]
    last = rows[-1]
    return Page(rows, _encode(order_by, getattr(last, name), last.id))


def iterate(
    target: Target[Any], filter: FilterLike, *, chunk: int, with_embedding: bool = True
) -> Iterator[list[Any]]:
    """The documents ``filter`` matches in id order, one list of at most ``chunk`` at a time."""
    n = check_positive(chunk, "chunk")
    where = scope(target, filter)
    model = target.model
    last: int | None = None
    while True:
        bounded = where if last is None else where & (model.id > last)
        stmt = select(model).where(bounded).order_by(model.id).limit(n)
        if not with_embedding:
            stmt = stmt.options(defer(model.embedding))

        def read(stmt: Any = stmt) -> Sequence[Any]:
            with target.sessions.read("iterate") as session:
                # The Session's identity map holds rows weakly: a chunk the caller
                # let go of is freed, in the host's Session too.
                return session.scalars(stmt).all()

        rows = list(target.sessions.retry_read(read))
        if rows:
            yield rows
        if len(rows) < n:
            return
        last = rows[-1].id
