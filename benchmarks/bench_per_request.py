"""The per-request path: a web app builds a repository (and a Session) for every request.

Both the Flask and the Django examples do that.  Before the catalog cache was
keyed by engine and table, every fresh repository re-read the ANN index
catalog (``pg_index``) and the pgvector version on its first ``nearest``.  This
benchmark serves N "requests" (a Session, a repository, one filtered and one
unfiltered ``nearest``), counts the catalog queries the server received through
engine events, and reports the per-request latency next to one long-lived
repository serving the same queries.

    python benchmarks/bench_per_request.py [--rows 20000] [--requests 300]

Writes ``benchmarks/results/per_request_tables.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import event
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vectorstore as vs  # noqa: E402
from benchmarks.bench_search import fresh_engine  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DIM = 384


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _catalog_counter(engine: Any) -> dict[str, int]:
    counts = {"catalog": 0, "statements": 0}

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counts["statements"] += 1
        if "pg_index" in statement or "pg_extension" in statement:
            counts["catalog"] += 1

    event.listen(engine, "before_cursor_execute", seen)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--url", default=None, help="an external server (default: embedded)")
    args = parser.parse_args()

    engine = fresh_engine(args.url, "vectorstore-bench-per-request", "bench_per_request")
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.rows, DIM)).astype(np.float32)
    setup = vs.DocumentRepository.standalone(engine, collection="req", embedding_model="x")
    setup.bulk_add([f"row {i}" for i in range(args.rows)], embeddings=vectors,
                   metadata=[{"tenth": i % 10} for i in range(args.rows)])  # fmt: skip
    setup.create_index(vs.IndexSpec())
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE vectorstore_documents")
    queries = rng.standard_normal((args.requests, DIM)).astype(np.float32)
    counts = _catalog_counter(engine)

    def per_request(q: Any) -> None:
        with Session(engine) as session:
            repo = vs.DocumentRepository(session, collection="req", create=False)
            repo.nearest(q, k=10)
            repo.nearest(q, k=10, filter={"tenth": 3})

    shared_session = Session(engine)
    long_lived = vs.DocumentRepository(shared_session, collection="req", create=False)

    def shared(q: Any) -> None:
        long_lived.nearest(q, k=10)
        long_lived.nearest(q, k=10, filter={"tenth": 3})

    rows = []
    for label, call in (("repository per request", per_request), ("one repository", shared)):
        call(queries[0])  # warm: the first request reads the catalog once per process
        counts.update(catalog=0, statements=0)
        times = []
        for q in queries:
            started = time.perf_counter()
            call(q)
            times.append((time.perf_counter() - started) * 1000)
        rows.append((label, counts["catalog"], counts["statements"] / len(queries),
                     statistics.median(times), percentile(times, 0.95)))  # fmt: skip
    shared_session.close()
    lines = [
        f"{args.requests} requests of two nearest calls each (one filtered), "
        f"{args.rows:,} rows, HNSW index, psycopg2, in a Session per request",
        "",
        "| path | catalog reads (after the first request) | statements / request | "
        "p50 ms | p95 ms |",
        "|---|---|---|---|---|",
    ]
    for label, catalog, per, p50, p95 in rows:
        lines.append(f"| {label} | {catalog} | {per:.1f} | {p50:.2f} | {p95:.2f} |")
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "per_request_tables.md").write_text(table + "\n")
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
