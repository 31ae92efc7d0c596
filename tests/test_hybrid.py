"""Hybrid search (RRF of full text and vectors in one statement) and MMR diversity."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import MetaData, text
from sqlalchemy.orm import DeclarativeBase, Session

import vectorstore as vs
from vectorstore.models import NAMING_CONVENTION, full_text_layout

Repo = vs.DocumentRepository[vs.Document]


class LayoutBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ExpressionDoc(vs.DocumentMixin, LayoutBase):
    """The "expression" layout: a GIN index on to_tsvector('english', text), no column."""

    __tablename__ = "expression_docs"
    full_text_search = "expression"


LAYOUTS = {"stored": vs.Document, "expression": ExpressionDoc}


@pytest.fixture(params=sorted(LAYOUTS))
def layout_repo(
    request: pytest.FixtureRequest, session: Session, embedder: vs.HashingTestEmbedder
) -> vs.DocumentRepository[Any]:
    """A repository on the default table ("stored") and on an "expression" table."""
    model = LAYOUTS[request.param]
    assert full_text_layout(model) == request.param
    LayoutBase.metadata.create_all(session.connection())
    return vs.DocumentRepository(session, collection="test", embedder=embedder, model=model)


TEXTS = [
    "postgres full text search with tsvector",  # 0: text match, vector near
    "tsvector ranking in postgres",  # 1: text match
    "a recipe for sourdough bread",  # 2: no text match
    "bread and postgres together",  # 3: text match on postgres only
    "gardening in spring",  # 4
]


def _ranks(values: list[float], reverse: bool = False) -> dict[int, int]:
    order = sorted(range(len(values)), key=lambda i: (-values[i] if reverse else values[i], i))
    return {i: r + 1 for r, i in enumerate(order)}


def test_rrf_matches_a_hand_computed_fusion(layout_repo: vs.DocumentRepository[Any]) -> None:
    """The same hand-checked fusion on both full-text layouts."""
    repo = layout_repo
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((len(TEXTS), 384)).astype(np.float32)
    q = vectors[2] + 0.05 * rng.standard_normal(384).astype(np.float32)
    repo.bulk_add(TEXTS, embeddings=vectors, external_ids=[str(i) for i in range(len(TEXTS))])
    hits = repo.hybrid("postgres tsvector", k=5, vector=q, rrf_k=60)
    assert hits.strategy == "hybrid"
    # Vector ranks over all five documents; text ranks by ts_rank_cd over matches.
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    vrank = _ranks(list(1 - unit @ (q / np.linalg.norm(q))))
    for hit in hits:
        i = int(hit.document.external_id)
        assert hit.extra["vector_rank"] == vrank[i]
    text_ranked = {int(h.document.external_id): h.extra["text_rank"] for h in hits}
    assert {i for i, r in text_ranked.items() if r is not None} == {0, 1}  # both words
    expected = {
        i: 1 / (60 + vrank[i]) + (1 / (60 + text_ranked[i]) if text_ranked[i] else 0.0)
        for i in text_ranked
    }
    assert [int(h.document.external_id) for h in hits] == sorted(
        expected, key=lambda i: (-expected[i], vrank[i])
    )
    for hit in hits:
        assert hit.score == pytest.approx(expected[int(hit.document.external_id)])
    # A document both arms like beats one only the vector arm ranks first.
    assert hits[0].document.external_id in {"0", "1"}


def test_hybrid_applies_the_same_filter_and_weights(
    layout_repo: vs.DocumentRepository[Any],
) -> None:
    repo = layout_repo
    repo.bulk_add(TEXTS, metadata=[{"n": i} for i in range(len(TEXTS))])
    hits = repo.hybrid("postgres", k=5, filter={"n": {"$gte": 1}})
    assert all(h.document.metadata_["n"] >= 1 for h in hits)
    text_only = repo.hybrid("postgres", k=2, vector_weight=0.0)
    assert all(h.extra["text_rank"] is not None for h in text_only)
    with pytest.deprecated_call(match="repo.hybrid"):
        via_nearest = repo.nearest("postgres tsvector", k=3, hybrid=True)
    assert via_nearest.strategy == "hybrid"
    assert [h.document.id for h in via_nearest] == [
        h.document.id for h in repo.hybrid("postgres tsvector", k=3)
    ]


def test_the_old_spellings_still_work_and_say_they_are_deprecated(repo: Repo) -> None:
    repo.bulk_add(TEXTS)
    with pytest.deprecated_call(match="strategy='exact'"):
        old = repo.nearest("postgres", k=3, exact=True)
    new = repo.nearest("postgres", k=3, strategy="exact")
    assert old.strategy == new.strategy == "exact"
    assert [h.document.id for h in old] == [h.document.id for h in new]
    with pytest.deprecated_call(match="strategy='exact'"):
        repo.nearest_query("postgres", k=3, exact=True)


@pytest.mark.parametrize(
    "kwargs", [{"rrf_k": 0}, {"candidates": -1}, {"vector_weight": -1.0}, {"k": 0}]
)
def test_bad_hybrid_arguments_are_validation_errors(repo: Repo, kwargs: dict[str, Any]) -> None:
    repo.add("something")
    with pytest.raises(vs.ValidationError):
        repo.hybrid("something", **kwargs)
    with pytest.raises(vs.ValidationError):
        repo.hybrid("   ")


def test_hostile_full_text_queries_are_data(repo: Repo) -> None:
    repo.bulk_add(TEXTS)
    for query in ["' OR 1=1 --", "postgres & | ! (", '"unclosed', "a:*"]:
        hits = repo.hybrid(query, k=3)
        assert len(hits) == 3  # the vector arm still answers
    assert repo.count() == len(TEXTS)


def test_mmr_trades_relevance_for_diversity(repo: Repo) -> None:
    rng = np.random.default_rng(3)
    base = rng.standard_normal(384).astype(np.float32)
    near_dupes = [base + 0.01 * rng.standard_normal(384).astype(np.float32) for _ in range(4)]
    other = base + 1.2 * rng.standard_normal(384).astype(np.float32)
    vectors = np.stack([*near_dupes, other])
    repo.bulk_add([f"d{i}" for i in range(5)], embeddings=vectors)
    plain = repo.nearest(base, k=2)
    assert {h.document.text for h in plain} <= {"d0", "d1", "d2", "d3"}
    diverse = repo.nearest(base, k=2, mmr=0.3, fetch_k=5)
    assert "d4" in {h.document.text for h in diverse}
    assert repo.nearest(base, k=2, mmr=1.0).documents == plain.documents
    with pytest.raises(vs.ValidationError):
        repo.nearest(base, k=2, mmr=1.5)


def test_bad_fusion_arguments_are_refused_before_the_collection_exists(
    session: Session, embedder: vs.HashingTestEmbedder
) -> None:
    repo = vs.DocumentRepository(session, collection="never-made", embedder=embedder)
    with pytest.raises(vs.ValidationError, match="rrf_k"):
        repo.hybrid("q", rrf_k=-1)
    assert session.execute(text("SELECT count(*) FROM vectorstore_collections")).scalar() == 0


def test_explain_still_takes_the_old_exact_spelling(repo: Repo) -> None:
    repo.bulk_add(TEXTS)
    with pytest.deprecated_call(match="strategy='exact'"):
        report = repo.explain("postgres", k=3, exact=True)
    assert report.strategy == "exact"


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_text_arm_uses_the_full_text_index(any_driver_url: Any, layout: str) -> None:
    """The text arm's tsvector is the indexed one (also as a generic prepared plan)."""
    from sqlalchemy import func, select

    from vectorstore.models import text_search_vector

    model = LAYOUTS[layout]
    table = model.__tablename__
    engine = vs.make_engine(any_driver_url)
    try:
        with Session(engine) as session:
            LayoutBase.metadata.create_all(session.connection())
            session.execute(text("SET LOCAL enable_seqscan = off"))
            doc = text_search_vector(model)
            spelled = str(doc.compile(engine))
            assert ("to_tsvector" in spelled) == (layout == "expression")
            query = func.websearch_to_tsquery(text("'english'::regconfig"), "postgres")
            stmt = select(model.id).where(doc.bool_op("@@")(query))
            compiled = stmt.compile(engine, compile_kwargs={"literal_binds": True})
            plan = "\n".join(session.execute(text(f"EXPLAIN {compiled}")).scalars())
            assert f"ix_{table}_text_search" in plan
            # A generic plan (psycopg 3 prepares after a few runs) matches it too.
            session.execute(text(f"PREPARE arm AS {compiled}"))
            session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
            generic = "\n".join(session.execute(text("EXPLAIN EXECUTE arm")).scalars())
            assert f"ix_{table}_text_search" in generic
    finally:
        engine.dispose()
