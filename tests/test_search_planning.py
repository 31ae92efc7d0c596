"""nearest's planning and execution path: the metadata sample, round trips, light rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event, inspect, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import DetachedInstanceError

import vectorstore as vs
from vectorstore._vector import QueryVector
from vectorstore.query.selectivity import MetadataSample
from vectorstore.query.settings import settings_sql

Repo = vs.DocumentRepository[vs.Document]

SAMPLE = MetadataSample(
    rows=1000,
    metadata=(
        {"g": 1, "flag": True, "tags": ["a"], "n": {"x": 5}},
        {"g": 2, "flag": False, "n": {"x": 7}},
        {"g": 1.0, "name": "bob"},
        {"g": "1", "flag": 1},
    ),
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, 1000),
        ({}, 1000),
        ({"g": 1}, 500),  # 1 and 1.0 are equal JSON numbers, "1" is a string
        ({"flag": True}, 250),  # 1 is not true
        ({"flag": 1}, 250),
        ({"g": {"$ne": 1}}, 500),
        ({"g": {"$in": [2, "1"]}}, 500),
        ({"g": {"$nin": [2, "1"]}}, 500),
        ({"name": {"$exists": True}}, 250),
        ({"name": {"$exists": False}}, 750),
        ({"g": {"$gte": 1, "$lt": 2}}, 500),  # the string "1" never compares with numbers
        ({"g": {"$between": [2, 9]}}, 250),
        ({"n.x": {"$gt": 6}}, 250),
        ({"n.x": 5}, 250),
        ({"$or": [{"g": 2}, {"name": "bob"}]}, 500),
        ({"$and": [{"g": 1}, {"flag": True}]}, 250),
        ({"$not": {"g": 1}}, 500),
        ([{"g": 1}, {"flag": True}], 250),
        ({"missing": 1}, 0),
    ],
)
def test_the_sample_estimates_dictionary_filters(spec: Any, expected: int) -> None:
    assert SAMPLE.estimate(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        {"text": "x"},  # a column: the planner has statistics for it
        {"external_id": {"$in": ["1"]}},
        {"g": {"$like": "1%"}},
        {"tags": {"$contains": "a"}},
        {"metadata": {"$contains": {"g": 1}}},
        {"$bogus": 1},
        {"$or": []},
        [],
        "g = 1",
    ],
)
def test_shapes_the_sample_cannot_judge_are_unknown(spec: Any) -> None:
    assert SAMPLE.estimate(spec) is None


def test_a_malformed_filter_is_left_to_the_compiler() -> None:
    deep: dict[str, Any] = {"g": 1}
    for _ in range(5000):
        deep = {"$not": deep}
    assert SAMPLE.estimate(deep) is None
    assert SAMPLE.estimate({"g": {"$in": [object()]}}) is None


def test_an_empty_collection_estimates_zero() -> None:
    assert MetadataSample(rows=0, metadata=()).estimate({"g": 1}) == 0


def test_query_vectors_round_trip_float32_exactly() -> None:
    process = QueryVector(384).bind_processor(None)
    rng = np.random.default_rng(1)
    q = (rng.standard_normal(384) * rng.choice([1e-30, 1e-3, 1.0, 1e20], 384)).astype(np.float32)
    rendered = process(q)
    assert rendered.startswith("[")
    assert rendered.endswith("]")
    back = np.array([float(x) for x in rendered[1:-1].split(",")], dtype=np.float32)
    assert np.array_equal(back, q)
    assert process([1, 2.5]) == "[1,2.5]"
    assert process(None) is None


@pytest.mark.parametrize(
    "settings",
    [{"hnsw.ef_search": "1; DROP TABLE x"}, {"work_mem": "64MB"}, {"hnsw.ef_search": "'"}],
)
def test_settings_sql_refuses_anything_but_known_names_and_plain_values(
    settings: dict[str, str],
) -> None:
    with pytest.raises(vs.ValidationError):
        settings_sql(settings)


def test_settings_sql_is_one_statement() -> None:
    sql = settings_sql({"hnsw.ef_search": "200", "hnsw.iterative_scan": "relaxed_order"})
    assert sql == (
        "SELECT set_config('hnsw.ef_search', '200', true), "
        "set_config('hnsw.iterative_scan', 'relaxed_order', true)"
    )


# -- a standalone repository ------------------------------------------------------
@pytest.fixture
def standalone(engine: Engine) -> Iterator[tuple[Repo, np.ndarray[Any, Any], list[str]]]:
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="plan", embedding_model="none")
    rng = np.random.default_rng(3)
    n = 3000
    vectors = rng.standard_normal((n, 384)).astype(np.float32)
    repo.bulk_add(
        [f"row {i}" for i in range(n)],
        embeddings=vectors,
        metadata=[{"tenth": i % 10, "half": i % 2, "i": i} for i in range(n)],
        external_ids=[str(i) for i in range(n)],
    )
    with engine.begin() as conn:
        conn.execute(text("ANALYZE vectorstore_documents"))
    statements: list[str] = []

    def log(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", log)
    yield repo, vectors, statements
    event.remove(engine, "before_cursor_execute", log)


def test_unfiltered_nearest_is_two_statements_with_a_bound_vector(
    standalone: tuple[Repo, np.ndarray[Any, Any], list[str]],
) -> None:
    repo, vectors, statements = standalone
    repo.nearest(vectors[0], k=5)  # first call: catalog and collection look-ups
    statements.clear()
    hits = repo.nearest(vectors[1], k=5)
    assert hits.strategy == "index"
    assert hits[0].document.external_id == "1"
    assert len(statements) == 2, statements
    assert statements[0].startswith("SELECT set_config('hnsw.ef_search', '200', true)")
    assert "%(query_vector)s" in statements[1]
    first = statements[1]
    statements.clear()
    repo.nearest(vectors[2], k=5)
    assert statements[1] == first  # the same SQL text: no per-call literal rendering


def test_a_dictionary_filter_is_planned_from_the_sample_without_a_round_trip(
    standalone: tuple[Repo, np.ndarray[Any, Any], list[str]],
) -> None:
    repo, vectors, statements = standalone
    repo.nearest(vectors[0], k=5, filter={"tenth": 3})  # takes the sample
    statements.clear()
    narrow = repo.nearest(vectors[3], k=10, filter={"tenth": 3}, exact_threshold=1000)
    assert narrow.strategy == "exact"
    # 3,000 rows > SAMPLE_ROWS: a Bernoulli sample of ~2,000 of them, scaled up.
    assert narrow.estimated_rows is not None
    assert 200 <= narrow.estimated_rows <= 400
    assert narrow[0].document.external_id == "3"
    assert all(h.document.metadata_["tenth"] == 3 for h in narrow)
    assert len(statements) == 1, statements  # no EXPLAIN, no count, no settings
    statements.clear()
    broad = repo.nearest(vectors[4], k=10, filter={"half": 0}, exact_threshold=1000)
    assert broad.strategy == "iterative"
    assert broad.estimated_rows is not None
    assert 1200 <= broad.estimated_rows <= 1800
    assert broad.returned == 10
    assert len(statements) == 2, statements


def test_a_column_filter_falls_back_to_the_planner_and_a_bounded_count(
    standalone: tuple[Repo, np.ndarray[Any, Any], list[str]],
) -> None:
    repo, vectors, _ = standalone
    hits = repo.nearest(vectors[5], k=3, filter={"text": {"$in": ["row 5", "row 6", "row 7"]}})
    assert hits.strategy == "exact"
    assert hits.counted_rows == 3
    assert sorted(h.document.external_id for h in hits) == ["5", "6", "7"]
    # external_id is sampled with the metadata: estimated there, not counted.
    sampled = repo.nearest(vectors[5], k=3, filter={"external_id": {"$in": ["5", "6", "7"]}})
    assert sampled.strategy == "exact"
    assert sampled.counted_rows is None
    assert sampled.reason.startswith("sampled estimate ")
    assert sorted(h.document.external_id for h in sampled) == ["5", "6", "7"]


def test_standalone_results_are_detached_documents(
    standalone: tuple[Repo, np.ndarray[Any, Any], list[str]],
    engine: Engine,
) -> None:
    repo, vectors, _ = standalone
    doc = repo.nearest(vectors[6], k=1)[0].document
    assert isinstance(doc, vs.Document)
    assert (doc.id, doc.external_id, doc.text) == (7, "6", "row 6")
    assert doc.metadata_ == {"tenth": 6, "half": 0, "i": 6}
    assert isinstance(doc.content_hash, bytes)
    assert doc.created_at is not None
    assert doc.collection_id == repo.collection.id
    with pytest.raises(DetachedInstanceError):
        _ = doc.embedding  # deferred, as with the ORM path
    state = inspect(doc)
    assert state.detached
    assert state.identity == (doc.id,)
    other = repo.nearest(vectors[7], k=1)[0].document
    with Session(engine) as session:
        session.add(other)  # a detached instance with an identity: an UPDATE, not an INSERT
        other.text = "edited"
        session.flush()  # StaleDataError if the identity did not name the row
        assert session.execute(text("SELECT text FROM vectorstore_documents WHERE id = :i"),
                               {"i": other.id}).scalar_one() == "edited"  # fmt: skip
        session.rollback()
    loaded = repo.nearest(vectors[6], k=1, with_embedding=True)[0].document
    assert np.allclose(np.asarray(loaded.embedding), vectors[6], atol=1e-6)
    again: Repo = vs.DocumentRepository.standalone(engine, collection="plan")
    assert again.get(doc.id).text == doc.text


def test_mmr_and_offset_on_the_light_path(
    standalone: tuple[Repo, np.ndarray[Any, Any], list[str]],
) -> None:
    repo, vectors, _ = standalone
    exact = [h.document.id for h in repo.nearest(vectors[8], k=20, strategy="exact")]
    page = repo.nearest(vectors[8], k=10, offset=10, strategy="exact")
    assert [h.document.id for h in page] == exact[10:]
    diverse = repo.nearest(vectors[8], k=5, mmr=0.5)
    assert diverse.returned == 5
    assert diverse[0].document.external_id == "8"


@pytest.mark.parametrize(
    "spec",
    [{"g": 1}, {"g": {"$eq": 1.0}}, {"g": {"$in": [2, "1"]}}, {"flag": True}, {"missing": 1},
     {"g": {"$ne": 1}}, {"$or": [{"g": 2}, {"name": "bob"}]}, None],
)  # fmt: skip
def test_the_sample_marks_the_rows_a_filter_keeps(spec: Any) -> None:
    from vectorstore.query.selectivity import _matches, _Row

    expected = [
        True if spec is None else bool(_matches(spec, _Row(meta, None), {}))
        for meta in SAMPLE.metadata
    ]
    assert SAMPLE.matches(spec).tolist() == expected
    assert SAMPLE.matches(spec).tolist() == expected  # remembered: the same answer again
    assert SAMPLE.matches({"g": {"$like": "1%"}}) is None


def test_a_remembered_mask_cannot_be_changed_by_its_caller() -> None:
    mask = SAMPLE.matches({"g": 1})
    with pytest.raises(ValueError, match="read-only"):
        mask[0] = not mask[0]
    assert SAMPLE.matches({"g": {"$in": [1]}}).tolist() == mask.tolist()
    general = SAMPLE.matches({"g": {"$ne": 1}})
    with pytest.raises(ValueError, match="read-only"):
        general[0] = not general[0]
