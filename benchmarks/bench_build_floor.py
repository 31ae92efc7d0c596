"""The floor under bench_scale's load + build target: pgvector alone, no vectorstore code.

Issue #16 asks for a load + index build of a million 384-d rows in at most
5 minutes on this 2-core machine.  ``bench_scale.py`` measures vectorstore's
big-load ``bulk_add`` (COPY, then every index rebuilt).  This benchmark
measures what the server itself needs for the least part of that work, on
the same data, so the two can be set side by side:

1. ``COPY FROM`` a binary file on the server's own disk into a bare table
   (the document table's columns, the primary key only: no client, no
   socket, no generated column, no other index).  ``--storage external``
   (the default) keeps pgvector's own column storage, so with these texts
   the vectors go to TOAST; ``--storage main`` keeps the vector and the
   metadata in the row, as vectorstore's document tables do (migration
   0010);
2. ``CREATE INDEX ... USING hnsw (embedding vector_cosine_ops) WITH (m = 16,
   ef_construction = <each --ef-construction>)``, with
   ``maintenance_work_mem`` sized for the graph (no spill) and vectorstore's
   default ``max_parallel_maintenance_workers`` (``--workers`` overrides);
3. recall@10 of the index at ``hnsw.ef_search`` 200 (nearest's unfiltered
   default) over ``--queries`` queries near random rows, against exact
   ground truth in numpy, so a cheaper build shows what it costs in recall.

Data: ``bench_scale.build_set`` and ``bench_scale.texts_for`` (the same
clustered vectors near a 24-d subspace and prose-like texts of 100-700
characters, the same seed).

Usage::

    python benchmarks/bench_build_floor.py --rows 1000000              # ef_construction 64
    python benchmarks/bench_build_floor.py --rows 1000000 --ef-construction 64,32
    python benchmarks/bench_build_floor.py --rows 1000000 --storage main
    python benchmarks/bench_build_floor.py --rows 20000 --queries 20   # quick

Results: ``benchmarks/results/build_floor_<rows>.json`` and ``build_floor_<rows>_tables.md``
(``build_floor_<rows>_main...`` with ``--storage main``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _ingest_common import BARE_COLUMNS, BARE_TABLE  # noqa: E402
from bench_scale import build_memory, build_set, near, texts_for, truth  # noqa: E402
from bench_search import fresh_engine, markdown, recall  # noqa: E402

from vectorstore.schema.maintenance import build_settings  # noqa: E402
from vectorstore.write.batch import batches_from_arrays  # noqa: E402
from vectorstore.write.copy import COPY_COLUMNS, encoded_stream  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DIM = 384
K = 10
EF_SEARCH = 200
DATABASE = "bench_floor"
INDEX = "ix_bench_floor_hnsw"


def write_copy_file(path: Path, data: np.ndarray[Any, Any], texts: list[str]) -> None:
    """The rows as vectorstore's binary COPY stream writes them, into a file the server reads."""
    batches = batches_from_arrays(
        texts, data, DIM, metadata=[{"i": i} for i in range(len(texts))],
        external_ids=[str(i) for i in range(len(texts))],
    )  # fmt: skip
    with open(path, "wb") as handle:
        for chunk in encoded_stream(batches, 1):
            handle.write(chunk)
    os.chmod(path, 0o644)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--ef-construction", default="64", help="comma-separated, one build each")
    parser.add_argument("--workers", type=int, default=None, help="parallel build workers")
    parser.add_argument("--storage", choices=("external", "main"), default="external",
                        help="the vector's and metadata's column storage")  # fmt: skip
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--url", default=None, help="an external PostgreSQL")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    builds = [int(x) for x in args.ef_construction.split(",")]

    started = time.perf_counter()
    data, _, _ = build_set(args.rows, args.seed)
    texts = texts_for(args.rows, args.seed)
    folder = Path(tempfile.gettempdir()) / f"vectorstore-bench-floor-files-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    os.chmod(folder, 0o755)
    copy_file = folder / f"rows_{args.rows}.copy"
    write_copy_file(copy_file, data, texts)
    print(f"{args.rows:,} rows generated and encoded in {time.perf_counter() - started:.0f} s "
          f"({copy_file.stat().st_size / 1024**2:,.0f} MiB)", flush=True)  # fmt: skip

    engine = fresh_engine(args.url, "vectorstore-bench-floor", DATABASE)
    memory = build_memory(args.rows)
    settings = build_settings(memory, args.workers)
    steps: list[dict[str, Any]] = []
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"CREATE TABLE {BARE_TABLE} ({BARE_COLUMNS})")
        if args.storage == "main":
            cur.execute(f"ALTER TABLE {BARE_TABLE} ALTER COLUMN embedding SET STORAGE MAIN, "
                        "ALTER COLUMN metadata SET STORAGE MAIN")  # fmt: skip
        raw.commit()
        began = time.perf_counter()
        cur.execute(f"COPY {BARE_TABLE} ({', '.join(COPY_COLUMNS)}) FROM %s (FORMAT BINARY)",
                    (str(copy_file),))  # fmt: skip
        raw.commit()
        copy_s = time.perf_counter() - began
        steps.append({"step": f"COPY FROM file, bare table ({args.storage} storage)",
                      "seconds": round(copy_s, 1),
                      "rows/s": round(args.rows / copy_s)})  # fmt: skip
        print(f"COPY: {copy_s:.1f} s", flush=True)
        cur.execute(f"ANALYZE {BARE_TABLE}")
        cur.execute("CHECKPOINT")
        raw.commit()
        qrng = np.random.default_rng(args.seed + 11)
        picks = qrng.integers(0, args.rows, args.queries)
        queries = [near(data, int(i), qrng) for i in picks]
        truths = [truth(data, q, None) for q in queries]
        for ef_c in builds:
            for name, value in settings.items():
                cur.execute(f"SET {name} = '{value}'")
            began = time.perf_counter()
            cur.execute(
                f"CREATE INDEX {INDEX} ON {BARE_TABLE} USING hnsw (embedding vector_cosine_ops) "
                f"WITH (m = 16, ef_construction = {ef_c})"
            )
            raw.commit()
            build_s = time.perf_counter() - began
            cur.execute(f"SELECT pg_relation_size('{INDEX}')")
            size_mb = int(cur.fetchone()[0]) / 1024**2
            cur.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
            got = []
            for q in queries:
                literal = "[" + ",".join(f"{x:.7g}" for x in q) + "]"
                cur.execute(f"SELECT id - 1 FROM {BARE_TABLE} ORDER BY embedding <=> %s::vector "
                            f"LIMIT {K}", (literal,))  # fmt: skip
                got.append([int(r[0]) for r in cur.fetchall()])
            raw.commit()
            rec = [recall(g, [int(x) for x in t]) for g, t in zip(got, truths, strict=True)]
            steps.append({
                "step": f"CREATE INDEX hnsw, m 16, ef_construction {ef_c}",
                "seconds": round(build_s, 1), "rows/s": round(args.rows / build_s),
                "index MiB": round(size_mb), f"recall@{K} at ef_search {EF_SEARCH}":
                    round(statistics.fmean(rec), 3), "lowest recall": round(min(rec), 2),
                "COPY + build s": round(copy_s + build_s, 1),
            })  # fmt: skip
            print(f"ef_construction {ef_c}: build {build_s:.1f} s, recall "
                  f"{statistics.fmean(rec):.3f}", flush=True)  # fmt: skip
            cur.execute(f"DROP INDEX {INDEX}")
            raw.commit()
    finally:
        raw.close()
        engine.dispose()
        copy_file.unlink(missing_ok=True)

    load = os.getloadavg()[0]
    head = (f"{args.rows:,} rows of 384-d vectors (bench_scale's set), pgvector alone, "
            f"{args.storage} storage; "
            f"maintenance_work_mem {memory}, max_parallel_maintenance_workers "
            f"{settings['max_parallel_maintenance_workers']}, {os.cpu_count()} cores, "
            f"load average at the end {load:.1f}")  # fmt: skip
    out = head + "\n\n" + markdown("Server-side COPY and HNSW build", steps)
    print(out)
    RESULTS.mkdir(exist_ok=True)
    stem = f"build_floor_{args.rows}" + ("" if args.storage == "external" else "_main")
    (RESULTS / f"{stem}.json").write_text(json.dumps(
        {"rows": args.rows, "storage": args.storage, "maintenance_work_mem": memory,
         "settings": settings, "steps": steps}, indent=2))  # fmt: skip
    (RESULTS / f"{stem}_tables.md").write_text(out + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
