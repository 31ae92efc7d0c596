"""Staged writes (stage, merge_staged, the ledger): the database half of distributed ingest."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import URL, text
from sqlalchemy.orm import Session

import vectorstore as vs
from tests.conftest import table_count

DIM = vs.DEFAULT_DIMENSION


def vectors(n: int, seed: int = 0) -> np.ndarray[Any, Any]:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def staged_rows(url: URL) -> int:
    engine = vs.make_engine(url)
    try:
        return table_count(engine, "vectorstore_stage_rows")
    finally:
        engine.dispose()


def test_stage_then_merge_once_and_a_replay_writes_nothing(any_driver_url: URL) -> None:
    with vs.DocumentRepository.standalone(any_driver_url, collection="staged",
                                          embedder=vs.HashingTestEmbedder()) as repo:  # fmt: skip
        texts = [f"text {i}" for i in range(10)]
        ids = [f"id-{i}" for i in range(10)]
        assert repo.stage(texts[:6], external_ids=ids[:6], stage="s1", part="a") == 6
        assert repo.stage(texts[6:], external_ids=ids[6:], stage="s1", part="b") == 4
        # A retried part replaces its rows: the stage still holds 10.
        assert repo.stage(texts[6:], external_ids=ids[6:], stage="s1", part="b") == 4
        assert staged_rows(any_driver_url) == 10
        merged = repo.merge_staged("s1", parts=2, ledger=("stream", 0))
        assert (merged.inserted, merged.skipped, merged.replayed, merged.parts) == (10, 0, False, 2)
        assert repo.count() == 10
        assert staged_rows(any_driver_url) == 0
        # Delivered again: staged again, recognised by the ledger, nothing written.
        repo.stage(["changed"] * 10, external_ids=ids, stage="s1", part="a")
        again = repo.merge_staged("s1", on_conflict="update", ledger=("stream", 0))
        assert again.replayed
        assert again.inserted == 10
        assert repo.get_by_external_id("id-0").text == "text 0"
        assert staged_rows(any_driver_url) == 0
        assert sorted(repo.ledger("stream")) == [0]
        assert repo.forget_ledger("stream") == 1
        assert repo.ledger("stream") == {}


def test_update_policy_and_the_last_staged_row_wins(db_url: URL) -> None:
    with vs.DocumentRepository.standalone(db_url, collection="staged",
                                          embedding_model="pre") as repo:  # fmt: skip
        repo.bulk_add(["old"], embeddings=vectors(1), external_ids=["x"])
        repo.stage(["first", "second"], embeddings=vectors(2, 1), external_ids=["x", "x"],
                   stage="s", part="0")  # fmt: skip
        merged = repo.merge_staged("s", on_conflict="update")
        assert (merged.inserted, merged.updated, merged.skipped) == (0, 1, 1)
        assert repo.get_by_external_id("x").text == "second"


def test_bad_rows_stage_nothing_and_name_the_row(db_url: URL) -> None:
    with vs.DocumentRepository.standalone(db_url, collection="staged",
                                          embedding_model="pre") as repo:  # fmt: skip
        repo.stage(["kept"], embeddings=vectors(1), external_ids=["k"], stage="s", part="0")
        bad = vectors(3)
        bad[1, 5] = np.nan
        with pytest.raises(vs.ValidationError, match="'b'"):
            repo.stage(["a", "b", "c"], embeddings=bad, external_ids=["a", "b", "c"],
                       stage="s", part="0")  # fmt: skip
        with pytest.raises(vs.ValidationError, match="external id"):
            repo.stage(["a", "b"], embeddings=vectors(2), external_ids=["a", None],
                       stage="s", part="0")  # fmt: skip
        with pytest.raises(vs.DimensionMismatchError):
            repo.stage(["a"], embeddings=np.ones((1, DIM - 1), np.float32), external_ids=["a"],
                       stage="s", part="0")  # fmt: skip
        assert staged_rows(db_url) == 1  # the part as it was
        with pytest.raises(vs.ValidationError, match="skip"):
            repo.merge_staged("s", on_conflict="error")
        with pytest.raises(vs.WriteError, match="1 parts, 2 expected"):
            repo.merge_staged("s", parts=2, ledger=("st", 1))
        assert repo.ledger("st") == {}
        assert repo.count() == 0
        with pytest.raises(vs.ValidationError, match="stage"):
            repo.stage(["a"], embeddings=vectors(1), external_ids=["a"], stage="", part="0")
        with pytest.raises(vs.ValidationError, match="ledger"):
            repo.merge_staged("s", ledger=("st", "1"))  # type: ignore[arg-type]
        assert repo.discard_staged("s") == 1
        assert staged_rows(db_url) == 0


def test_inside_a_caller_session_nothing_is_committed(engine: Any, db_url: URL) -> None:
    with Session(engine) as session:
        repo = vs.DocumentRepository(session, collection="staged", embedding_model="pre")
        repo.stage(["a", "b"], embeddings=vectors(2), external_ids=["a", "b"], stage="s", part="0")
        merged = repo.merge_staged("s", ledger=("caller", 7))
        assert merged.inserted == 2
        assert repo.count() == 2
        session.rollback()
    assert table_count(engine) == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM vectorstore_ingest_ledger")).scalar() == 0
    assert staged_rows(db_url) == 0
