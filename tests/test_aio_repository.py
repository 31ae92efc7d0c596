"""AsyncDocumentRepository: the sync repository's behaviour through asyncpg and psycopg async.

Bound to an AsyncSession it never commits (a SAVEPOINT per write); standalone
it commits each call.  Bad input gets the same typed error as the sync
repository and leaves the database unchanged (the sync hostile-input battery,
replayed through the async API on both drivers).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import vectorstore as vs
from tests._aio import *  # noqa: F403 - the async fixtures
from tests._aio import ASYNC_DRIVERS
from tests._dedicated import cloned_database
from tests.conftest import table_count, url_for
from tests.test_hostile_input import CASES, Call, fingerprint

pytestmark = pytest.mark.anyio

ARepo = vs.AsyncDocumentRepository[vs.Document]
DIM = vs.DEFAULT_DIMENSION


def _vec(seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


# -- the host's session ----------------------------------------------------------------
async def test_add_get_count_delete_nearest(async_repo: ARepo) -> None:
    doc = await async_repo.add("a cat on the mat", metadata={"kind": "pet"}, external_id="c1")
    await async_repo.add("stock prices fell sharply", external_id="s1")
    assert (await async_repo.get(doc.id)).text == "a cat on the mat"
    assert [d.external_id for d in await async_repo.get_many([doc.id, 10**9])] == ["c1"]
    assert (await async_repo.get_by_external_id("s1")).text == "stock prices fell sharply"
    assert await async_repo.count() == 2
    hits = await async_repo.nearest("a cat on the mat", k=1)
    assert hits[0].document.external_id == "c1"
    filtered = await async_repo.nearest("a cat", k=5, filter={"kind": "pet"})
    assert [h.document.external_id for h in filtered] == ["c1"]
    assert await async_repo.delete(external_ids=["s1"]) == 1
    assert await async_repo.count() == 1
    with pytest.raises(vs.DocumentNotFoundError):
        await async_repo.get_by_external_id("s1")


async def test_the_repository_never_commits_the_host_session(
    async_repo: ARepo, async_session: AsyncSession, engine: Engine
) -> None:
    await async_repo.add("uncommitted")
    assert table_count(engine) == 0  # another connection sees nothing
    await async_session.rollback()
    assert table_count(engine) == 0
    await async_repo.add("committed")
    await async_session.commit()
    assert table_count(engine) == 1


async def test_a_failed_write_keeps_the_callers_transaction_usable(
    async_repo: ARepo, async_session: AsyncSession, engine: Engine
) -> None:
    await async_repo.add("first", external_id="dup")
    with pytest.raises(vs.ConflictError, match="dup"):
        await async_repo.add("second", external_id="dup")
    with pytest.raises(vs.ConflictError, match="row 1"):
        await async_repo.bulk_add(
            [{"text": "fresh", "external_id": "new"}, {"text": "again", "external_id": "dup"}]
        )
    await async_repo.add("third")
    await async_session.commit()
    assert table_count(engine) == 2


async def test_standalone_commits_each_call(standalone_repo: ARepo, engine: Engine) -> None:
    doc = await standalone_repo.add("persisted at once")
    assert table_count(engine) == 1
    assert (await standalone_repo.get(doc.id)).text == "persisted at once"
    assert standalone_repo.owns_transactions
    # The collection exists now: the single-INSERT path (its own placeholders per driver).
    second = await standalone_repo.add("second", embedding=_vec(1), metadata={"a": [1, "x"]})
    stored = await standalone_repo.get(second.id)
    assert stored.metadata_ == second.metadata_ == {"a": [1, "x"]}
    np.testing.assert_array_equal(np.asarray(stored.embedding, dtype=np.float32), _vec(1))
    assert table_count(engine) == 2


async def test_standalone_from_a_url_disposes_its_engine(async_url: Any, engine: Engine) -> None:
    async with vs.AsyncDocumentRepository.standalone(
        async_url, collection="solo", embedder=vs.HashingTestEmbedder()
    ) as repo:
        await repo.add("one")
        info = await repo.collection()
    assert info.name == "solo"
    assert table_count(engine) == 1


# -- bulk_add through the async driver's COPY ------------------------------------------
async def test_bulk_add_copies_through_the_async_driver(
    standalone_repo: ARepo, engine: Engine
) -> None:
    vectors = np.stack([_vec(i) for i in range(300)])
    result = await standalone_repo.bulk_add(
        vectors, texts=[f"doc {i}" for i in range(300)], chunk_rows=64
    )
    assert (result.inserted, result.embedded) == (300, 0)
    with engine.connect() as conn:
        stored = conn.execute(
            select(vs.Document.text, vs.Document.embedding).order_by(vs.Document.id)
        ).all()
    assert [r[0] for r in stored] == [f"doc {i}" for i in range(300)]
    got = np.stack([np.asarray(r[1], dtype=np.float32) for r in stored])
    np.testing.assert_array_equal(got, vectors)


async def test_bulk_add_embeds_texts_and_applies_conflict_policies(standalone_repo: ARepo) -> None:
    rows = [{"text": f"text {i}", "external_id": f"e{i}"} for i in range(50)]
    first = await standalone_repo.bulk_add(rows)
    assert (first.inserted, first.embedded) == (50, 50)
    with pytest.raises(vs.ConflictError, match="e0"):
        await standalone_repo.bulk_add(rows[:1])
    skipped = await standalone_repo.bulk_add(rows[:10], on_conflict="skip")
    assert (skipped.inserted, skipped.skipped) == (0, 10)
    changed = [{"text": "changed", "external_id": "e3"}, {"text": "new", "external_id": "e99"}]
    updated = await standalone_repo.bulk_add(changed, on_conflict="update")
    assert (updated.inserted, updated.updated) == (1, 1)
    assert (await standalone_repo.get_by_external_id("e3")).text == "changed"
    assert await standalone_repo.count() == 51


async def test_bulk_add_is_all_or_nothing_and_names_the_row(
    standalone_repo: ARepo, engine: Engine
) -> None:
    def rows() -> Iterator[dict[str, Any]]:
        for i in range(40):
            yield {"text": "" if i == 33 else f"row {i}", "embedding": _vec(i)}

    with pytest.raises(vs.ValidationError) as caught:
        await standalone_repo.bulk_add(rows(), chunk_rows=8)
    assert caught.value.row == 33
    assert table_count(engine) == 0
    # A row the server rejects (a duplicate inside one COPY) is named too.
    dup = [{"text": f"t{i}", "external_id": "same" if i in (5, 17) else None} for i in range(20)]
    with pytest.raises(vs.ConflictError, match="row 17"):
        await standalone_repo.bulk_add(dup)
    assert table_count(engine) == 0


async def test_ingest_and_export_parquet_round_trip(
    standalone_repo: ARepo, tmp_path: Any, async_engine: AsyncEngine
) -> None:
    await standalone_repo.bulk_add([{"text": f"t{i}", "external_id": f"x{i}"} for i in range(30)])
    path = tmp_path / "out.parquet"
    assert await vs.export_parquet_async(standalone_repo, path) == 30
    other: ARepo = vs.AsyncDocumentRepository.standalone(
        async_engine, collection="copy", embedder=vs.HashingTestEmbedder()
    )
    result = await vs.ingest_async(path, repository=other)
    assert (result.rows, result.inserted, result.embedded) == (30, 30, 0)
    again = await other.ingest(path)
    assert again.known == 30
    assert await other.count() == 30


# -- search ------------------------------------------------------------------------------
async def test_nearest_matches_the_sync_repository(
    standalone_repo: ARepo, engine: Engine
) -> None:
    await standalone_repo.bulk_add(
        np.stack([_vec(i) for i in range(200)]), texts=[f"d{i}" for i in range(200)]
    )
    name = await standalone_repo.create_index()
    sync_repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection="test", embedder=vs.HashingTestEmbedder()
    )
    query = _vec(7)
    for options in ({}, {"strategy": "exact"}, {"strategy": "index", "ef_search": 64},
                    {"filter": {"missing": 1}}, {"offset": 3, "with_embedding": True}):  # fmt: skip
        expected = sync_repo.nearest(query, k=5, **options)
        got = await standalone_repo.nearest(query, k=5, **options)
        assert [h.document.text for h in got] == [h.document.text for h in expected]
        assert (got.strategy, got.settings) == (expected.strategy, expected.settings)
    hybrid = await standalone_repo.hybrid("d7", k=3, vector=query)
    assert hybrid[0].document.text == "d7"
    assert (await standalone_repo.explain(query, k=3)).plan
    assert name in [i.name for i in await standalone_repo.list_indexes()]
    assert await standalone_repo.drop_index(name)
    report = await standalone_repo.measure_recall([query], k=5, ef_search=(40,))
    assert report.points[0].recall == 1.0


async def test_both_async_drivers_take_the_raw_path(
    standalone_repo: ARepo, raw_calls: list[str]
) -> None:
    await standalone_repo.bulk_add(
        np.stack([_vec(i) for i in range(50)]), texts=[f"d{i}" for i in range(50)]
    )
    await standalone_repo.create_index()
    for _ in range(3):
        found = await standalone_repo.nearest(_vec(3), k=3, strategy="index", ef_search=77)
        assert found[0].document.text == "d3"
        assert found.settings["hnsw.ef_search"] == "77"
        filtered = await standalone_repo.nearest(_vec(3), k=3, filter={"missing": 1})
        assert list(filtered) == []
    # The first call plans on the database; the next ones run from the caches on the
    # DB-API cursor: psycopg 3 async pipelined, asyncpg in its adapter's transaction.
    assert raw_calls.count("index") == 2
    assert "exact" in raw_calls  # the filtered calls too


async def test_search_settings_and_nearest_query(async_repo: ARepo) -> None:
    await async_repo.add("alpha")
    async with async_repo.search_settings(ef_search=77, iterative=True) as session:
        assert (await session.execute(text("SHOW hnsw.ef_search"))).scalar() == "77"
        stmt = await async_repo.nearest_query("alpha", k=1)
        rows = (await session.execute(stmt)).all()
    assert rows[0][0].text == "alpha"
    assert (await session.execute(text("SHOW hnsw.ef_search"))).scalar() == "40"


# -- bad input: the sync battery, through the async API ---------------------------------
@pytest.fixture(scope="module")
def hostile_db(postgresql_noproc: Any) -> Iterator[Any]:
    name = f"vectorstore_aio_hostile_{os.getpid()}"
    with cloned_database(postgresql_noproc.template_dbname, name) as url:
        engine = vs.make_engine(url)
        vs.DocumentRepository.standalone(
            engine, collection="hostile", embedder=vs.HashingTestEmbedder()
        ).bulk_add(
            [{"text": f"seed document {i}", "external_id": f"s{i}", "metadata": {"i": i}}
             for i in range(5)]
        )  # fmt: skip
        yield engine, url
        engine.dispose()


async def _awaited(call: Call, repo: ARepo) -> Any:
    """The case's call on the async repository, awaited when it returns an awaitable."""
    outcome = call(repo)  # type: ignore[arg-type]
    return await outcome if inspect.isawaitable(outcome) else outcome


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
@pytest.mark.parametrize(("call", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_hostile_input_is_the_same_typed_error_and_changes_nothing(
    hostile_db: Any, driver: str, call: Call, error: type[Exception]
) -> None:
    engine, url = hostile_db
    async_engine = vs.make_async_engine(url.set(drivername=f"postgresql+{driver}"))
    repo: ARepo = vs.AsyncDocumentRepository.standalone(
        async_engine, collection="hostile", embedder=vs.HashingTestEmbedder()
    )
    before = fingerprint(engine)
    try:
        with pytest.raises(error):
            await _awaited(call, repo)
    finally:
        await async_engine.dispose()
    assert fingerprint(engine) == before


async def test_psycopg2_urls_are_refused_for_async(postgresql: Any) -> None:
    with pytest.raises(vs.ConfigurationError, match="asyncio"):
        vs.make_async_engine(url_for(postgresql.info.dbname, "psycopg2"))
    with pytest.raises(vs.ConfigurationError, match="PostgreSQL"):
        vs.make_async_engine("sqlite+aiosqlite:///x.db")
    with pytest.raises(vs.ConfigurationError, match="port"):
        vs.make_async_engine("postgresql+asyncpg://u@h:99999/db")
    bare = vs.make_async_engine("postgresql://u@localhost/db")
    assert bare.dialect.driver == "asyncpg"
    await bare.dispose()


def test_import_works_without_greenlet_and_the_async_api_names_the_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['greenlet'] = None; sys.modules['asyncpg'] = None\n"
        "import vectorstore as vs\n"
        "try:\n"
        "    vs.AsyncDocumentRepository.standalone('postgresql+asyncpg://u@h/d')\n"
        "except vs.MissingDependencyError as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "vectorstore[async]" in done.stdout
