"""The big-load fast path: drop the ANN index, load, rebuild it, ANALYZE."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

import vectorstore as vs
from vectorstore.schema.maintenance import (
    IndexBuildProgress,
    ann_index_definitions,
    build_indexes,
    drop_ann_indexes,
    rebuild_ann_indexes,
)

TABLE_NAME = "vectorstore_documents"
TABLE = vs.Document.__table__
HNSW = "ix_vectorstore_documents_embedding_hnsw"


def vectors(n: int) -> np.ndarray:  # type: ignore[type-arg]
    return np.random.default_rng(3).standard_normal((n, vs.DEFAULT_DIMENSION)).astype(np.float32)


# What a big load drops and rebuilds on the default table (the unique
# constraint's index and the primary key stay).
DROPPED = (
    "ix_vectorstore_documents_collection_id_content_hash",
    HNSW,
    "ix_vectorstore_documents_metadata",
    "ix_vectorstore_documents_text_search",
)
FK = "fk_vectorstore_documents_collection_id_vectorstore_collections"


def all_index_names(session: Session) -> set[str]:
    return set(
        session.execute(
            text("SELECT indexrelid::regclass::text FROM pg_index "
                 "WHERE indrelid = 'vectorstore_documents'::regclass")
        ).scalars()
    )  # fmt: skip


def index_names(session: Session) -> list[str]:
    return [name for name, _ in ann_index_definitions(session, TABLE)]


def test_definitions_are_read_from_pg_indexes(session: Session) -> None:
    found = ann_index_definitions(session, TABLE)
    assert [name for name, _ in found] == [HNSW]
    assert "USING hnsw" in found[0][1]
    assert "vector_cosine_ops" in found[0][1]


def test_drop_then_build_restores_the_same_index(session: Session) -> None:
    before = ann_index_definitions(session, TABLE)
    dropped = drop_ann_indexes(session, TABLE)
    assert index_names(session) == []
    build_indexes(session, dropped, table=TABLE_NAME, parallel_workers=0)
    assert ann_index_definitions(session, TABLE) == before


def test_build_settings_are_restored_afterwards(session: Session) -> None:
    before = session.execute(text("SHOW maintenance_work_mem")).scalar_one()
    dropped = drop_ann_indexes(session, TABLE)
    build_indexes(session, dropped, maintenance_work_mem="77MB", parallel_workers=1)
    assert session.execute(text("SHOW maintenance_work_mem")).scalar_one() == before


def test_bulk_add_with_rebuild_index_loads_rebuilds_and_analyzes(
    repo: vs.DocumentRepository[vs.Document], session: Session
) -> None:
    seen: list[IndexBuildProgress] = []
    result = repo.bulk_add(
        [f"doc {i}" for i in range(300)], embeddings=vectors(300), rebuild_index=True,
        index_options={"parallel_workers": 1, "progress": seen.append},
    )  # fmt: skip
    assert result.inserted == 300
    assert index_names(session) == [HNSW]
    reltuples = session.execute(
        text("SELECT reltuples FROM pg_class WHERE relname = :t"), {"t": TABLE_NAME}
    ).scalar_one()
    assert reltuples == 300  # ANALYZE ran
    assert len(repo.nearest(vectors(1)[0], k=5)) == 5


def test_failed_rebuild_keeps_the_rows_and_one_call_rebuilds(
    repo: vs.DocumentRepository[vs.Document], session: Session
) -> None:
    with pytest.raises(vs.IndexBuildError, match="rows are loaded and kept") as caught:
        repo.bulk_add(
            [f"doc {i}" for i in range(50)], embeddings=vectors(50), rebuild_index=True,
            index_options={"maintenance_work_mem": "1kB"},  # below the server's minimum
        )  # fmt: skip
    # Every index the load dropped failed to build (the setting is refused).
    assert len(caught.value.definitions) == len(DROPPED)
    assert any(HNSW in d for d in caught.value.definitions)
    assert repo.count() == 50  # the load stayed, in the caller's transaction
    assert index_names(session) == []
    session.commit()
    ran = rebuild_ann_indexes(session, vs.Document)
    session.commit()
    assert len(ran) == len(DROPPED)
    assert all_index_names(session) >= set(DROPPED)
    assert repo.count() == 50


def test_rebuild_from_the_error_definitions(
    repo: vs.DocumentRepository[vs.Document], session: Session
) -> None:
    dropped = drop_ann_indexes(session, TABLE)
    rebuild_ann_indexes(session, vs.Document, dropped, parallel_workers=0)
    assert index_names(session) == [HNSW]
    assert rebuild_ann_indexes(session, vs.Document) == []  # nothing missing


def test_progress_is_the_share_of_the_current_phase() -> None:
    assert IndexBuildProgress("i", "building", 0, 0, 5, 10).fraction == 0.5
    assert IndexBuildProgress("i", "building", 2, 8, 0, 0).fraction == 0.25
    assert IndexBuildProgress("i", "initializing", 0, 0, 0, 0).fraction is None


def test_negative_workers_are_refused(session: Session) -> None:
    with pytest.raises(vs.ValidationError):
        build_indexes(session, [], parallel_workers=-1)


def test_ingest_with_rebuild_index(
    repo: vs.DocumentRepository[vs.Document], session: Session
) -> None:
    result = vs.ingest([f"text {i}" for i in range(40)], repository=repo, rebuild_index=True,
                       index_options={"parallel_workers": 0})  # fmt: skip
    assert result.inserted == 40
    assert index_names(session) == [HNSW]
