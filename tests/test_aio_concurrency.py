"""Async under load: cancellation, many tasks on one pool, and no event-loop thread, ever.

Cancellation is made deterministic, never timed: the bulk load's own source
expires the ``asyncio.timeout`` once rows are streaming (the source never
ends, so the COPY is in flight when the timeout lands), and the nearest call
is held by a table lock until the server reports it waiting.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

import vectorstore as vs
from tests._aio import *  # noqa: F403 - the async fixtures
from tests.conftest import table_count
from vectorstore._async import WORKER_PREFIX, WORKERS

pytestmark = pytest.mark.anyio
needs_timeout = pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout: 3.11+")

ARepo = vs.AsyncDocumentRepository[vs.Document]
DIM = vs.DEFAULT_DIMENSION


def _vec(seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def loop_threads(home: int | None = None) -> list[str]:
    """Names of the threads, other than ``home`` (default: this one), running an event loop."""
    me = threading.get_ident() if home is None else home
    names = {t.ident: t.name for t in threading.enumerate()}
    found = []
    for ident, frame in sys._current_frames().items():
        walk: Any = frame
        while walk is not None and ident != me:
            code = walk.f_code
            if code.co_name in ("run_forever", "_run_once") and "asyncio" in code.co_filename:
                found.append(names.get(ident, str(ident)))
                break
            walk = walk.f_back
    return found


@pytest.fixture
async def pooled(async_url: Any) -> AsyncIterator[AsyncEngine]:
    """A small pool, so that tasks share connections."""
    engine = vs.make_async_engine(async_url, pool_size=2, max_overflow=0)
    yield engine
    await engine.dispose()


async def _clean(engine: AsyncEngine) -> None:
    """Every connection is back in the pool, and one checked out is idle and usable."""
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        assert await _setting(conn, "hnsw.ef_search") in (None, "40")


async def _setting(conn: Any, name: str) -> str | None:
    """The setting on this connection (None before pgvector's library is loaded there)."""
    found = await conn.execute(text("SELECT current_setting(:n, true)"), {"n": name})
    value = found.scalar()
    return None if value is None or value == "" else str(value)


# -- cancellation ------------------------------------------------------------------------
@needs_timeout
async def test_a_cancelled_bulk_add_writes_nothing_and_the_pool_stays_clean(
    pooled: AsyncEngine, engine: Engine
) -> None:
    repo: ARepo = vs.AsyncDocumentRepository.standalone(
        pooled, collection="test", embedder=vs.HashingTestEmbedder()
    )
    await repo.add("already there")
    loop = asyncio.get_running_loop()
    streamed = threading.Event()

    def endless(timeout: asyncio.Timeout) -> Iterator[dict[str, Any]]:
        i = 0
        while True:
            if i == 500:  # rows are on the wire: expire the timeout now
                streamed.set()
                loop.call_soon_threadsafe(timeout.reschedule, loop.time())
            yield {"text": f"row {i}", "embedding": _vec(i % 7)}
            i += 1

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(None) as timeout:
            await repo.bulk_add(endless(timeout), chunk_rows=100)
    assert streamed.is_set()
    assert table_count(engine) == 1
    await _clean(pooled)
    result = await repo.bulk_add([f"after {i}" for i in range(10)])
    assert result.inserted == 10
    assert await repo.count() == 11


@needs_timeout
async def test_a_cancelled_nearest_returns_its_connection_clean(
    pooled: AsyncEngine, engine: Engine
) -> None:
    repo: ARepo = vs.AsyncDocumentRepository.standalone(
        pooled, collection="test", embedder=vs.HashingTestEmbedder()
    )
    await repo.bulk_add([f"doc {i}" for i in range(20)])
    await repo.nearest("doc", k=3)  # collection and plan caches are warm
    with engine.connect() as locker:
        locker.execute(text("LOCK TABLE vectorstore_documents IN ACCESS EXCLUSIVE MODE"))
        timeouts: list[asyncio.Timeout] = []

        async def bounded() -> Any:
            async with asyncio.timeout(None) as timeout:
                timeouts.append(timeout)
                return await repo.nearest("doc", k=3, ef_search=99)

        task = asyncio.ensure_future(bounded())
        await _until_waiting_on_a_lock(engine)
        timeouts[0].reschedule(asyncio.get_running_loop().time())
        with pytest.raises(TimeoutError):
            await task
        locker.rollback()
    await _clean(pooled)
    hits = await repo.nearest("doc 3", k=3)
    assert hits[0].document.text == "doc 3"


async def _until_waiting_on_a_lock(engine: Engine) -> None:
    """Poll the server (a condition, not a timed wait) until a backend waits on a lock."""
    for _ in range(2000):
        with engine.connect() as conn:
            waiting = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            ).scalar_one()
        if waiting:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the nearest call never reached the server")


