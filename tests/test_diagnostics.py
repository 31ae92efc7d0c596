"""Recall measurement and explain: what nearest ran, in PostgreSQL's own words."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

import vectorstore as vs

Repo = vs.DocumentRepository[vs.Document]


@pytest.fixture
def data(repo: Repo, session: Session) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(9)
    vectors = rng.standard_normal((400, 384)).astype(np.float32)
    repo.bulk_add([f"r {i}" for i in range(400)], embeddings=vectors,
                  metadata=[{"g": i % 20} for i in range(400)])  # fmt: skip
    session.execute(text("ANALYZE vectorstore_documents"))
    return vectors


def test_measure_recall_reports_each_setting(repo: Repo, data: np.ndarray[Any, Any]) -> None:
    report = repo.measure_recall(list(data[:5]), k=5, ef_search=[10, 100])
    assert isinstance(report, vs.RecallReport)
    assert [p.label for p in report.points] == ["ef_search=10", "ef_search=100"]
    assert report.queries == 5
    assert report.k == 5
    for point, ef in zip(report.points, (10, 100), strict=True):
        # The report's recall is what nearest itself returns at that setting.
        recalls = []
        for q in data[:5]:
            truth = {h.document.id for h in repo.nearest(q, k=5, strategy="exact")}
            got = {h.document.id for h in repo.nearest(q, k=5, strategy="index", ef_search=ef)}
            recalls.append(len(truth & got) / 5)
        assert point.recall == pytest.approx(sum(recalls) / len(recalls))
        assert point.p50_ms > 0
        assert point.min_returned == 5
    assert report.points[1].recall == 1.0  # 400 rows, ef_search 100: the graph is exhausted
    assert "| ef_search=100 |" in report.to_markdown()


def test_measure_recall_needs_queries(repo: Repo) -> None:
    with pytest.raises(vs.ValidationError):
        repo.measure_recall([])


def test_explain_shows_index_use_and_settings(
    repo: Repo, data: np.ndarray[Any, Any], session: Session
) -> None:
    for name in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
        session.execute(text(f"SET LOCAL {name} = off"))
    report = repo.explain(data[0], k=5, strategy="index", ef_search=77)
    assert isinstance(report, vs.ExplainReport)
    assert report.used_ann_index
    assert "ix_vectorstore_documents_embedding_hnsw" in report.index_names
    assert report.settings["hnsw.ef_search"] == "77"
    assert report.rows_returned == 5
    assert "ANN index used: yes" in str(report)


def test_explain_shows_rows_removed_by_the_filter(repo: Repo, data: np.ndarray[Any, Any]) -> None:
    report = repo.explain(data[0], k=5, filter={"g": {"$gte": 19}}, strategy="exact")
    assert report.strategy == "exact"
    assert not report.used_ann_index
    assert report.rows_removed_by_filter == 380  # a range on metadata: a filtered scan
    iterative = repo.explain(data[0], k=5, filter={"g": 3}, strategy="iterative")
    assert iterative.settings["hnsw.iterative_scan"] == "relaxed_order"
