"""Re-embedding online (vs.reembed) on the real database: resume, carry-over, switch, rollback."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import numpy as np
import pytest
from sqlalchemy import URL, Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs

OLD = vs.HashingTestEmbedder()


class Renamed(vs.HashingTestEmbedder):
    """Another "model" of the same dimension (the vectors differ by a sign flip per word)."""

    def __init__(self, dimension: int = 384, *, fail_after: int | None = None) -> None:
        super().__init__(dimension)
        self.fail_after = fail_after

    @property
    def model_name(self) -> str:
        return f"tests/renamed-{self.dimension}"

    def embed(self, texts: Any) -> Any:
        if self.fail_after is not None and self.texts_embedded + len(texts) > self.fail_after:
            raise vs.EmbedderError("the model died halfway")
        return -super().embed(texts)


class Doc768(vs.DocumentMixin, vs.Base):
    __tablename__ = "reembed_docs_768"
    embedding_dimension = 768


def _rows(n: int, prefix: str = "doc") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"text": f"{prefix} {i} about topic {i % 7} and more words", "external_id": f"{prefix}-{i}",
         "metadata": {"i": i, "even": i % 2 == 0}}
        for i in range(n)
    ]  # fmt: skip
    # duplicates of one text: without external ids, and with metadata that differ
    rows += [{"text": "a repeated text"}, {"text": "a repeated text"},
             {"text": "a repeated text", "metadata": {"x": 1}}]  # fmt: skip
    return rows


def _fill(url: Any, name: str, rows: list[dict[str, Any]]) -> None:
    with vs.DocumentRepository.standalone(url, collection=name, embedder=OLD) as repo:
        repo.bulk_add(rows)


def _content(engine: Engine, name: str, table: str = "vectorstore_documents") -> Counter[Any]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            f"SELECT d.external_id, d.text, d.metadata::text FROM {table} d "
            "JOIN vectorstore_collections c ON c.id = d.collection_id WHERE c.name = :n"
        ), {"n": name}).all()  # fmt: skip
    return Counter(tuple(r) for r in rows)


def _state(engine: Engine) -> Any:
    with engine.connect() as conn:
        return (
            conn.execute(
                text("SELECT name, embedding_model FROM vectorstore_collections ORDER BY name")
            ).all(),
            conn.execute(
                text("SELECT name, collection_id FROM vectorstore_aliases ORDER BY name")
            ).all(),
            conn.execute(text("SELECT count(*) FROM vectorstore_documents")).scalar_one(),
        )


def test_reembed_builds_verifies_and_switches(any_driver_url: URL) -> None:
    url = any_driver_url
    _fill(url, "products", _rows(50))
    vs.rename_collection(url, "products", "products_v1", alias=True)
    new = Renamed()
    result = vs.reembed(url, "products", new, target="products_v2", commit_rows=16, chunk_rows=8)
    assert result.switched
    assert result.alias == "products"
    assert (result.rows, result.copied, result.deleted, result.already) == (53, 53, 0, 0)
    assert result.sample == 20
    assert result.sample_hits == 20
    engine = vs.make_engine(url)
    assert _content(engine, "products_v2") == _content(engine, "products_v1")
    assert vs.get_alias(url, "products").collection == "products_v2"
    with vs.DocumentRepository.standalone(url, collection="products", embedder=new) as repo:
        assert repo.collection.embedding_model == "tests/renamed-384"
        hit = repo.nearest("doc 3 about topic 3 and more words", k=1)[0]
        assert hit.document.external_id == "doc-3"
    # one call back, and forward again
    assert vs.rollback_alias(url, "products").collection == "products_v1"
    with vs.DocumentRepository.standalone(url, collection="products", embedder=OLD) as repo:
        assert repo.collection.name == "products_v1"
    engine.dispose()


def test_reembed_into_another_table_and_dimension(engine: Engine) -> None:
    Doc768.__table__.create(engine)  # type: ignore[attr-defined]
    try:
        _fill(engine, "v1", _rows(30))
        vs.create_alias(engine, "live", "v1")
        result = vs.reembed(engine, "live", vs.HashingTestEmbedder(768), target="v2",
                            model=Doc768)  # fmt: skip
        assert result.switched
        assert result.rows == 33
        assert _content(engine, "v2", "reembed_docs_768") == _content(engine, "v1")
        info = vs.collection_info(engine, "v2", model=Doc768)
        assert info.dimension == 768
        assert info.rows == 33
        assert result.index is None  # the table's own HNSW index serves it
        assert vs.get_alias(engine, "live").table == '"reembed_docs_768"' or vs.get_alias(
            engine, "live").table == "reembed_docs_768"  # fmt: skip
    finally:
        vs.drop_alias(engine, "live", missing_ok=True)
        Doc768.__table__.drop(engine)  # type: ignore[attr-defined]


def test_an_interrupted_reembed_resumes_with_exact_counts(engine: Engine) -> None:
    _fill(engine, "v1", _rows(60))
    vs.create_alias(engine, "a", "v1")
    dying = Renamed(fail_after=25)
    with pytest.raises(vs.EmbedderError):
        vs.reembed(engine, "a", dying, target="v2", chunk_rows=5, commit_rows=10)
    # two committed steps of 10 rows stayed; the alias did not move
    assert sum(_content(engine, "v2").values()) == 20
    assert vs.get_alias(engine, "a").collection == "v1"
    again = Renamed()
    result = vs.reembed(engine, "a", again, target="v2", chunk_rows=5, commit_rows=10)
    assert (result.already, result.copied, result.rows) == (20, 43, 63)
    assert again.texts_embedded == 43 + 20  # the rows left, and the sample's 20 queries
    assert _content(engine, "v2") == _content(engine, "v1")
    assert result.switched


def test_rows_written_during_the_run_are_carried_over(engine: Engine) -> None:
    """Adds, an update (same external id, new text) and a delete through the alias, mid-run."""
    _fill(engine, "v1", _rows(40))
    vs.create_alias(engine, "a", "v1")
    live = vs.DocumentRepository.standalone(engine, collection="a", embedder=OLD)
    fired = threading.Event()

    class Busy(Renamed):
        def embed(self, texts: Any) -> Any:
            if not fired.is_set():
                fired.set()
                # another connection, committed while the copy runs
                live.bulk_add([{"text": "written during the run", "external_id": "late-1"},
                               {"text": "doc 5 changed", "external_id": "doc-5"}],
                              on_conflict="update")  # fmt: skip
                live.delete(external_ids=["doc-7"])
            return super().embed(texts)

    result = vs.reembed(engine, "a", Busy(), target="v2", chunk_rows=10, commit_rows=10)
    live.close()
    assert fired.is_set()
    source = _content(engine, "v1")
    assert _content(engine, "v2") == source
    assert sum(source.values()) == 43
    assert result.rows == 43
    assert ("late-1", "written during the run", "{}") in source
    assert result.deleted >= 1  # the old doc-5 (and doc-7 if it was copied first)


def test_bad_inputs_are_typed_errors_and_change_nothing(engine: Engine) -> None:
    _fill(engine, "v1", _rows(5))
    vs.create_alias(engine, "a", "v1")
    before = _state(engine)
    with pytest.raises(vs.CollectionNotFoundError):
        vs.reembed(engine, "nope", Renamed(), target="v2")
    with pytest.raises(vs.DimensionMismatchError, match="768"):
        vs.reembed(engine, "a", vs.HashingTestEmbedder(768), target="v2")  # Document is 384-d
    with pytest.raises(vs.ValidationError, match="source collection itself"):
        vs.reembed(engine, "a", Renamed(), target="v1")
    with pytest.raises(vs.ValidationError, match="not an alias"):
        vs.reembed(engine, "v1", Renamed(), target="v2", alias="v1")
    with pytest.raises(vs.ValidationError, match="alias"):
        vs.reembed(engine, "a", Renamed(), target="a")
    with pytest.raises(vs.ValidationError):
        vs.reembed(engine, "a", Renamed(), target="v2", commit_rows=0)
    with Session(engine) as session, pytest.raises(vs.ConfigurationError, match="Session"):
        vs.reembed(session, "a", Renamed(), target="v2")  # type: ignore[arg-type]
    _fill(engine, "taken", [{"text": "x"}])  # exists, holding the old model's vectors
    before = _state(engine)
    with pytest.raises(vs.EmbeddingModelMismatchError):
        vs.reembed(engine, "a", Renamed(), target="taken")
    assert _state(engine) == before


def test_a_failed_sample_check_switches_nothing(engine: Engine) -> None:
    _fill(engine, "v1", _rows(30))
    vs.create_alias(engine, "a", "v1")

    class Random(Renamed):
        def embed(self, texts: Any) -> Any:
            self.texts_embedded += len(texts)
            rng = np.random.default_rng(self.texts_embedded)
            out = rng.standard_normal((len(texts), 384)).astype(np.float32)
            return out / np.linalg.norm(out, axis=1, keepdims=True)

    with pytest.raises(vs.VerificationError, match="nearest"):
        vs.reembed(engine, "a", Random(), target="v2")
    assert vs.get_alias(engine, "a").collection == "v1"
    assert sum(_content(engine, "v2").values()) == 33  # kept: a second run resumes it


def test_build_only_without_an_alias(engine: Engine) -> None:
    _fill(engine, "v1", _rows(10))
    result = vs.reembed(engine, "v1", Renamed(), target="v2", index=vs.IndexSpec(m=8))
    assert not result.switched
    assert result.alias is None
    assert result.index is not None  # built per collection, on request
    assert vs.collection_info(engine, "v2").indexes == (result.index,)
    assert _content(engine, "v2") == _content(engine, "v1")


def test_readers_during_a_reembed_never_see_an_error_or_an_empty_result(engine: Engine) -> None:
    _fill(engine, "v1", _rows(40))
    vs.create_alias(engine, "a", "v1")
    query = np.asarray(OLD.embed(["doc 1 about topic 1"])[0])
    errors: list[BaseException] = []
    sizes: list[int] = []
    done = threading.Event()

    def read() -> None:
        with vs.DocumentRepository.standalone(engine, collection="a") as repo:
            while not done.is_set():
                try:
                    sizes.append(len(repo.nearest(query, k=5)))
                except BaseException as exc:
                    errors.append(exc)
                    return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        result = vs.reembed(engine, "a", Renamed(), target="v2", chunk_rows=8, commit_rows=8)
    finally:
        done.set()
        for t in readers:
            t.join()
    assert result.switched
    assert errors == []
    assert sizes
    assert min(sizes) == 5
