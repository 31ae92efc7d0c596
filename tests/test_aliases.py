"""Collection lifecycle and aliases on the real database: both drivers, Session and standalone."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from sqlalchemy import URL, Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs

EMB = vs.HashingTestEmbedder()


def _fill(url: Any, name: str, n: int, *, prefix: str = "doc") -> None:
    with vs.DocumentRepository.standalone(url, collection=name, embedder=EMB) as repo:
        repo.bulk_add([{"text": f"{prefix} {i} words", "external_id": f"{prefix}-{i}"}
                       for i in range(n)])  # fmt: skip


def test_alias_round_trip_both_drivers(any_driver_url: URL) -> None:
    url = any_driver_url
    _fill(url, "v1", 3)
    _fill(url, "v2", 5, prefix="new")
    made = vs.create_alias(url, "products", "v1")
    assert (made.name, made.collection, made.previous) == ("products", "v1", None)
    with vs.DocumentRepository.standalone(url, collection="products", embedder=EMB) as repo:
        assert repo.count() == 3
        assert repo.collection.name == "v1"
        assert repo.collection.alias == "products"
        switched = vs.switch_alias(url, "products", "v2")
        assert (switched.collection, switched.previous) == ("v2", "v1")
        assert repo.count() == 5  # the next call of the same repository sees the switch
        back = vs.rollback_alias(url, "products")
        assert (back.collection, back.previous) == ("v1", "v2")
        assert repo.count() == 3
    listed = {c.name: c.aliases for c in vs.list_collections(url)}
    assert listed == {"v1": ("products",), "v2": ()}
    assert vs.drop_alias(url, "products") is True
    assert vs.list_aliases(url) == []
    assert vs.drop_alias(url, "products", missing_ok=True) is False


def test_alias_functions_in_a_caller_session_never_commit(engine: Engine) -> None:
    _fill(engine, "v1", 2)
    _fill(engine, "v2", 4)
    with Session(engine) as session:
        vs.create_alias(session, "a", "v1")
        vs.switch_alias(session, "a", "v2")
        repo = vs.DocumentRepository(session, collection="a", embedder=EMB)
        assert repo.count() == 4
        assert vs.get_alias(session, "a").previous == "v1"
        assert not session.in_nested_transaction()
        session.rollback()
    assert vs.list_aliases(engine) == []  # the caller rolled back: nothing stays


def test_a_session_repository_keeps_its_collection_for_the_transaction(engine: Engine) -> None:
    """Bound to a Session, the alias is resolved once per transaction (a consistent view)."""
    _fill(engine, "v1", 2)
    _fill(engine, "v2", 4)
    vs.create_alias(engine, "a", "v1")
    with Session(engine) as session:
        repo = vs.DocumentRepository(session, collection="a", embedder=EMB)
        assert repo.count() == 2
        vs.switch_alias(engine, "a", "v2")  # another connection, committed
        assert repo.count() == 2  # same transaction: same collection
        session.commit()
        assert repo.count() == 4  # the next transaction sees the switch


def test_writes_through_an_alias_go_where_it_points_now(any_driver_url: URL) -> None:
    url = any_driver_url
    _fill(url, "v1", 1)
    _fill(url, "v2", 1, prefix="other")
    vs.create_alias(url, "a", "v1")
    with vs.DocumentRepository.standalone(url, collection="a", embedder=EMB) as repo:
        repo.add("first")
        writer = repo.writer(max_rows=10, max_delay=None)
        writer.add("buffered one")
        writer.flush()
        vs.switch_alias(url, "a", "v2")
        repo.add("second")
        repo.bulk_add(["third", "fourth"])
        repo.ingest(["fifth"])
        writer.add("buffered two")  # the writer follows the switch too
        writer.close()
        assert repo.delete(external_ids=["other-0"]) == 1  # deletes in v2, not v1
    with vs.DocumentRepository.standalone(url, collection="v1", embedder=EMB) as v1:
        assert sorted(d.text for d in v1.nearest("first", k=10).documents) == [
            "buffered one", "doc 0 words", "first"]  # fmt: skip
    with vs.DocumentRepository.standalone(url, collection="v2", embedder=EMB) as v2:
        assert v2.count() == 5


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_async_repository_resolves_aliases(db_url: URL, anyio_backend: str) -> None:
    _fill(db_url, "v1", 2)
    _fill(db_url, "v2", 3)
    vs.create_alias(db_url, "a", "v1")
    async_url = db_url.set(drivername="postgresql+psycopg")
    async with vs.AsyncDocumentRepository.standalone(async_url, collection="a") as repo:
        assert await repo.count() == 2
        vs.switch_alias(db_url, "a", "v2")
        assert await repo.count() == 3


def test_a_switch_waits_for_a_write_holding_the_alias(engine: Engine) -> None:
    """A write through the alias holds it until it commits; the switch waits for it."""
    _fill(engine, "v1", 1)
    _fill(engine, "v2", 1)
    vs.create_alias(engine, "a", "v1")
    with Session(engine) as session:
        repo = vs.DocumentRepository(session, collection="a", embedder=EMB)
        repo.add("in flight")  # holds the alias FOR SHARE until the session commits
        with engine.connect() as other:
            other.execute(text("SET lock_timeout = '200ms'"))
            with pytest.raises(Exception, match="lock"):
                other.execute(text(
                    "UPDATE vectorstore_aliases SET collection_id = collection_id "
                    "WHERE name = 'a'"))  # fmt: skip
        session.commit()
    switched = vs.switch_alias(engine, "a", "v2")  # nothing holds it now
    assert switched.collection == "v2"
    with vs.DocumentRepository.standalone(engine, collection="v1") as v1:
        assert v1.count() == 2  # the write landed where the alias pointed when it ran


def test_name_space_and_bad_alias_input(engine: Engine) -> None:
    _fill(engine, "v1", 1)
    vs.create_alias(engine, "a", "v1")
    before = (vs.list_collections(engine), vs.list_aliases(engine))
    with pytest.raises(vs.ConflictError, match="collection named 'v1'"):
        vs.create_alias(engine, "v1", "v1")
    with pytest.raises(vs.ConflictError, match="alias named 'a'"):
        vs.create_alias(engine, "a", "v1")
    with pytest.raises(vs.ConflictError, match="alias named 'a'"):
        vs.create_collection(engine, "a")
    with pytest.raises(vs.ConflictError, match="alias named 'a'"):
        vs.rename_collection(engine, "v1", "a")
    with pytest.raises(vs.CollectionNotFoundError):
        vs.create_alias(engine, "b", "nope")
    with pytest.raises(vs.ValidationError, match="is an alias"):
        vs.create_alias(engine, "b", "a")  # no alias of an alias
    with pytest.raises(vs.CollectionNotFoundError):
        vs.switch_alias(engine, "nope", "v1")
    with pytest.raises(vs.ValidationError, match="no previous"):
        vs.rollback_alias(engine, "a")
    with pytest.raises(vs.ConflictError, match="alias"):
        vs.drop_collection(engine, "v1")  # an alias points to it
    with pytest.raises(vs.ValidationError):
        vs.create_alias(engine, "", "v1")
    assert (vs.list_collections(engine), vs.list_aliases(engine)) == before


def test_a_repository_on_an_alias_never_creates_a_collection(engine: Engine) -> None:
    _fill(engine, "v1", 1)
    vs.create_alias(engine, "a", "v1")
    with vs.DocumentRepository.standalone(engine, collection="a", embedder=EMB) as repo:
        repo.bulk_add(["x"])
    assert [c.name for c in vs.list_collections(engine)] == ["v1"]
    wrong = vs.HashingTestEmbedder(768)

    class Doc768(vs.DocumentMixin, vs.Base):
        __tablename__ = "alias_docs_768"
        embedding_dimension = 768

    with pytest.raises(vs.DimensionMismatchError):
        vs.DocumentRepository.standalone(engine, collection="a", embedder=wrong, model=Doc768).add(
            "y"
        )


def test_rename_with_alias_keeps_the_old_name_working(any_driver_url: URL) -> None:
    url = any_driver_url
    _fill(url, "products", 3)
    with vs.DocumentRepository.standalone(url, collection="products", embedder=EMB) as repo:
        assert repo.count() == 3
        info = vs.rename_collection(url, "products", "products_v1", alias=True)
        assert info.name == "products_v1"
        assert repo.count() == 3  # same id; the name now resolves through the alias
        repo.add("after the rename")
    assert {a.name: a.collection for a in vs.list_aliases(url)} == {"products": "products_v1"}
    assert vs.collection_info(url, "products_v1").rows == 4


# -- lifecycle gaps: drop refuses while written, indexes of every table, size on disk --------
def test_drop_is_refused_while_a_writer_holds_the_collection(engine: Engine) -> None:
    _fill(engine, "c", 2)
    with Session(engine) as writer:
        vs.DocumentRepository(writer, collection="c", embedder=EMB).add("uncommitted")
        with pytest.raises(vs.ConflictError, match="being written"):
            vs.drop_collection(engine, "c")
        writer.commit()
    assert vs.collection_info(engine, "c").rows == 3
    assert vs.drop_collection(engine, "c") == 3


class OtherDoc(vs.DocumentMixin, vs.Base):
    __tablename__ = "lifecycle_other_docs"
    embedding_dimension = 384


def test_drop_removes_own_indexes_on_every_document_table(engine: Engine) -> None:
    OtherDoc.__table__.create(engine)  # type: ignore[attr-defined]
    try:
        with vs.DocumentRepository.standalone(engine, collection="c", embedder=EMB,
                                              model=OtherDoc) as other:  # fmt: skip
            other.bulk_add(["a", "b"])
            own = other.create_index(vs.IndexSpec(per_collection=True))
        with vs.DocumentRepository.standalone(engine, collection="c", embedder=EMB) as repo:
            repo.bulk_add(["c"])
            own_default = repo.create_index(vs.IndexSpec(per_collection=True, m=8))
        info = vs.collection_info(engine, "c")
        assert info.indexes == (own_default,)
        assert info.size_bytes > 0
        assert vs.collection_info(engine, "c", model=OtherDoc).indexes == (own,)
        assert vs.drop_collection(engine, "c") == 1
        with engine.connect() as conn:
            left = conn.execute(text(
                "SELECT relname FROM pg_class WHERE relname = ANY(:n)"), {"n": [own, own_default]}
            ).scalars().all()  # fmt: skip
            rows = conn.execute(text("SELECT count(*) FROM lifecycle_other_docs")).scalar_one()
        assert left == []
        assert rows == 0
    finally:
        OtherDoc.__table__.drop(engine)  # type: ignore[attr-defined]


def test_size_on_disk_grows_with_the_collection(engine: Engine) -> None:
    _fill(engine, "small", 10)
    _fill(engine, "large", 200)
    sizes = {c.name: c.size_bytes for c in vs.list_collections(engine)}
    assert 0 < sizes["small"] < sizes["large"]


def test_readers_during_switches_never_see_an_error_or_an_empty_result(engine: Engine) -> None:
    _fill(engine, "v1", 20)
    _fill(engine, "v2", 20, prefix="new")
    vs.create_alias(engine, "a", "v1")
    query = np.asarray(EMB.embed(["doc 1 words"])[0])
    errors: list[BaseException] = []
    seen: set[int] = set()
    lock = threading.Lock()
    switches = 30
    done = threading.Event()

    def read() -> None:
        with vs.DocumentRepository.standalone(engine, collection="a") as repo:
            while not done.is_set():
                try:
                    hits = repo.nearest(query, k=5)
                    assert len(hits) == 5, len(hits)
                    with lock:
                        seen.add(hits[0].document.collection_id)
                except BaseException as exc:
                    errors.append(exc)
                    return

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(switches):
        vs.switch_alias(engine, "a", "v2" if i % 2 == 0 else "v1")
    done.set()
    for t in readers:
        t.join()
    assert errors == []
    assert len(seen) >= 1


def test_changes_through_an_alias_follow_it_or_refuse(engine: Engine) -> None:
    """update / update_where / delete_where hold the alias like add and delete do."""
    _fill(engine, "v1", 3)
    _fill(engine, "v2", 3, prefix="new")
    vs.create_alias(engine, "a", "v1")
    with vs.DocumentRepository.standalone(engine, collection="a", embedder=EMB) as repo:
        vs.switch_alias(engine, "a", "v2")
        assert repo.update_where({}, merge_metadata={"seen": True}) == 3
        assert repo.update("new-0", metadata={"k": 1}, merge=True).external_id == "new-0"
    with vs.DocumentRepository.standalone(engine, collection="v1", embedder=EMB) as old:
        assert old.count({"seen": True}) == 0  # the old collection was not touched
    with Session(engine) as session:
        repo = vs.DocumentRepository(session, collection="a", embedder=EMB)
        assert repo.count({"seen": True}) == 3  # resolved for this transaction: v2
        vs.switch_alias(engine, "a", "v1")  # committed by another connection
        with pytest.raises(vs.ConflictError, match="switched"):
            repo.delete_where({})
        session.rollback()
    for name in ("v1", "v2"):
        with vs.DocumentRepository.standalone(engine, collection=name, embedder=EMB) as r:
            assert r.count() == 3  # nothing deleted anywhere
