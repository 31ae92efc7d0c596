"""nearest: metrics against numpy, thresholds, paging, strategies, settings, bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs
from vectorstore._metrics import score_of

Repo = vs.DocumentRepository[vs.Document]


def _unit(v: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def brute_force(vectors: np.ndarray[Any, Any], q: np.ndarray[Any, Any], metric: str) -> Any:
    v64, q64 = vectors.astype(np.float64), q.astype(np.float64)
    if metric == "cosine":
        return 1 - _unit(v64) @ _unit(q64)
    if metric == "l2":
        return np.linalg.norm(v64 - q64, axis=1)
    if metric == "inner_product":
        return -(v64 @ q64)
    return np.abs(v64 - q64).sum(axis=1)


@pytest.fixture
def small(repo: Repo) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((60, 384)).astype(np.float32)
    repo.bulk_add(
        [f"doc {i}" for i in range(60)],
        embeddings=vectors,
        metadata=[{"i": i, "even": i % 2 == 0} for i in range(60)],
        external_ids=[str(i) for i in range(60)],
    )
    return vectors


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product", "l1"])
@pytest.mark.parametrize("exact", [False, True])
def test_each_metric_matches_numpy(
    repo: Repo, small: np.ndarray[Any, Any], metric: str, exact: bool
) -> None:
    q = np.random.default_rng(3).standard_normal(384).astype(np.float32)
    hits = repo.nearest(q, k=8, metric=metric, strategy="exact" if exact else "auto")
    distances = brute_force(small, q, metric)
    expected = np.argsort(distances, kind="stable")[:8]
    assert [int(h.document.external_id) for h in hits] == expected.tolist()
    for hit in hits:
        want = distances[int(hit.document.external_id)]
        assert math.isclose(hit.distance, want, rel_tol=1e-4, abs_tol=1e-4)
        assert math.isclose(hit.score, score_of(metric, hit.distance))
    assert hits.k == 8
    assert hits.returned == 8
    if exact or metric != "cosine":  # no ANN index for the other metrics
        assert hits.strategy == "exact"
    else:  # 60 rows: small enough to rank exactly, or the index
        assert hits.strategy in ("index", "exact")


def test_scores_are_higher_for_closer_documents(repo: Repo, small: np.ndarray[Any, Any]) -> None:
    for metric in ("cosine", "l2", "inner_product", "l1"):
        hits = repo.nearest(small[0], k=5, metric=metric)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)


def test_metric_aliases_and_unknown_metric(repo: Repo, small: np.ndarray[Any, Any]) -> None:
    assert repo.nearest(small[1], k=1, metric="euclidean")[0].document.external_id == "1"
    with pytest.raises(vs.ValidationError, match="unknown metric"):
        repo.nearest(small[1], k=1, metric="hamming")


def test_max_distance_and_min_score(repo: Repo, small: np.ndarray[Any, Any]) -> None:
    q = small[4]
    every = repo.nearest(q, k=60, strategy="exact")
    cut = every[9].distance
    within = repo.nearest(q, k=60, max_distance=cut)
    assert [h.document.id for h in within] == [h.document.id for h in every[:10]]
    by_score = repo.nearest(q, k=60, min_score=1 - cut)
    assert [h.document.id for h in by_score] == [h.document.id for h in within]
    nothing = repo.nearest(q, k=5, max_distance=-1.0)
    assert len(nothing) == 0
    assert nothing.threshold_bounded


def test_offset_pages_through_the_ranking(repo: Repo, small: np.ndarray[Any, Any]) -> None:
    q = small[10]
    everything = [h.document.id for h in repo.nearest(q, k=30, strategy="exact")]
    pages = [repo.nearest(q, k=10, offset=o) for o in (0, 10, 20)]
    assert [h.document.id for page in pages for h in page] == everything


def test_embedding_is_deferred_unless_asked(
    repo: Repo, small: np.ndarray[Any, Any], session: Session
) -> None:
    hit = repo.nearest(small[0], k=1)[0]
    assert "embedding" not in hit.document.__dict__
    loaded = repo.nearest(small[0], k=1, with_embedding=True)[0]
    assert np.allclose(np.asarray(loaded.document.embedding), small[0], atol=1e-6)


def test_result_set_to_dataframe(repo: Repo, small: np.ndarray[Any, Any]) -> None:
    hits = repo.nearest(small[2], k=3)
    frame = hits.to_dataframe()
    assert list(frame.columns[:7]) == [
        "id", "external_id", "text", "metadata", "distance", "score", "rank",
    ]  # fmt: skip
    assert frame["external_id"].iloc[0] == "2"
    assert frame["rank"].tolist() == [1, 2, 3]
    assert frame["distance"].is_monotonic_increasing


def test_text_query_uses_the_embedder(repo: Repo) -> None:
    repo.add("postgres vector search")
    repo.add("baking sourdough bread")
    assert repo.nearest("vector search in postgres", k=1)[0].document.text == (
        "postgres vector search"
    )


@pytest.mark.parametrize(
    ("query", "kwargs", "error"),
    [
        (np.ones(3), {}, vs.DimensionMismatchError),
        (np.full(384, np.nan), {}, vs.ValidationError),
        (np.full(384, np.inf), {}, vs.ValidationError),
        (np.ones(384), {"k": 0}, vs.ValidationError),
        (np.ones(384), {"k": -3}, vs.ValidationError),
        (np.ones(384), {"k": 2.5}, vs.ValidationError),
        (np.ones(384), {"metric": "nope"}, vs.ValidationError),
        (np.ones(384), {"offset": -1}, vs.ValidationError),
        (np.ones(384), {"max_distance": float("nan")}, vs.ValidationError),
        (np.ones(384), {"ef_search": 0}, vs.ValidationError),
        (np.ones(384), {"ef_search": 5000}, vs.ValidationError),
        (np.ones(384), {"strategy": "fastest"}, vs.ValidationError),
        (np.ones(384), {"join": vs.Collection}, vs.ValidationError),
        ("   ", {}, vs.ValidationError),
        ("text", {"filter": {"$bogus": 1}}, vs.FilterError),
    ],
)
def test_bad_inputs_are_clear_errors(
    repo: Repo, small: np.ndarray[Any, Any], query: Any, kwargs: dict[str, Any], error: type
) -> None:
    with pytest.raises(error):
        repo.nearest(query, **{"k": 5, **kwargs})


def test_unknown_keyword_is_a_type_error(repo: Repo) -> None:
    with pytest.raises(TypeError, match="unexpected"):
        repo.nearest(np.ones(384), k=1, ef_serch=10)


# -- strategies and over-filtering ---------------------------------------------------
@pytest.fixture
def tenants(repo: Repo, session: Session) -> np.ndarray[Any, Any]:
    """1,500 rows; metadata 'group' keeps 1% (g0), 10% (g1) or the rest."""
    rng = np.random.default_rng(11)
    n = 1500
    vectors = rng.standard_normal((n, 384)).astype(np.float32)
    groups = ["g0" if i % 100 == 0 else "g1" if i % 10 == 1 else "g2" for i in range(n)]
    repo.bulk_add(
        [f"row {i}" for i in range(n)],
        embeddings=vectors,
        metadata=[{"group": g, "i": i} for i, g in enumerate(groups)],
        external_ids=[str(i) for i in range(n)],
    )
    session.execute(text("ANALYZE vectorstore_documents"))
    return vectors


def _exact_ids(
    vectors: np.ndarray[Any, Any], q: np.ndarray[Any, Any], keep: Any, k: int
) -> set[str]:
    d = brute_force(vectors, q, "cosine")
    order = [i for i in np.argsort(d) if keep(int(i))]
    return {str(i) for i in order[:k]}


@pytest.mark.parametrize("strategy", ["auto", "index", "iterative", "exact"])
def test_selective_filter_with_hnsw_returns_exactly_k(
    repo: Repo, tenants: np.ndarray[Any, Any], strategy: str
) -> None:
    q = np.random.default_rng(5).standard_normal(384).astype(np.float32)
    hits = repo.nearest(q, k=10, filter={"group": "g0"}, strategy=strategy)
    assert hits.returned == 10
    assert all(h.document.metadata_["group"] == "g0" for h in hits)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    got = {h.document.external_id for h in hits}
    assert len(got & _exact_ids(tenants, q, lambda i: i % 100 == 0, 10)) >= 9
    if strategy == "auto":
        # 1,500 rows fit in the metadata sample whole: the estimate is exact and
        # no count (nor EXPLAIN) was needed.
        assert hits.strategy == "exact"
        assert hits.estimated_rows == 15
        assert hits.counted_rows is None
        assert "sampled estimate" in hits.reason
    if strategy == "index" and hits.fallback_from is not None:
        # A plain HNSW scan over-filtered (100 candidates, 1% match): re-ranked exactly.
        assert hits.fallback_from == "index"
        assert hits.strategy == "exact"
    if strategy == "iterative":
        assert hits.strategy == "iterative"
        assert hits.fallback_from is None


def test_broad_filter_takes_the_iterative_index_scan(
    repo: Repo, tenants: np.ndarray[Any, Any]
) -> None:
    q = tenants[7]
    hits = repo.nearest(q, k=10, filter={"group": "g2"}, exact_threshold=100)
    assert hits.strategy == "iterative"
    assert hits.returned == 10
    assert hits.settings["hnsw.iterative_scan"] == "relaxed_order"
    assert hits[0].document.external_id == "7"


def test_a_filtered_ann_scan_is_pinned_to_the_index(
    repo: Repo, tenants: np.ndarray[Any, Any]
) -> None:
    # On 1,500 rows the planner would rather filter and sort; once nearest has
    # chosen the iterative scan, enable_sort=off keeps the plan on the index.
    report = repo.explain(tenants[7], k=10, filter={"group": "g2"}, exact_threshold=100)
    assert report.strategy == "iterative"
    assert report.used_ann_index
    hits = repo.nearest(tenants[7], k=10, filter={"group": "g2"}, exact_threshold=100)
    assert hits.settings["enable_sort"] == "off"
    unfiltered = repo.nearest(tenants[7], k=10, strategy="index")
    assert "enable_sort" not in unfiltered.settings


def test_filter_matching_fewer_than_k_returns_them_all(
    repo: Repo, tenants: np.ndarray[Any, Any]
) -> None:
    for strategy in ("auto", "index", "iterative"):
        hits = repo.nearest(tenants[0], k=10, filter={"i": {"$in": [0, 5, 1499]}},
                            strategy=strategy)  # fmt: skip
        assert sorted(h.document.external_id for h in hits) == ["0", "1499", "5"]
        assert hits.k == 10
        assert hits.returned == 3


def test_explicit_ef_search_is_raised_to_k(repo: Repo, tenants: np.ndarray[Any, Any]) -> None:
    hits = repo.nearest(tenants[3], k=150, ef_search=40, strategy="index")
    assert hits.returned == 150
    assert hits.settings["hnsw.ef_search"] == "150"


# -- settings never leak -------------------------------------------------------------
def _setting(session: Session, name: str) -> str | None:
    value = session.execute(text("SELECT current_setting(:n, true)"), {"n": name}).scalar()
    return None if value is None else str(value)


def test_settings_do_not_leak_into_the_host_transaction(
    repo: Repo, tenants: np.ndarray[Any, Any], session: Session
) -> None:
    session.execute(text("SET LOCAL hnsw.ef_search = 33"))
    before = _setting(session, "hnsw.iterative_scan")
    hits = repo.nearest(tenants[1], k=10, filter={"group": "g2"}, ef_search=250,
                        exact_threshold=10)  # fmt: skip
    assert hits.settings["hnsw.ef_search"] == "250"
    assert _setting(session, "hnsw.ef_search") == "33"
    assert _setting(session, "hnsw.iterative_scan") == before
    # The caller's transaction is intact and still usable.
    assert repo.count() == 1500


def test_settings_do_not_leak_to_the_next_user_of_a_pooled_connection(
    engine: Engine, embedder: vs.HashingTestEmbedder
) -> None:
    from sqlalchemy.pool import StaticPool

    single = vs.make_engine(engine.url, poolclass=StaticPool)
    try:
        repo: Repo = vs.DocumentRepository.standalone(single, collection="pool", embedder=embedder)
        repo.bulk_add([f"t {i}" for i in range(20)])
        with single.connect() as conn:
            default = conn.exec_driver_sql("SHOW hnsw.ef_search").scalar()
            conn.rollback()
        repo.nearest("t 3", k=5, ef_search=321, strategy="index")
        with single.connect() as conn:
            assert conn.exec_driver_sql("SHOW hnsw.ef_search").scalar() == default
    finally:
        single.dispose()


def test_search_settings_block_for_hand_built_queries(
    repo: Repo, tenants: np.ndarray[Any, Any], session: Session
) -> None:
    with repo.search_settings(ef_search=200, iterative=True) as s:
        assert _setting(s, "hnsw.ef_search") == "200"
        rows = s.execute(repo.nearest_query(tenants[9], k=3)).all()
    assert rows[0][0].external_id == "9"
    assert _setting(session, "hnsw.ef_search") != "200"
    with pytest.raises(vs.ValidationError):
        with repo.search_settings(ef_search=-1):
            pass
