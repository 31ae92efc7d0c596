"""DocumentRepository core: add, get, delete, count, collections, transactions, bad input."""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs
from tests.conftest import table_count

Repo = vs.DocumentRepository[vs.Document]


def test_add_embeds_and_returns_the_stored_row(
    repo: Repo, embedder: vs.HashingTestEmbedder
) -> None:
    doc = repo.add("hello world", metadata={"lang": "en"}, external_id="h1")
    assert isinstance(doc.id, int)
    assert doc.id > 0
    assert isinstance(doc.created_at, datetime)
    assert doc.created_at.tzinfo is not None
    assert doc.metadata_ == {"lang": "en"}
    expected = embedder.embed(["hello world"])[0]
    assert np.array_equal(np.asarray(doc.embedding, dtype=np.float32), expected)
    assert repo.get(doc.id).text == "hello world"


def test_given_embeddings_are_stored_bit_exact(repo: Repo, session: Session) -> None:
    rng = np.random.default_rng(7)
    v32 = rng.standard_normal(384).astype(np.float32)
    v64 = rng.standard_normal(384)
    a = repo.add("float32", embedding=v32)
    b = repo.add("float64 list", embedding=v64.tolist())
    c = repo.add("ints", embedding=list(range(384)))
    raw = session.execute(
        text("SELECT id, embedding::text FROM vectorstore_documents ORDER BY id")
    ).all()
    got = {i: np.array(s[1:-1].split(","), dtype=np.float32) for i, s in raw}
    assert np.array_equal(got[a.id], v32)
    assert np.array_equal(got[b.id], v64.astype(np.float32))
    assert np.array_equal(got[c.id], np.arange(384, dtype=np.float32))


def test_collection_records_model_and_dimension(repo: Repo) -> None:
    info = repo.collection
    assert info.name == "test"
    assert info.dimension == 384
    assert info.embedding_model == vs.HashingTestEmbedder().model_name


def test_get_many_get_by_external_id_and_missing(repo: Repo) -> None:
    docs = [repo.add(f"text {i}", external_id=f"e{i}") for i in range(4)]
    ids = [d.id for d in docs]
    assert [d.id for d in repo.get_many([ids[2], 999_999, ids[0]])] == [ids[2], ids[0]]
    assert repo.get_by_external_id("e3").id == ids[3]
    with pytest.raises(vs.DocumentNotFoundError):
        repo.get(999_999)
    with pytest.raises(vs.DocumentNotFoundError):
        repo.get_by_external_id("nope")
    with pytest.raises(vs.ValidationError):
        repo.get_many(["1"])  # type: ignore[list-item]


def test_delete_by_ids_and_external_ids_and_count(repo: Repo) -> None:
    docs = [repo.add(f"text {i}", external_id=f"e{i}") for i in range(5)]
    assert repo.count() == 5
    assert repo.delete([docs[0].id, docs[1].id]) == 2
    assert repo.delete(external_ids=["e2", "missing"]) == 1
    assert repo.delete([]) == 0
    assert repo.count() == 2
    with pytest.raises(vs.ValidationError):
        repo.delete()


def test_collections_are_isolated(session: Session, embedder: vs.HashingTestEmbedder) -> None:
    a = vs.DocumentRepository(session, collection="a", embedder=embedder)
    b = vs.DocumentRepository(session, collection="b", embedder=embedder)
    doc = a.add("only in a", external_id="same")
    b.add("only in b", external_id="same")  # same external id, other collection
    assert a.count() == 1
    assert b.count() == 1
    with pytest.raises(vs.DocumentNotFoundError):
        b.get(doc.id)
    assert b.delete([doc.id]) == 0
    assert [h.document.text for h in b.nearest("only in a", k=5)] == ["only in b"]


