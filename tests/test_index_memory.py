"""HNSW build memory: the estimate, the warning before a spilling build, pgvector's notice."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sqlalchemy import URL, Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs
from vectorstore.schema.indexes import check_build_memory, hnsw_graph_bytes, memory_bytes

Repo = vs.DocumentRepository[vs.Document]
ROWS = 1500  # at 384-d, about 3 MB of graph: spills at maintenance_work_mem = 1MB


def _data(n: int = ROWS) -> np.ndarray[Any, Any]:
    return np.random.default_rng(5).standard_normal((n, 384)).astype(np.float32)


def test_graph_estimate_scales_with_rows_dimension_m_and_precision() -> None:
    one = hnsw_graph_bytes(1_000_000, 384)
    assert 1.5 * 1024**3 < one < 3 * 1024**3  # ~2 GB for 1M x 384-d at m = 16
    assert hnsw_graph_bytes(2_000_000, 384) == pytest.approx(2 * one, rel=1e-6)
    assert hnsw_graph_bytes(1_000_000, 384, m=32) > one
    assert hnsw_graph_bytes(1_000_000, 384, precision="halfvec") < one
    assert hnsw_graph_bytes(1_000_000, 384, precision="binary") < one / 2


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("512MB", 512 * 1024**2), ("65536kB", 64 * 1024**2), ("2GB", 2 * 1024**3), ("1024", 1024**2)],
)
def test_memory_settings_are_read_as_written_or_shown(setting: str, expected: int) -> None:
    assert memory_bytes(setting) == expected


def test_a_bad_memory_setting_is_a_validation_error() -> None:
    with pytest.raises(vs.ValidationError):
        memory_bytes("lots")


def test_the_check_warns_only_when_the_graph_does_not_fit() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", vs.IndexMemoryWarning)
        assert check_build_memory(100_000, 384, "1GB") is True
    with pytest.warns(vs.IndexMemoryWarning, match="maintenance_work_mem='2") as caught:
        assert check_build_memory(1_000_000, 384, "512MB") is False
    warning = caught[0].message
    assert isinstance(warning, vs.IndexMemoryWarning)
    assert isinstance(warning, vs.VectorStoreWarning)
    assert isinstance(warning, UserWarning)
    assert warning.available == 512 * 1024**2
    assert warning.needed == hnsw_graph_bytes(1_000_000, 384)


def _messages(caught: Any) -> list[str]:
    return [str(w.message) for w in caught if isinstance(w.message, vs.IndexMemoryWarning)]


def test_standalone_create_index_warns_before_and_surfaces_the_spill_notice(
    any_driver_url: URL, embedder: Any
) -> None:
    engine = vs.make_engine(any_driver_url)
    try:
        repo: Repo = vs.DocumentRepository.standalone(engine, collection="mem", embedder=embedder)
        repo.bulk_add([f"m {i}" for i in range(ROWS)], embeddings=_data())
        with pytest.warns(vs.IndexMemoryWarning) as caught:
            name = repo.create_index(vs.IndexSpec(m=8, ef_construction=32, name="ix_spill"),
                                     maintenance_work_mem="1MB")  # fmt: skip
        messages = _messages(caught)
        assert any("will spill" in m and f"over {ROWS} rows" in m for m in messages), messages
        assert any("pgvector reported" in m and "no longer fits" in m for m in messages), messages
        assert next(ix for ix in repo.list_indexes() if ix.name == name).valid  # built anyway
    finally:
        engine.dispose()


def test_enough_memory_builds_without_a_warning(engine: Engine, embedder: Any) -> None:
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="roomy", embedder=embedder)
    repo.bulk_add([f"r {i}" for i in range(ROWS)], embeddings=_data())
    with warnings.catch_warnings():
        warnings.simplefilter("error", vs.IndexMemoryWarning)
        repo.create_index(vs.IndexSpec(m=8, ef_construction=32, name="ix_roomy"),
                          maintenance_work_mem="64MB")  # fmt: skip


def test_in_a_host_session_the_spill_notice_becomes_a_warning(repo: Repo, session: Session) -> None:
    repo.bulk_add([f"h {i}" for i in range(ROWS)], embeddings=_data())
    with pytest.warns(vs.IndexMemoryWarning) as caught:
        repo.create_index(vs.IndexSpec(m=8, ef_construction=32, name="ix_host"),
                          maintenance_work_mem="1MB")  # fmt: skip
    assert any("no longer fits" in m for m in _messages(caught)), _messages(caught)
    assert "ix_host" in {ix.name for ix in repo.list_indexes()}


def test_a_big_load_warns_when_its_hnsw_rebuild_will_spill(engine: Engine, embedder: Any) -> None:
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="big", embedder=embedder)
    with pytest.warns(vs.IndexMemoryWarning) as caught:
        repo.bulk_add([f"b {i}" for i in range(ROWS)], embeddings=_data(), rebuild_index=True,
                      index_options={"maintenance_work_mem": "1MB"})  # fmt: skip
    messages = _messages(caught)
    assert any("will spill" in m for m in messages), messages
    assert repo.count() == ROWS  # the load completes: a warning, not a failure
    with engine.connect() as conn:
        valid = conn.execute(text(
            "SELECT bool_and(indisvalid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'hnsw'"
        )).scalar_one()  # fmt: skip
    assert valid is True


def test_rebuilding_a_partial_halfvec_definition_counts_only_its_collection(
    repo: Repo, session: Session
) -> None:
    other: Repo = vs.DocumentRepository(session, collection="other", embedder=repo.embedder)
    other.bulk_add([f"o {i}" for i in range(ROWS)], embeddings=_data())
    repo.bulk_add([f"h {i}" for i in range(1000)], embeddings=_data(1000))
    cid = repo.collection.id
    definition = (f"CREATE INDEX vsx_half ON public.vectorstore_documents USING hnsw "
                  f"(((embedding)::halfvec(384)) halfvec_cosine_ops) WITH (m='16') "
                  f"WHERE (collection_id = {cid})")  # fmt: skip
    with pytest.warns(vs.IndexMemoryWarning) as caught:
        vs.rebuild_ann_indexes(session, vs.Document, [definition], maintenance_work_mem="1MB")
    before = [m for m in _messages(caught) if "will spill" in m]
    assert before, _messages(caught)
    assert "over 1000 rows" in before[0]  # the partial index's rows, not the table's
    warning = next(w.message for w in caught if "will spill" in str(w.message))
    assert isinstance(warning, vs.IndexMemoryWarning)
    assert warning.needed == hnsw_graph_bytes(1000, 384, precision="halfvec")
