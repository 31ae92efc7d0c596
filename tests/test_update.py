"""Changing stored documents: update, update_where, delete_where.

Both drivers, bound to a caller's Session and standalone.

Every method runs inside a caller's Session (never committing it) and
standalone; bad input is a typed error and leaves the database as it was.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs
from tests._changes import *  # noqa: F403 - the fixtures
from tests._changes import _seed
from tests.conftest import table_count

Repo = vs.DocumentRepository[vs.Document]
DIM = vs.DEFAULT_DIMENSION


def _snapshot(engine_or_repo: Any) -> list[tuple[Any, ...]]:
    """Every stored row's mutable columns, in id order."""
    if isinstance(engine_or_repo, vs.DocumentRepository):
        return [
            (d.id, d.text, d.metadata_, d.content_hash, tuple(d.embedding))
            for d in engine_or_repo.iterate()
        ]
    with engine_or_repo.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT id, text, metadata, content_hash, embedding::text "
                    "FROM vectorstore_documents ORDER BY id"
                )
            )
        ]


# -- update -----------------------------------------------------------------------------
def test_update_replaces_and_merges_metadata_by_id_and_external_id(any_repo: Repo) -> None:
    docs = _seed(any_repo, 3)
    replaced = any_repo.update(docs[0].id, metadata={"tier": "gold"})
    assert replaced.metadata_ == {"tier": "gold"}
    assert any_repo.get(docs[0].id).metadata_ == {"tier": "gold"}
    merged = any_repo.update("e1", metadata={"i": 100, "new": [1, 2]}, merge=True)
    assert merged.id == docs[1].id
    assert merged.metadata_ == {"i": 100, "kind": "odd", "keep": True, "new": [1, 2]}
    assert any_repo.get(docs[1].id).metadata_ == merged.metadata_
    # the rest is untouched
    assert any_repo.get(docs[2].id).metadata_ == docs[2].metadata_
    assert any_repo.get(docs[1].id).text == docs[1].text


def test_update_of_text_recomputes_hash_full_text_and_embedding(any_repo: Repo) -> None:
    docs = _seed(any_repo, 6)
    new_text = "a zebra grazing in the savannah"
    old_text = docs[2].text
    updated = any_repo.update(docs[2].id, text=new_text)
    assert updated.text == new_text
    assert updated.content_hash == hashlib.sha256(new_text.encode()).digest()
    expected = vs.HashingTestEmbedder().embed([new_text])[0]
    assert np.allclose(np.asarray(updated.embedding, dtype=np.float32), expected, atol=1e-6)
    # nearest re-ranks: the new text finds the updated document first
    hits = any_repo.nearest(new_text, k=3, strategy="exact")
    assert hits[0].document.id == docs[2].id
    assert hits[0].distance == pytest.approx(0.0, abs=1e-5)
    # and the old text no longer does
    old = any_repo.nearest(old_text, k=1, strategy="exact")
    assert old[0].document.id != docs[2].id
    # hybrid: the full-text arm sees the new words, not the old ones
    fused = any_repo.hybrid("zebra savannah", k=3)
    assert fused[0].document.id == docs[2].id
    assert fused[0].extra["text_rank"] == 1
    stale = any_repo.hybrid("stocks", k=10)
    assert all(h.document.id != docs[2].id or h.extra["text_rank"] is None for h in stale)


def test_update_with_a_given_embedding_and_no_embedder(any_driver_url: Any) -> None:
    engine = vs.make_engine(any_driver_url)
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="vectors-only")
    v1, v2 = np.eye(DIM, dtype=np.float32)[:2]
    doc = repo.add("first", embedding=v1)
    with pytest.raises(vs.ConfigurationError, match="no embedder"):
        repo.update(doc.id, text="second")
    assert repo.get(doc.id).text == "first"
    moved = repo.update(doc.id, embedding=v2)
    assert np.array_equal(np.asarray(moved.embedding, dtype=np.float32), v2)
    assert moved.text == "first"
    both = repo.update(doc.id, text="second", embedding=v1)
    assert both.text == "second"
    assert np.array_equal(np.asarray(both.embedding, dtype=np.float32), v1)
    engine.dispose()