def test_nearest_orders_by_cosine_distance(repo: Repo) -> None:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((30, 384)).astype(np.float32)
    for i, v in enumerate(vectors):
        repo.add(f"doc {i}", embedding=v)
    query = vectors[5] + 0.01 * rng.standard_normal(384).astype(np.float32)
    hits = repo.nearest(query, k=5)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = np.argsort(1 - unit @ (query / np.linalg.norm(query)))[:5]
    assert [h.document.text for h in hits] == [f"doc {i}" for i in expected]
    assert all(a.distance <= b.distance for a, b in itertools.pairwise(hits))
    assert math.isclose(hits[0].score, 1 - hits[0].distance)


def test_nearest_by_text_uses_the_embedder(repo: Repo) -> None:
    repo.add("postgres vector search")
    repo.add("baking sourdough bread")
    assert repo.nearest("vector search in postgres", k=1)[0].document.text == (
        "postgres vector search"
    )


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_nearest_rejects_bad_k(repo: Repo, k: Any) -> None:
    with pytest.raises(vs.ValidationError):
        repo.nearest(np.ones(384), k=k)


def test_the_repository_never_commits_the_host_session(
    repo: Repo, session: Session, engine: Engine
) -> None:
    repo.add("uncommitted")
    assert table_count(engine) == 0  # another connection sees nothing
    session.rollback()
    assert table_count(engine) == 0
    # The rolled-back transaction also took the collection: it is created again.
    repo.add("committed")
    session.commit()
    assert table_count(engine) == 1


def test_a_failed_write_keeps_the_callers_transaction_usable(
    repo: Repo, session: Session, engine: Engine
) -> None:
    repo.add("first", external_id="dup")
    with pytest.raises(vs.ConflictError, match="dup"):
        repo.add("second", external_id="dup")
    repo.add("third")
    session.commit()
    assert table_count(engine) == 2


def test_standalone_repository_commits_each_call(db_url: Any, engine: Engine) -> None:
    repo: Repo = vs.DocumentRepository.standalone(
        db_url, collection="solo", embedder=vs.HashingTestEmbedder()
    )
    doc = repo.add("persisted at once")
    assert table_count(engine) == 1
    assert repo.get(doc.id).text == "persisted at once"
    assert repo.count() == 1
    repo.close()


def test_unknown_collection_is_an_error_when_not_creating(session: Session, engine: Engine) -> None:
    repo: Repo = vs.DocumentRepository(session, collection="ghost", create=False)
    with pytest.raises(vs.CollectionNotFoundError, match="ghost"):
        repo.add("x", embedding=np.ones(384))
    with pytest.raises(vs.CollectionNotFoundError):
        repo.count()
    assert table_count(engine, "vectorstore_collections") == 0


def test_mixing_embedding_models_is_refused(session: Session, engine: Engine) -> None:
    vs.DocumentRepository(session, collection="c", embedder=vs.HashingTestEmbedder()).add("a")

    class OtherModel(vs.HashingTestEmbedder):
        @property
        def model_name(self) -> str:
            return "someone/else"

    other: Repo = vs.DocumentRepository(session, collection="c", embedder=OtherModel())
    with pytest.raises(vs.EmbeddingModelMismatchError, match="someone/else"):
        other.add("b")
    wrong_dim: Repo = vs.DocumentRepository(
        session, collection="c2", embedder=vs.HashingTestEmbedder(dimension=16)
    )
    with pytest.raises(vs.DimensionMismatchError):
        wrong_dim.add("c")
    session.commit()
    assert table_count(engine) == 1


def test_text_without_embedding_needs_an_embedder(session: Session, engine: Engine) -> None:
    repo: Repo = vs.DocumentRepository(session, collection="bare")
    with pytest.raises(vs.ConfigurationError, match="embedder"):
        repo.add("no vector, no embedder")
    with pytest.raises(vs.ConfigurationError):
        repo.nearest("text query")
    session.commit()
    assert table_count(engine) == 0