# -- many tasks, one pool ------------------------------------------------------------------
async def test_settings_never_leak_between_tasks_sharing_a_pool(pooled: AsyncEngine) -> None:
    repo: ARepo = vs.AsyncDocumentRepository.standalone(pooled, collection="test")
    await repo.bulk_add(np.stack([_vec(i) for i in range(100)]), texts=[str(i) for i in range(100)])
    await repo.create_index()
    wanted = [40 + 7 * i for i in range(24)]

    async def one(ef: int, iterative: bool) -> dict[str, str]:
        strategy = "iterative" if iterative else "index"
        found = await repo.nearest(_vec(ef), k=5, ef_search=ef, strategy=strategy)
        assert len(found) == 5
        return found.settings

    got = await asyncio.gather(*(one(ef, i % 2 == 0) for i, ef in enumerate(wanted)))
    assert [s["hnsw.ef_search"] for s in got] == [str(ef) for ef in wanted]
    assert [s.get("hnsw.iterative_scan", "off") for s in got] == [
        "relaxed_order" if i % 2 == 0 else "off" for i in range(len(wanted))
    ]
    for _ in range(2):  # both pooled connections
        async with pooled.connect() as conn:
            assert await _setting(conn, "hnsw.ef_search") in (None, "40")
            assert await _setting(conn, "hnsw.iterative_scan") in (None, "off")


async def test_concurrent_writers_give_exact_counts(pooled: AsyncEngine, engine: Engine) -> None:
    repo: ARepo = vs.AsyncDocumentRepository.standalone(
        pooled, collection="test", embedder=vs.HashingTestEmbedder()
    )

    async def writer(n: int) -> None:
        await repo.bulk_add([{"text": f"w{n} b{i}", "external_id": f"{n}-{i}"} for i in range(25)])
        for i in range(5):
            await repo.add(f"w{n} a{i}", external_id=f"{n}-a{i}")

    await asyncio.gather(*(writer(n) for n in range(16)))
    assert await repo.count() == 16 * 30
    with engine.connect() as conn:
        distinct = conn.execute(
            text("SELECT count(DISTINCT external_id) FROM vectorstore_documents")
        ).scalar_one()
    assert distinct == 16 * 30


# -- no event-loop thread ----------------------------------------------------------------
class _Witness:
    """An embedder that records, on the thread that embeds, whether an event loop runs there."""

    def __init__(self) -> None:
        self.inner = vs.HashingTestEmbedder()
        self.model_name = self.inner.model_name
        self.dimension = self.inner.dimension
        self.seen: list[tuple[str, bool, list[str]]] = []
        self.home = threading.get_ident()  # the thread of the test's own event loop

    def embed(self, texts: Sequence[str]) -> Any:
        try:
            asyncio.get_running_loop()
            running = True
        except RuntimeError:
            running = False
        self.seen.append((threading.current_thread().name, running, loop_threads(self.home)))
        return self.inner.embed(texts)


async def test_no_thread_runs_an_event_loop_and_workers_are_bounded(
    standalone_repo: ARepo, async_engine: AsyncEngine
) -> None:
    witness = _Witness()
    repo: ARepo = vs.AsyncDocumentRepository.standalone(
        async_engine, collection="witness", embedder=witness
    )
    await repo.add("warm up")
    before = {t.ident: t.name for t in threading.enumerate()}

    async def work(n: int) -> None:
        await repo.add(f"text {n}")
        await repo.nearest(f"text {n}", k=2)
        await repo.bulk_add([f"bulk {n} {i}" for i in range(30)], chunk_rows=10)

    await asyncio.gather(*(work(n) for n in range(24)))
    assert witness.seen
    assert all(name.startswith(WORKER_PREFIX) for name, _, _ in witness.seen)
    assert not any(running for _, running, _ in witness.seen)
    assert all(found == [] for _, _, found in witness.seen)
    assert loop_threads() == []
    after = {t.ident: t.name for t in threading.enumerate()}
    new = {name for ident, name in after.items() if ident not in before}
    assert all(name.startswith(WORKER_PREFIX) for name in new)
    workers = [name for name in after.values() if name.startswith(WORKER_PREFIX)]
    assert len(workers) <= WORKERS
    assert set(before) <= set(after)  # nothing of the caller's was touched


async def test_under_a_real_asgi_server(async_engine: AsyncEngine) -> None:
    """uvicorn serving an ASGI app in this loop: requests run the repository, no loop thread."""
    import httpx
    import uvicorn

    repo: ARepo = vs.AsyncDocumentRepository.standalone(
        async_engine, collection="asgi", embedder=vs.HashingTestEmbedder()
    )
    await repo.bulk_add([f"served {i}" for i in range(10)])

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        hits = await repo.nearest(scope["path"].strip("/"), k=1)
        body = f"{hits[0].document.text}|{len(loop_threads())}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=None))
    for _ in range(2000):
        if server.started:
            break
        await asyncio.sleep(0.005)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            replies = await asyncio.gather(*(client.get(f"/served {i}") for i in range(10)))
        assert [r.text for r in replies] == [f"served {i}|0" for i in range(10)]
    finally:
        server.should_exit = True
        await serving
    assert loop_threads() == []