BAD_UPDATES: list[tuple[str, Any, dict[str, Any], type[Exception], str]] = [
    ("unknown id", 10**9, {"metadata": {"a": 1}}, vs.DocumentNotFoundError, "1000000000"),
    ("unknown external id", "nope", {"metadata": {"a": 1}}, vs.DocumentNotFoundError, "nope"),
    ("nothing to change", "e0", {}, vs.ValidationError, "needs text"),
    ("merge without metadata", "e0", {"merge": True, "text": "x"}, vs.ValidationError, "merge"),
    ("bool key", True, {"metadata": {}}, vs.ValidationError, "integer id"),
    ("float key", 1.5, {"metadata": {}}, vs.ValidationError, "integer id"),
    ("dimension", "e0", {"embedding": np.ones(3)}, vs.DimensionMismatchError, "384"),
    ("nan vector", "e0", {"embedding": np.full(DIM, np.nan)}, vs.ValidationError, "NaN|finite"),
    ("metadata type", "e0", {"metadata": [1, 2]}, vs.ValidationError, "mapping"),
    ("metadata json", "e0", {"metadata": {"a": object()}}, vs.ValidationError, "JSON"),
    ("metadata nul", "e0", {"metadata": {"a": "\x00"}}, vs.ValidationError, "NUL"),
    ("empty text", "e0", {"text": ""}, vs.ValidationError, "text"),
]


@pytest.mark.parametrize(
    ("case", "key", "kwargs", "error", "needle"), BAD_UPDATES, ids=[c[0] for c in BAD_UPDATES]
)
def test_bad_updates_are_typed_errors_and_change_nothing(
    any_repo: Repo, case: str, key: Any, kwargs: dict[str, Any], error: type[Exception],
    needle: str,
) -> None:  # fmt: skip
    _seed(any_repo, 3)
    before = _snapshot(any_repo)
    with pytest.raises(error, match=needle):
        any_repo.update(key, **kwargs)
    assert _snapshot(any_repo) == before


def test_update_in_a_host_session_is_never_committed(
    session: Session, engine: Engine, repo: Repo
) -> None:
    doc = repo.add("kept", metadata={"v": 1})
    session.commit()
    loaded = repo.get(doc.id)  # in the Session's identity map
    repo.update(doc.id, metadata={"v": 2})
    assert loaded.metadata_ == {"v": 2}  # the Session's copy follows
    assert repo.update_where({}, merge_metadata={"w": 3}) == 1
    assert repo.delete_where({"v": 9}) == 0
    with engine.connect() as conn:  # another connection still sees the committed row
        stored = conn.execute(text("SELECT metadata FROM vectorstore_documents")).scalar_one()
    assert stored == {"v": 1}
    session.rollback()
    assert repo.get(doc.id).metadata_ == {"v": 1}


# -- update_where / delete_where ------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_update_where_sets_and_merges_in_batches(any_repo: Repo, batch_size: int) -> None:
    docs = _seed(any_repo, 10)
    n = any_repo.update_where({"kind": "odd"}, merge_metadata={"flag": 1}, batch_size=batch_size)
    assert n == 5
    for d in any_repo.iterate():
        if d.metadata_.get("kind") == "odd":
            assert d.metadata_["flag"] == 1
            assert d.metadata_["keep"] is True
        else:
            assert "flag" not in d.metadata_
    n = any_repo.update_where(
        {"i": {"$gte": 8}}, set_metadata={"gone": True}, batch_size=batch_size
    )
    assert n == 2
    assert any_repo.count({"gone": True}) == 2
    assert any_repo.get(docs[9].id).metadata_ == {"gone": True}
    # a filter on a column and a SQLAlchemy expression work too
    assert any_repo.update_where(
        vs.Document.external_id.in_(["e0", "e1"]), merge_metadata={"x": 0}, batch_size=batch_size
    ) == 2  # fmt: skip
    assert any_repo.update_where({}, merge_metadata={"all": 1}, batch_size=batch_size) == 10
    assert any_repo.count({"all": 1}) == 10