BAD_ADDS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("wrong dimension", {"text": "x", "embedding": np.ones(383)}, vs.DimensionMismatchError, "383"),
    ("zero dimension", {"text": "x", "embedding": []}, vs.DimensionMismatchError, "0"),
    ("nan", {"text": "x", "embedding": np.full(384, np.nan)}, vs.ValidationError, "NaN"),
    ("inf", {"text": "x", "embedding": [math.inf] * 384}, vs.ValidationError, "infinity"),
    (
        "float64 overflow",
        {"text": "x", "embedding": np.full(384, 1e300)},
        vs.ValidationError,
        "float32",
    ),
    ("strings", {"text": "x", "embedding": ["a"] * 384}, vs.ValidationError, "numeric"),
    ("2-D", {"text": "x", "embedding": np.ones((2, 384))}, vs.ValidationError, "1-D"),
    ("None text", {"text": None}, vs.ValidationError, "None"),
    ("empty text", {"text": "  "}, vs.ValidationError, "empty"),
    ("NUL byte", {"text": "a\x00b"}, vs.ValidationError, "NUL"),
    ("lone surrogate", {"text": "a\ud800b"}, vs.ValidationError, "surrogate"),
    ("huge text", {"text": "x" * 1_000_001}, vs.ValidationError, "limit"),
    ("set metadata", {"text": "x", "metadata": {"tags": {1, 2}}}, vs.ValidationError, "JSON"),
    ("nan metadata", {"text": "x", "metadata": {"v": math.nan}}, vs.ValidationError, "JSON"),
    ("list metadata", {"text": "x", "metadata": [1, 2]}, vs.ValidationError, "mapping"),
    ("NUL metadata", {"text": "x", "metadata": {"k": "a\x00"}}, vs.ValidationError, "NUL"),
    ("bad external id", {"text": "x", "external_id": 1.5}, vs.ValidationError, "external_id"),
    ("empty external id", {"text": "x", "external_id": ""}, vs.ValidationError, "external_id"),
]


@pytest.mark.parametrize(
    ("case", "kwargs", "error", "needle"), BAD_ADDS, ids=[c[0] for c in BAD_ADDS]
)
def test_bad_input_is_a_clear_error_and_writes_nothing(
    repo: Repo, session: Session, engine: Engine,
    case: str, kwargs: dict[str, Any], error: type[Exception], needle: str,
) -> None:  # fmt: skip
    text_value = kwargs.pop("text")
    with pytest.raises(error, match=needle):
        repo.add(text_value, **kwargs)
    session.commit()
    assert table_count(engine) == 0


def test_standalone_add_matches_the_session_path_on_both_drivers(
    any_driver_url: Any, engine: Engine
) -> None:
    """The standalone fast path stores and returns exactly what the Session path does."""
    repo: Repo = vs.DocumentRepository.standalone(
        any_driver_url, collection="fast", embedder=vs.HashingTestEmbedder()
    )
    rng = np.random.default_rng(3)
    vector = rng.standard_normal(384).astype(np.float32) * np.float32(1e-3)
    vector[0] = np.float32(3.4028235e38)  # float32's largest: must survive the text form
    vector[1] = np.float32(1.4e-45)  # the smallest subnormal, too
    doc = repo.add("fast path", embedding=vector, metadata={"q": "it's; --"}, external_id="f1")
    assert isinstance(doc, vs.Document)
    assert doc.id > 0
    assert doc.created_at is not None
    assert doc.metadata_ == {"q": "it's; --"}
    assert doc.external_id == "f1"
    with Session(engine) as s:
        stored = s.get(vs.Document, doc.id)
        assert stored is not None
        assert np.array_equal(np.asarray(stored.embedding, dtype=np.float32), vector)
        assert stored.metadata_ == doc.metadata_
        assert stored.content_hash == doc.content_hash
        assert stored.created_at == doc.created_at
    assert np.array_equal(np.asarray(doc.embedding, dtype=np.float32), vector)
    with pytest.raises(vs.ConflictError, match="f1"):
        repo.add("again", embedding=vector, external_id="f1")
    with pytest.raises(vs.ValidationError):
        repo.add("nan", embedding=np.full(384, np.nan))
    assert table_count(engine) == 1
    assert repo.get(doc.id).text == "fast path"
    repo.close()
