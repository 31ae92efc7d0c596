"""Load benchmark: throughput and latency of writes and filtered searches under concurrency.

Side by side in one run, on one dedicated embedded server (or ``--url``):

1. **searches alone**: ``--readers`` threads of filtered ``nearest``, no writers;
2. **writes alone**: ``--writers`` threads cycling through ``add``, ``bulk_add``
   (10 rows) and ``add`` to one shared buffered writer (``repo.writer``,
   flushing at 16 records or 20 ms, and at close), no readers;
3. **mixed**: both at once (the shape of ``tests/test_load.py``).

Reported per phase and operation: operations/s, rows/s, p50/p95/p99 latency
(for ``writer``, the latency of handing a record to the buffered writer,
including the flushes it triggers in the caller's thread; the record is
durable at the next flush), the writer's flush count,
and the ratio of each mixed figure to its phase-alone figure (the cost of
contention).  Correctness is checked too: errors must be zero and every
acknowledged write must be readable.

Usage::

    python benchmarks/bench_load.py                    # 8 + 8 threads, 60 ops each
    python benchmarks/bench_load.py --ops 500 --seed-rows 100000   # bigger
    python benchmarks/bench_load.py --url postgresql://...

Results: ``benchmarks/results/load.json`` and ``load_tables.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vectorstore as vs  # noqa: E402
from tests._load import ROWS_PER_OP, WRITER_BUCKETS, LoadReport, run_load  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DIM = vs.DEFAULT_DIMENSION


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q * 100)) if values else float("nan")


def summarise(report: LoadReport) -> dict[str, Any]:
    ops: dict[str, Any] = {}
    for op, lat in sorted(report.latencies.items()):
        rows = ROWS_PER_OP.get(op, 1)
        ops[op] = {
            "count": len(lat),
            "ops_per_s": round(len(lat) / report.elapsed_s, 1),
            "rows_per_s": round(len(lat) * rows / report.elapsed_s, 1) if op != "nearest" else None,
            "p50_ms": round(percentile(lat, 0.50) * 1000, 2),
            "p95_ms": round(percentile(lat, 0.95) * 1000, 2),
            "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
        }
    return {
        "elapsed_s": round(report.elapsed_s, 3),
        "errors": len(report.errors),
        "writer_flushes": report.flushes,
        "ops": ops,
    }


def seed(engine: Engine, collection: str, rows: int) -> None:
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection=collection, embedding_model="load"
    )
    rng = np.random.default_rng(42)
    for start in range(0, rows, 10_000):
        n = min(10_000, rows - start)
        vectors = rng.standard_normal((n, DIM)).astype(np.float32)
        repo.bulk_add(
            [f"seed {start + i}" for i in range(n)], embeddings=vectors,
            metadata=[{"writer": (start + i) % WRITER_BUCKETS, "n": (start + i) % 5}
                      for i in range(n)],
        )  # fmt: skip
    with engine.begin() as conn:
        conn.execute(text("ANALYZE vectorstore_documents"))


def verify(engine: Engine, collection: str, report: LoadReport) -> bool:
    with engine.connect() as conn:
        stored = set(
            conn.execute(
                text(
                    "SELECT d.external_id FROM vectorstore_documents d JOIN "
                    "vectorstore_collections c ON c.id = d.collection_id "
                    "WHERE c.name = :c AND d.external_id IS NOT NULL"
                ),
                {"c": collection},
            ).scalars()
        )
    return report.acked <= stored and not report.errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an external PostgreSQL with pgvector (default: dedicated)")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--ops", type=int, default=60, help="operations per thread per phase")
    parser.add_argument("--seed-rows", type=int, default=10_000, help="rows loaded before")
    parser.add_argument("--driver", default="psycopg2", choices=["psycopg2", "psycopg"])
    args = parser.parse_args()

    root: Path | None = None
    server: vs.EmbeddedServer | None = None
    if args.url:
        url = vs.normalize_url(args.url)
    else:
        root = Path(tempfile.mkdtemp(prefix="vs-bench-load-"))
        root.chmod(0o755)
        server = vs.EmbeddedServer(root / "pgdata")
        url = server.start()
    url = url.set(drivername=f"postgresql+{args.driver}")
    try:
        vs.migrate(url)
        engine = vs.make_engine(url, pool_size=args.writers + args.readers, max_overflow=0)
        collection = f"bench-load-{os.getpid()}"
        seed(engine, collection, args.seed_rows)
        kw = {"ops": args.ops, "duration_s": 600.0}
        phases = {
            "searches alone": run_load(engine, collection, writers=0, readers=args.readers, **kw),
            "writes alone": run_load(engine, collection, writers=args.writers, readers=0, **kw),
        }
        # Distinct external ids for the mixed phase: offset the writer numbers.
        phases["mixed"] = run_load(
            engine, collection + "-mixed", writers=args.writers, readers=args.readers, **kw
        )
        ok = all(verify(engine, collection, phases[p]) for p in ("writes alone",)) and verify(
            engine, collection + "-mixed", phases["mixed"]
        )
        leaked = engine.pool.checkedout()  # type: ignore[attr-defined]
        engine.dispose()
    finally:
        if server is not None:
            server.stop()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    summaries = {name: summarise(r) for name, r in phases.items()}
    ratios: dict[str, dict[str, float]] = {}
    for op in ("add", "bulk_add", "writer", "nearest"):
        alone = summaries["searches alone" if op == "nearest" else "writes alone"]["ops"].get(op)
        mixed = summaries["mixed"]["ops"].get(op)
        if alone and mixed:
            ratios[op] = {
                "ops_per_s_mixed_vs_alone": round(mixed["ops_per_s"] / alone["ops_per_s"], 2),
                "p95_mixed_vs_alone": round(mixed["p95_ms"] / alone["p95_ms"], 2),
            }
    lines = [
        f"## Load: {args.writers} writers + {args.readers} readers, {args.ops} ops/thread, "
        f"{args.seed_rows:,} seed rows, {args.driver}, {os.cpu_count()} CPUs",
        "",
        "| phase | op | ops | ops/s | rows/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summaries.items():
        for op, o in s["ops"].items():
            lines.append(
                f"| {name} | {op} | {o['count']} | {o['ops_per_s']} | {o['rows_per_s'] or ''} | "
                f"{o['p50_ms']} | {o['p95_ms']} | {o['p99_ms']} |"
            )
    lines += ["", "| op | ops/s mixed / alone | p95 mixed / alone |", "|---|---:|---:|"]
    for op, r in ratios.items():
        lines.append(f"| {op} | {r['ops_per_s_mixed_vs_alone']} | {r['p95_mixed_vs_alone']} |")
    flushes = {name: s["writer_flushes"] for name, s in summaries.items() if s["writer_flushes"]}
    lines += ["", f"buffered writer flushes: {flushes}",
              "", f"errors: {sum(s['errors'] for s in summaries.values())}; every acknowledged "
              f"write readable: {ok}; connections left checked out: {leaked}"]  # fmt: skip
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load_tables.md").write_text(table + "\n")
    (RESULTS / "load.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "phases": summaries,
                "ratios": ratios,
                "all_acked_readable": ok,
                "connections_leaked": leaked,
            },
            indent=2,
        )
    )
    if not ok or leaked:
        sys.exit(1)


if __name__ == "__main__":
    main()