@pytest.mark.parametrize("batch_size", [1, 4, 1000])
def test_delete_where_in_batches(any_repo: Repo, batch_size: int) -> None:
    _seed(any_repo, 10)
    assert any_repo.delete_where({"kind": "even"}, batch_size=batch_size) == 5
    assert any_repo.count() == 5
    assert not any_repo.exists({"kind": "even"})
    assert any_repo.delete_where({"kind": "even"}, batch_size=batch_size) == 0
    assert any_repo.delete_where({}, batch_size=batch_size) == 5
    assert any_repo.count() == 0


def test_changes_stay_in_their_collection(any_repo: Repo) -> None:
    _seed(any_repo, 4)
    sessions = any_repo._sessions
    other: Repo
    if sessions.session is not None:
        other = vs.DocumentRepository(sessions.session, collection="other",
                                      embedder=vs.HashingTestEmbedder())  # fmt: skip
    else:
        other = vs.DocumentRepository.standalone(
            sessions.write_engine, collection="other", embedder=vs.HashingTestEmbedder()
        )
    _seed(other, 4)
    assert any_repo.update_where({}, set_metadata={"mine": 1}) == 4
    assert other.count({"mine": 1}) == 0
    assert any_repo.delete_where({}) == 4
    assert other.count() == 4


BAD_WHERE: list[tuple[str, Any, dict[str, Any], type[Exception], str]] = [
    ("no filter", None, {"set_metadata": {}}, vs.ValidationError, "needs a filter"),
    ("bad operator", {"i": {"$nope": 1}}, {"set_metadata": {}}, vs.FilterError, r"\$nope"),
    ("bad filter type", 5, {"set_metadata": {}}, vs.FilterError, "a filter must be"),
    ("both", {}, {"set_metadata": {}, "merge_metadata": {}}, vs.ValidationError, "exactly one"),
    ("neither", {}, {}, vs.ValidationError, "exactly one"),
    ("bad metadata", {}, {"merge_metadata": {"a": {1, 2}}}, vs.ValidationError, "JSON"),
    ("not a mapping", {}, {"set_metadata": "x"}, vs.ValidationError, "mapping"),
    ("batch size", {}, {"set_metadata": {}, "batch_size": 0}, vs.ValidationError, "batch_size"),
]


@pytest.mark.parametrize(
    ("case", "flt", "kwargs", "error", "needle"), BAD_WHERE, ids=[c[0] for c in BAD_WHERE]
)
def test_bad_update_where_and_delete_where_change_nothing(
    any_repo: Repo, case: str, flt: Any, kwargs: dict[str, Any], error: type[Exception],
    needle: str,
) -> None:  # fmt: skip
    _seed(any_repo, 5)
    before = _snapshot(any_repo)
    with pytest.raises(error, match=needle):
        any_repo.update_where(flt, **kwargs)
    if "set_metadata" in kwargs and "merge_metadata" not in kwargs and case != "not a mapping":
        batch = {"batch_size": kwargs["batch_size"]} if "batch_size" in kwargs else {}
        with pytest.raises(error, match=needle):
            any_repo.delete_where(flt, **batch)
    assert _snapshot(any_repo) == before


def test_a_filter_matching_nothing_changes_nothing(any_repo: Repo) -> None:
    _seed(any_repo, 5)
    before = _snapshot(any_repo)
    assert any_repo.update_where({"kind": "none"}, set_metadata={"x": 1}) == 0
    assert any_repo.delete_where({"i": {"$gt": 100}}) == 0
    assert _snapshot(any_repo) == before


def test_changes_on_a_collection_that_does_not_exist_create_nothing(
    db_url: Any, engine: Engine
) -> None:
    repo: Repo = vs.DocumentRepository.standalone(db_url, collection="none-yet")
    assert repo.update_where({}, set_metadata={"a": 1}) == 0
    assert repo.delete_where({}) == 0
    with pytest.raises(vs.DocumentNotFoundError):
        repo.update(1, metadata={"a": 1})
    with pytest.raises(vs.FilterError):
        repo.delete_where({"$bad": 1})
    assert table_count(engine, "vectorstore_collections") == 0
    repo.close()


