"""Changing stored documents: ``update`` one, ``update_where`` / ``delete_where`` many.

One document (:func:`update_one`) is one ``UPDATE ... RETURNING`` keyed by id
or external id.  A new ``text`` gets its content hash recomputed here and its
full-text column by PostgreSQL (it is generated from ``text``, or the index
is on the expression); its embedding comes from ``embedding=`` or the
target's embedder, and a text change with neither is refused, so a stored
vector never describes a text the row no longer holds.  Metadata is replaced
(``metadata = :doc``) or merged (``metadata || :doc``, jsonb's top-level
merge: keys of the patch win, other keys stay).

Many documents (:func:`update_where`, :func:`delete_where`) are changed in
batches of at most ``batch_size`` rows, walked in id order::

    UPDATE t SET ... WHERE id IN (
        SELECT id FROM t WHERE collection_id = :c AND <filter> AND id > :last
        ORDER BY id LIMIT :n FOR UPDATE) RETURNING id

Standalone, each batch is its own transaction, so a call never holds row
locks on more than ``batch_size`` rows at once (concurrent writers and
``nearest`` wait on at most one batch).  The price: a call that fails midway
(a lost connection) leaves the batches before it applied; everything the
caller can get wrong (the filter, the metadata) is checked before the first
statement, so a bad call changes nothing.  Inside the host's Session every
batch runs in one SAVEPOINT of the host's transaction (all or nothing, and
never committed); PostgreSQL keeps row locks until the host's transaction
ends, so there the bound is the host's to keep.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Select, bindparam, delete, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB

from vectorstore._target import Target
from vectorstore.errors import (
    ConfigurationError,
    ConflictError,
    DocumentNotFoundError,
    ValidationError,
)
from vectorstore.schema.collections import pin_collection_id

from .batch import Record, batches_from_records

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DocumentChange",
    "check_batch_rows",
    "check_metadata_patch",
    "delete_where",
    "document_key",
    "prepare_change",
    "update_one",
    "update_where",
]

#: Rows one batch of ``update_where`` / ``delete_where`` locks and changes.
DEFAULT_BATCH_ROWS = 1_000
_PLACEHOLDER_TEXT = "-"


@dataclass(frozen=True)
class DocumentChange:
    """A validated change of one document (None: leave that column as it is)."""

    text: str | None
    content_hash: bytes | None
    metadata: dict[str, Any] | None
    merge: bool
    embedding: list[float] | None

    def values(self, model: Any) -> dict[str, Any]:
        """The SET clause of the UPDATE."""
        values: dict[str, Any] = {}
        if self.text is not None:
            values["text"] = self.text
            values["content_hash"] = self.content_hash
        if self.metadata is not None:
            doc = bindparam(None, self.metadata, type_=JSONB)
            values["metadata_"] = model.metadata_.op("||")(doc) if self.merge else doc
        if self.embedding is not None:
            values["embedding"] = self.embedding
        return values


def document_key(key: Any) -> tuple[str, int | str]:
    """``("id", 7)`` for an integer id, ``("external_id", "sku-1")`` for a string."""
    if isinstance(key, bool):
        raise ValidationError("a document is named by its integer id or its external id string")
    if isinstance(key, int | np.integer):
        return "id", int(key)
    if isinstance(key, str):
        if not key:
            raise ValidationError("an external id must be a non-empty string")
        return "external_id", key
    raise ValidationError(
        f"a document is named by its integer id or its external id string, got {type(key).__name__}"
    )


def prepare_change(
    target: Target[Any],
    *,
    text: str | None,
    metadata: Mapping[str, Any] | None,
    merge: bool,
    embedding: Any,
) -> DocumentChange:
    """Validate a change with the write path's own checks, embedding a new text if needed.

    Raises:
        ValidationError: nothing to change, or a bad text, metadata or embedding.
        DimensionMismatchError: the embedding (given or computed) has the wrong dimension.
        ConfigurationError: a new text without an embedding and no embedder.
    """
    if text is None and metadata is None and embedding is None:
        raise ValidationError("update() needs text=, metadata= or embedding=")
    if not isinstance(merge, bool):
        raise ValidationError(f"merge must be True or False, got {merge!r}")
    if merge and metadata is None:
        raise ValidationError("merge=True needs metadata= (the keys to merge in)")
    vector = embedding
    if text is not None and vector is None and target.embedder is None:
        raise ConfigurationError(
            "a new text needs a new embedding, but this repository has no embedder; "
            "pass embedding=... with the text"
        )
    batch = next(
        batches_from_records(
            [Record(_PLACEHOLDER_TEXT if text is None else text, metadata, None, vector)],
            target.dimension,
            chunk_rows=1,
        )
    )
    if text is not None and batch.needs_embedding:
        assert target.embedder is not None
        batch.set_embeddings(np.array([0]), target.embedder.embed([text]))
    return DocumentChange(
        text=text if text is None else batch.texts[0],
        content_hash=None if text is None else batch.hashes[0],
        metadata=None if metadata is None else batch.metadata[0],
        merge=merge,
        embedding=None if batch.needs_embedding else batch.embeddings[0].tolist(),
    )


def _hold_collection(session: Any, target: Target[Any]) -> None:
    """Through an alias: hold it for this transaction, and refuse if it moved.

    The filter and ids were compiled for the collection the alias pointed to
    when the call began; a switch waits for this transaction, and one that
    committed before it began is refused rather than followed.
    """
    info = target.collection
    if info is None or info.alias is None:
        return
    if pin_collection_id(session, info.alias, info) != info.id:
        raise ConflictError(
            f"alias {info.alias!r} was switched to another collection during this call; "
            "no further rows were changed (repeat the call to change the new collection)"
        )


def update_one(target: Target[Any], key: int | str, change: DocumentChange) -> Any:
    """Apply ``change`` to the document ``key`` names; return the updated row.

    Raises:
        DocumentNotFoundError: no such document in the collection (nothing changed).
    """
    column, value = document_key(key)
    model = target.model
    stmt = (
        update(model)
        .where(model.collection_id == target.collection_id, getattr(model, column) == value)
        .values(**change.values(model))
        .returning(model)
        # populate_existing: a copy the host's Session loaded earlier gets the new values.
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    with target.sessions.write("update") as session:
        _hold_collection(session, target)
        row = session.scalars(stmt).one_or_none()
    if row is None:
        raise DocumentNotFoundError(
            f"no document with {column} {value!r} in collection {target.collection.name!r}"
            if target.collection is not None
            else f"no document with {column} {value!r}"
        )
    return row


def check_batch_rows(batch_size: Any) -> int:
    """``batch_size`` checked: a positive integer."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValidationError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


