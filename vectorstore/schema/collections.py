"""Collections: find one, create one in the caller's transaction, check what may write to it.

A collection records which embedding model and dimension produced its
vectors.  It is created by the first write into it, *in that write's
transaction*: a first ``bulk_add`` that fails on its last row leaves no
collection behind, bound to a model that never stored a vector.  Reads of a
missing collection create it at once (they have no transaction to share),
unless the repository was built with ``create=False``.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from vectorstore._target import CollectionSpec
from vectorstore.embedders import Embedder
from vectorstore.errors import (
    CollectionNotFoundError,
    DimensionMismatchError,
    EmbeddingModelMismatchError,
)
from vectorstore.models import Collection
from vectorstore.results import CollectionInfo

__all__ = ["CollectionSpec", "check_compatible", "create_or_find", "find"]


def find(session: Session, name: str) -> CollectionInfo | None:
    """The collection called ``name``, or None (one query, nothing written)."""
    row = session.execute(select(Collection).where(Collection.name == name)).scalar_one_or_none()
    return None if row is None else CollectionInfo(row.id, row.name, row.embedding_model,
                                                   row.dimension)  # fmt: skip


def create_or_find(
    session: Session, spec: CollectionSpec, embedder: Embedder | None
) -> CollectionInfo:
    """The collection, created in ``session``'s transaction if it does not exist yet.

    Two writers creating the same collection at once both succeed: the insert
    does nothing when the name exists, and both read the one row.

    Raises:
        CollectionNotFoundError: it does not exist and ``spec.create`` is False.
        DimensionMismatchError, EmbeddingModelMismatchError: it exists, for
            other vectors (see :func:`check_compatible`).
    """
    info = find(session, spec.name)
    if info is None:
        if not spec.create:
            raise CollectionNotFoundError(f"no collection named {spec.name!r}")
        session.execute(
            pg_insert(Collection)
            .values(
                name=spec.name,
                embedding_model=spec.recorded_model(embedder),
                dimension=spec.dimension,
            )
            .on_conflict_do_nothing(index_elements=["name"])
        )
        info = find(session, spec.name)
        assert info is not None  # inserted or found: the name is unique
    check_compatible(info, spec, embedder)
    return info


def check_compatible(info: CollectionInfo, spec: CollectionSpec, embedder: Embedder | None) -> None:
    """Refuse a model, dimension or embedder that would mix other vectors into ``info``.

    Raises:
        DimensionMismatchError: the column or the embedder makes vectors of
            another dimension than the collection holds.
        EmbeddingModelMismatchError: the embedder's model, or the explicit
            ``embedding_model``, is not the collection's.
    """
    if info.dimension != spec.dimension:
        raise DimensionMismatchError(
            f"collection {info.name!r} holds {info.dimension}-d vectors but "
            f"{spec.model_label}.embedding is {spec.dimension}-d"
        )
    if embedder is not None:
        if embedder.dimension != info.dimension:
            raise DimensionMismatchError(
                f"embedder {embedder.model_name!r} makes {embedder.dimension}-d "
                f"vectors; collection {info.name!r} holds {info.dimension}-d vectors"
            )
        if embedder.model_name != info.embedding_model:
            raise EmbeddingModelMismatchError(
                f"collection {info.name!r} was embedded with {info.embedding_model!r}; "
                f"refusing to mix in vectors from {embedder.model_name!r}"
            )
    if spec.embedding_model is not None and spec.embedding_model != info.embedding_model:
        raise EmbeddingModelMismatchError(
            f"collection {info.name!r} was embedded with {info.embedding_model!r}; "
            f"refusing vectors declared as {spec.embedding_model!r} (embedding_model=)"
        )