# -- concurrency ------------------------------------------------------------------------------
def test_concurrent_updates_and_deletes_during_nearest(db_url: Any) -> None:
    """Readers never fail and never see a row that is not there, while writers change rows."""
    engine = vs.make_engine(db_url, pool_size=4)
    embedder = vs.HashingTestEmbedder()
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="busy", embedder=embedder)
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((400, DIM)).astype(np.float32)
    repo.bulk_add(
        [f"row {i}" for i in range(400)], embeddings=vectors,
        metadata=[{"g": i % 4, "v": 0} for i in range(400)],
        external_ids=[f"r{i}" for i in range(400)],
    )  # fmt: skip
    errors: list[BaseException] = []
    writer_done = threading.Event()

    def writer() -> None:
        try:
            for round_ in range(1, 6):
                repo.update_where({"g": 1}, merge_metadata={"v": round_}, batch_size=25)
                for i in range(round_ * 10, round_ * 10 + 10):
                    repo.update(f"r{i}", metadata={"g": i % 4, "v": -round_})
            repo.delete_where({"g": 3}, batch_size=17)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            writer_done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not writer_done.is_set() or reads < 5:
        q = vectors[reads % 400]
        hits = repo.nearest(q, k=10, filter={"g": {"$in": [1, 3]}}, strategy="exact")
        for h in hits:
            assert h.document.metadata_["g"] in (1, 3)  # no row outside the filter
        reads += 1
    thread.join()
    assert not errors, errors
    after = repo.nearest(vectors[3], k=400, filter={"g": 3}, strategy="exact")
    assert after.returned == 0  # every g=3 row is gone: no phantom
    assert repo.count() == 300
    # the last round's update_where, then its single updates of r50..r59 (two have g=1)
    assert repo.count({"g": 1, "v": 5}) == 100 - len([i for i in range(50, 60) if i % 4 == 1])
    engine.dispose()


def test_a_host_sessions_copies_follow_update_where_and_delete_where(
    session: Session, repo: Repo
) -> None:
    docs = [repo.add(f"t{i}", metadata={"i": i}) for i in range(4)]
    assert repo.update_where({"i": {"$lt": 2}}, merge_metadata={"seen": True}, batch_size=1) == 2
    assert [d.metadata_.get("seen") for d in docs] == [True, True, None, None]
    assert repo.delete_where({"i": 3}) == 1
    assert docs[3] not in session  # the deleted row left the Session
    assert [d.id for d in repo.iterate()] == [d.id for d in docs[:3]]


def test_update_where_skips_rows_it_would_not_change(any_repo: Repo) -> None:
    """A row whose metadata already holds the patch is not rewritten (no new row version)."""
    _seed(any_repo, 6)
    engine = any_repo._sessions.write_engine

    def versions() -> list[tuple[int, str]]:
        sessions = any_repo._sessions
        if sessions.session is not None:
            rows = sessions.session.execute(
                text("SELECT id, xmin::text FROM vectorstore_documents ORDER BY id")
            )
        else:
            with engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT id, xmin::text FROM vectorstore_documents ORDER BY id")
                ).all()
        return [(int(r[0]), str(r[1])) for r in rows]

    assert any_repo.update_where({"kind": "odd"}, merge_metadata={"keep": True}) == 0
    assert any_repo.update_where({"i": {"$lt": 4}}, merge_metadata={"tier": 1}) == 4
    before = versions()
    assert any_repo.update_where({}, merge_metadata={"tier": 1}) == 2  # only i = 4, 5 change
    after = versions()
    assert [b for b, a in zip(before, after, strict=True) if b == a] == before[:4]
    assert any_repo.count({"tier": 1}) == 6
    assert any_repo.update_where({}, set_metadata={"tier": 1}) == 6
    assert any_repo.update_where({}, set_metadata={"tier": 1}) == 0