#: ``pick(last, n)``: a query of the next ``n`` candidate ids above ``last``
#: in id order (a superset of the matches in that range), for a layout whose
#: candidates are cheaper to find elsewhere (``metadata_index = "table"``).
Picker = Callable[[int, int], Select[tuple[int]]]


def _batched(
    target: Target[Any],
    where: ColumnElement[bool],
    make: Any,
    action: str,
    n: int,
    pick: Picker | None = None,
) -> int:
    """Run ``make(ids_condition)`` batch by batch in id order; total rows changed.

    Each batch locks (``FOR UPDATE``, in id order) at most ``n`` rows: the
    next ``n`` matches of ``where`` above the last batch's, or, with
    ``pick``, the matches among its next ``n`` candidates.
    """
    model = target.model
    sessions = target.sessions
    last = -(2**63)
    total = 0

    def one_batch(session: Any) -> tuple[list[int], int | None]:
        """The ids changed, and the id the next batch starts after (None: done)."""
        _hold_collection(session, target)
        bound: ColumnElement[bool] = model.id > literal(last)
        if pick is not None:
            candidates = list(session.execute(pick(last, n)).scalars())
            if not candidates:
                return [], None
            bound = model.id.in_(candidates)
        picked = select(model.id).where(where, bound).order_by(model.id).with_for_update()
        if pick is None:
            picked = picked.limit(n)
        stmt = make(model.id.in_(picked.scalar_subquery())).returning(model.id)
        # "fetch": copies of these rows in the host's Session are expired
        # (updated) or taken out of it (deleted), so it never serves stale rows.
        sync = "fetch" if not sessions.owns_transactions else False
        ids: list[int] = list(
            session.execute(stmt, execution_options={"synchronize_session": sync}).scalars()
        )
        if pick is not None:
            return ids, (max(candidates) if len(candidates) == n else None)
        return ids, (max(ids) if len(ids) == n else None)

    if sessions.owns_transactions:
        while True:
            with sessions.write(action) as session:
                ids, after = one_batch(session)
            total += len(ids)
            if after is None:
                return total
            last = after
    with sessions.write(action) as session:
        while True:
            ids, after = one_batch(session)
            total += len(ids)
            if after is None:
                return total
            last = after


def update_where(
    target: Target[Any],
    where: ColumnElement[bool],
    metadata: Any,
    *,
    merge: bool,
    batch_size: int = DEFAULT_BATCH_ROWS,
    pick: Picker | None = None,
) -> int:
    """Replace or merge the metadata of every document ``where`` matches; returns the count.

    ``where`` is the compiled filter, collection included (the repository
    compiles it with the query wing's filter compiler).  Rows whose metadata
    would not change (jsonb equality) are not written: an UPDATE that changes
    nothing still writes a new row version into every index, HNSW included,
    so re-applying an attribute refresh costs nothing the second time.  The
    count is of the rows that changed.
    """
    n = check_batch_rows(batch_size)
    check_metadata_patch(metadata, "merge_metadata" if merge else "set_metadata")
    change = prepare_change(target, text=None, metadata=metadata, merge=merge, embedding=None)
    values = change.values(target.model)
    model = target.model
    changing = where & model.metadata_.is_distinct_from(values["metadata_"])
    return _batched(target, changing, lambda cond: update(model).where(cond).values(**values),
                    "update_where", n, pick)  # fmt: skip


def delete_where(
    target: Target[Any],
    where: ColumnElement[bool],
    *,
    batch_size: int = DEFAULT_BATCH_ROWS,
    pick: Picker | None = None,
) -> int:
    """Delete every document ``where`` (compiled, collection included) matches; the count."""
    n = check_batch_rows(batch_size)
    model = target.model
    return _batched(target, where, lambda cond: delete(model).where(cond), "delete_where", n,
                    pick)  # fmt: skip


def check_metadata_patch(metadata: Any, what: str) -> Mapping[str, Any]:
    """``metadata`` must be a mapping (its content is checked with the write path's checks)."""
    if not isinstance(metadata, Mapping):
        raise ValidationError(f"{what} must be a mapping, got {type(metadata).__name__}")
    return metadata
