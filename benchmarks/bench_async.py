"""The async API against the sync one and hand-written async SQL, side by side in one run.

One embedded server, one database, the same rows and queries for every method:

1. **bridge**: the cost of SQLAlchemy's greenlet bridge itself, per call
   (``greenlet_spawn`` of a function that does nothing, and of one that
   awaits once), and ``count()`` through the repository against the same
   statement hand-written on an AsyncConnection.
2. **bulk load**: server-side ``COPY FROM file`` (the limit), sync
   ``bulk_add`` on psycopg2 and psycopg, async ``bulk_add`` on asyncpg and on
   psycopg async; rows/s, median of ``--repeats`` interleaved runs.
3. **nearest latency** (HNSW index, sequential calls): sync ``nearest``,
   async ``nearest`` on each async driver, and hand-written async SQL on the
   same driver (SQLAlchemy Core on an AsyncConnection: BEGIN, the same
   ``set_config`` settings, the same ORDER BY ... LIMIT, COMMIT), and the raw
   asyncpg driver; p50 / p95.
4. **throughput**: 64 coroutines on one event loop against 16 sync threads,
   unfiltered and filtered, the same total queries and 16 connections each.

    python benchmarks/bench_async.py [--rows 20000] [--queries 300] [--repeats 3]

Writes ``benchmarks/results/async_tables.md`` and ``async.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vectorstore as vs  # noqa: E402
from benchmarks._ingest_common import make_rows  # noqa: E402
from vectorstore._async import greenlet_spawn  # noqa: E402
from vectorstore.write.batch import batches_from_arrays  # noqa: E402
from vectorstore.write.copy import encoded_stream  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DIM = vs.DEFAULT_DIMENSION
TABLE = "vectorstore_documents"
COLUMNS = "collection_id, content_hash, embedding, external_id, text, metadata"
EF = 40


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fresh_database(base: URL, name: str) -> URL:
    admin = vs.make_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    url = base.set(database=name)
    vs.migrate(url)
    return url


def reset(sync_url: URL) -> None:
    engine = vs.make_engine(sync_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"TRUNCATE {TABLE}")
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_vectorstore_documents_embedding_hnsw")
        conn.exec_driver_sql("CHECKPOINT")
    engine.dispose()


def stored(sync_url: URL) -> int:
    engine = vs.make_engine(sync_url)
    with engine.connect() as conn:
        n = int(conn.exec_driver_sql(f"SELECT count(*) FROM {TABLE}").scalar_one())
    engine.dispose()
    return n


# -- 1. the bridge ---------------------------------------------------------------------
async def bench_bridge(url: URL, calls: int) -> dict[str, float]:
    engine = vs.make_async_engine(url.set(drivername="postgresql+asyncpg"))
    repo: vs.AsyncDocumentRepository[vs.Document] = vs.AsyncDocumentRepository.standalone(
        engine, collection="bench", embedding_model="x"
    )
    await repo.count()

    def nothing() -> None:
        return None

    async def one_await() -> None:
        await asyncio.sleep(0)

    def awaiting() -> None:
        vs_await(one_await())

    from vectorstore._async import await_ as vs_await

    out: dict[str, float] = {}
    started = time.perf_counter()
    for _ in range(calls):
        nothing()
    plain = (time.perf_counter() - started) / calls
    started = time.perf_counter()
    for _ in range(calls):
        await greenlet_spawn(nothing)
    out["greenlet_spawn(no-op) us"] = ((time.perf_counter() - started) / calls - plain) * 1e6
    started = time.perf_counter()
    for _ in range(calls):
        await one_await()
    direct = (time.perf_counter() - started) / calls
    started = time.perf_counter()
    for _ in range(calls):
        await greenlet_spawn(awaiting)
    out["greenlet_spawn(one await_) - plain await us"] = (
        (time.perf_counter() - started) / calls - direct
    ) * 1e6
    cid = (await repo.collection()).id
    stmt = text(f"SELECT count(*) FROM {TABLE} WHERE collection_id = :c")
    repo_times, hand_times = [], []
    for _ in range(calls // 10):
        t0 = time.perf_counter()
        await repo.count()
        repo_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        async with engine.begin() as conn:
            (await conn.execute(stmt, {"c": cid})).scalar_one()
        hand_times.append(time.perf_counter() - t0)
    out["repo.count() p50 us"] = statistics.median(repo_times) * 1e6
    out["hand-written count p50 us"] = statistics.median(hand_times) * 1e6
    await engine.dispose()
    return out


# -- 2. bulk load ----------------------------------------------------------------------
def load_methods(
    sync_url: URL, rows: dict[str, Any], copy_file: str
) -> dict[str, Callable[[], None]]:
    def server_copy() -> None:
        engine = vs.make_engine(sync_url)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"COPY {TABLE} ({COLUMNS}) FROM '{copy_file}' (FORMAT BINARY)")
        engine.dispose()

    def sync_bulk(driver: str) -> Callable[[], None]:
        def run() -> None:
            engine = vs.make_engine(sync_url.set(drivername=f"postgresql+{driver}"))
            repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
                engine, collection="bench", embedding_model="x"
            )
            repo.bulk_add(rows["texts"], embeddings=rows["embeddings"],
                          metadata=rows["metadata"], external_ids=rows["external_ids"])  # fmt: skip
            engine.dispose()

        return run

    def async_bulk(driver: str) -> Callable[[], None]:
        async def go() -> None:
            engine = vs.make_async_engine(sync_url.set(drivername=f"postgresql+{driver}"))
            repo: vs.AsyncDocumentRepository[vs.Document] = vs.AsyncDocumentRepository.standalone(
                engine, collection="bench", embedding_model="x"
            )
            await repo.bulk_add(rows["texts"], embeddings=rows["embeddings"],
                                metadata=rows["metadata"],
                                external_ids=rows["external_ids"])  # fmt: skip
            await engine.dispose()

        return lambda: asyncio.run(go())

    return {
        "server COPY FROM file": server_copy,
        "sync bulk_add psycopg2": sync_bulk("psycopg2"),
        "sync bulk_add psycopg": sync_bulk("psycopg"),
        "async bulk_add asyncpg": async_bulk("asyncpg"),
        "async bulk_add psycopg async": async_bulk("psycopg"),
    }


def bench_load(sync_url: URL, n: int, repeats: int, folder: Path) -> dict[str, list[float]]:
    rows = make_rows(n)
    # The collection must exist for the server-side COPY file to name it.
    setup: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        sync_url, collection="bench", embedding_model="x"
    )
    cid = setup.collection.id
    setup.close()
    copy_file = folder / "rows.copy"
    batches = batches_from_arrays(
        rows["texts"], rows["embeddings"], DIM,
        metadata=rows["metadata"], external_ids=rows["external_ids"],
    )  # fmt: skip
    with open(copy_file, "wb") as handle:
        for chunk in encoded_stream(batches, cid):
            handle.write(chunk)
    os.chmod(copy_file, 0o644)
    methods = load_methods(sync_url, rows, str(copy_file))
    results: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(repeats):
        for name, run in methods.items():
            reset(sync_url)
            started = time.perf_counter()
            run()
            elapsed = time.perf_counter() - started
            if stored(sync_url) != n:
                raise RuntimeError(f"{name}: wrong row count")
            results[name].append(n / elapsed)
            print(f"  {name:32s} {n / elapsed:>10,.0f} rows/s", flush=True)
    return results


# -- 3. nearest latency ----------------------------------------------------------------
def _vector_text(v: np.ndarray[Any, Any]) -> str:
    return "[" + ",".join(map(repr, v.tolist())) + "]"


async def bench_latency(sync_url: URL, queries: np.ndarray[Any, Any]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    sync_engine = vs.make_engine(sync_url)
    sync_repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        sync_engine, collection="bench", create=False
    )
    engines = {
        d: vs.make_async_engine(sync_url.set(drivername=f"postgresql+{d}"))
        for d in ("asyncpg", "psycopg")
    }
    repos = {
        d: vs.AsyncDocumentRepository.standalone(e, collection="bench", create=False)
        for d, e in engines.items()
    }
    cid = sync_repo.collection.id
    hand = text(
        "SELECT id, external_id, text, metadata, created_at, "
        "embedding <=> CAST(:q AS vector) AS distance FROM vectorstore_documents "
        "WHERE collection_id = :c ORDER BY embedding <=> CAST(:q AS vector) LIMIT 10"
    )
    settings = text(f"SELECT set_config('hnsw.ef_search', '{EF}', true)")

    async def hand_written(engine: AsyncEngine, q: np.ndarray[Any, Any]) -> None:
        async with engine.begin() as conn:
            await conn.execute(settings)
            rows = (await conn.execute(hand, {"q": _vector_text(q), "c": cid})).all()
            assert len(rows) == 10

    import asyncpg

    raw_url = sync_url.set(drivername="postgresql")
    host = raw_url.query.get("host")
    raw = await asyncpg.connect(database=raw_url.database, user=raw_url.username, host=host)

    async def raw_asyncpg(q: np.ndarray[Any, Any]) -> None:
        async with raw.transaction():
            await raw.execute(f"SELECT set_config('hnsw.ef_search', '{EF}', true)")
            rows = await raw.fetch(
                "SELECT id, external_id, text, metadata, created_at, embedding <=> $1::vector "
                "FROM vectorstore_documents WHERE collection_id = $2 "
                "ORDER BY embedding <=> $1::vector LIMIT 10",
                _vector_text(q),
                cid,
            )
            assert len(rows) == 10

    calls: dict[str, Callable[[np.ndarray[Any, Any]], Awaitable[Any] | Any]] = {
        "sync nearest psycopg2": lambda q: sync_repo.nearest(q, k=10, ef_search=EF),
        "async nearest asyncpg": lambda q: repos["asyncpg"].nearest(q, k=10, ef_search=EF),
        "hand-written SA async asyncpg": lambda q: hand_written(engines["asyncpg"], q),
        "raw asyncpg driver": raw_asyncpg,
        "async nearest psycopg async": lambda q: repos["psycopg"].nearest(q, k=10, ef_search=EF),
        "hand-written SA async psycopg": lambda q: hand_written(engines["psycopg"], q),
    }
    for name in calls:
        out[name] = []
    for q in queries[:20]:  # warm every path
        for call in calls.values():
            got = call(q)
            if asyncio.iscoroutine(got) or isinstance(got, asyncio.Future):
                await got
    for q in queries:  # interleaved: drift hits every method alike
        for name, call in calls.items():
            started = time.perf_counter()
            got = call(q)
            if asyncio.iscoroutine(got) or isinstance(got, asyncio.Future):
                await got
            out[name].append(time.perf_counter() - started)
    await raw.close()
    for e in engines.values():
        await e.dispose()
    sync_engine.dispose()
    return out


# -- 4. throughput ---------------------------------------------------------------------
def bench_throughput(sync_url: URL, queries: np.ndarray[Any, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, flt in (("unfiltered", None), ("filtered", {"tag": "t3"})):
        engine = vs.make_engine(sync_url, pool_size=16, max_overflow=0)
        repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
            engine, collection="bench", create=False
        )
        repo.nearest(queries[0], k=10, filter=flt)
        chunks = np.array_split(queries, 16)

        def thread_work(part: np.ndarray[Any, Any], f: Any = flt, r: Any = repo) -> None:
            for q in part:
                r.nearest(q, k=10, filter=f)

        started = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(thread_work, chunks))
        out[f"16 sync threads psycopg2, {label}"] = len(queries) / (time.perf_counter() - started)
        engine.dispose()

        async def coroutines(driver: str, f: Any = flt) -> float:
            engine = vs.make_async_engine(
                sync_url.set(drivername=f"postgresql+{driver}"), pool_size=16, max_overflow=0
            )
            repo = vs.AsyncDocumentRepository.standalone(engine, collection="bench", create=False)
            await repo.nearest(queries[0], k=10, filter=f)
            parts = np.array_split(queries, 64)

            async def task(part: np.ndarray[Any, Any]) -> None:
                for q in part:
                    await repo.nearest(q, k=10, filter=f)

            started = time.perf_counter()
            await asyncio.gather(*(task(p) for p in parts))
            rate = len(queries) / (time.perf_counter() - started)
            await engine.dispose()
            return rate

        for driver in ("asyncpg", "psycopg"):
            rate = asyncio.run(coroutines(driver))
            out[f"64 coroutines {driver}, {label}"] = rate
    return out


# -- report ------------------------------------------------------------------------------
def report(bridge: dict[str, float], load: dict[str, list[float]], latency: dict[str, list[float]],
           throughput: dict[str, float], args: argparse.Namespace) -> str:  # fmt: skip
    lines = [f"# Async benchmark ({args.rows:,} rows, {args.queries} queries, "
             f"{os.cpu_count()} cores, one run)", ""]  # fmt: skip
    lines += ["## The greenlet bridge", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in bridge.items()]
    limit = statistics.median(load["server COPY FROM file"])
    sync_best = statistics.median(load["sync bulk_add psycopg2"])
    lines += ["", f"## Bulk load ({args.rows:,} rows, median of {args.repeats})", "",
              "| method | rows/s | x server-side COPY | x sync psycopg2 | target |",
              "|---|---|---|---|---|"]  # fmt: skip
    for name, rates in load.items():
        med = statistics.median(rates)
        target = ""
        if name.startswith("async"):
            target = "met" if med >= 0.8 * limit else "MISSED (>= 0.8x server COPY)"
        lines.append(f"| {name} | {med:,.0f} | {med / limit:.2f} | {med / sync_best:.2f} "
                     f"| {target} |")  # fmt: skip
    sync_p50 = statistics.median(latency["sync nearest psycopg2"])
    lines += ["", f"## nearest latency (k=10, HNSW, ef_search={EF}, sequential)", "",
              "| method | p50 ms | p95 ms | x sync p50 | x hand-written p50 (same driver) |",
              "|---|---|---|---|---|"]  # fmt: skip
    for name, times in latency.items():
        p50, p95 = statistics.median(times), pct(times, 0.95)
        driver = "asyncpg" if "asyncpg" in name else "psycopg"
        hand = statistics.median(latency[f"hand-written SA async {driver}"])
        rel = f"{p50 / hand:.2f}" if name.startswith("async") else ""
        lines.append(f"| {name} | {p50 * 1e3:.3f} | {p95 * 1e3:.3f} | {p50 / sync_p50:.2f} "
                     f"| {rel} |")  # fmt: skip
    lines += ["", "## Throughput (queries/s; 16 connections each)", "",
              "| method | queries/s | x 16 threads |", "|---|---|---|"]  # fmt: skip
    for name, rate in throughput.items():
        label = name.rsplit(", ", 1)[1]
        base = throughput[f"16 sync threads psycopg2, {label}"]
        lines.append(f"| {name} | {rate:,.0f} | {rate / base:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--throughput-queries", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bridge-calls", type=int, default=20_000)
    args = parser.parse_args()

    folder = Path(tempfile.gettempdir()) / f"vectorstore-bench-async-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    os.chmod(folder, 0o755)
    server = vs.EmbeddedServer(folder / "pgdata")
    try:
        sync_url = fresh_database(server.start(), "bench_async")
        print("bulk load", flush=True)
        load = bench_load(sync_url, args.rows, args.repeats, folder)
        repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
            sync_url, collection="bench", create=False
        )
        repo.create_index(vs.IndexSpec())
        with vs.make_engine(sync_url).begin() as conn:
            conn.exec_driver_sql(f"ANALYZE {TABLE}")
        repo.close()
        print("bridge", flush=True)
        bridge = asyncio.run(bench_bridge(sync_url, args.bridge_calls))
        rng = np.random.default_rng(1)
        queries = rng.standard_normal((args.queries, DIM)).astype(np.float32)
        print("latency", flush=True)
        latency = asyncio.run(bench_latency(sync_url, queries))
        print("throughput", flush=True)
        many = rng.standard_normal((args.throughput_queries, DIM)).astype(np.float32)
        throughput = bench_throughput(sync_url, many)
    finally:
        server.stop()
    table = report(bridge, load, latency, throughput, args)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "async_tables.md").write_text(table)
    raw = {"bridge": bridge, "load": load, "throughput": throughput,
           "latency_p50_ms": {k: statistics.median(v) * 1e3 for k, v in latency.items()},
           "args": vars(args), "threads_at_end": threading.active_count()}  # fmt: skip
    (RESULTS / "async.json").write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
