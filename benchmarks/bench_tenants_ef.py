"""Recall against ef_search for the largest tenants of a loaded ``bench_tenants.py`` set.

``bench_tenants.py`` leaves its database on its embedded server.  This
script reruns the same queries (the same seeds, so the same vectors, queries
and ground truth) against the three largest tenants' partitions at several
``ef_search`` values, interleaved per query, and reports p50 and recall@10:
what the index strategy's default (``ef_search`` 200) gives on a tenant of
a given size and what a larger one costs.  With ``--shared`` it also runs
the largest tenant on the shared table with the table-wide index only
(its partial index, built by ``bench_tenants.py``, is dropped first), by
strategy.

``--shared --load-shared`` loads only the shared table itself (into a new
database on the same server, as ``bench_tenants.py`` does: a quarter of its
time) and runs the three largest tenants through the table-wide index: at
the defaults, at each ``--ef`` (a given ``ef_search`` is kept by the planner;
200 was the previous release's choice for them) and exactly.

Usage::

    python benchmarks/bench_tenants.py --rows 1000000        # loads the set (an hour here)
    python benchmarks/bench_tenants_ef.py --rows 1000000      # then this, a few minutes
    python benchmarks/bench_tenants_ef.py --rows 1000000 --shared
    python benchmarks/bench_tenants_ef.py --rows 1000000 --shared --load-shared  # alone
    python benchmarks/bench_tenants_ef.py --rows 1000000 --shared --shared-only  # again

At a million rows a wide scan of the shared table reads some 18,000 pages
(measured: 3,569 hit and 14,889 read for one query at ef_search 1000), so
whichever variant meets a query's part of the graph first pays for reading
it, and an exact ranking (heap only) warms nothing for the next: the
exact ranking runs after the index variants of each query.

Results: ``benchmarks/results/tenants_ef_<rows>_tables.md`` (with ``--load-shared``:
``tenants_ef_shared_<rows>_tables.md``).
"""

from __future__ import annotations

import argparse
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

from bench_filtered_correlated import texts_for  # noqa: E402
from bench_search import fresh_engine, markdown, recall  # noqa: E402
from bench_tenants import (  # noqa: E402
    DATABASE,
    DIM,
    INTRINSIC,
    K,
    TenantDoc,
    load_shared,
    measured_tenants,
    tenant_sizes,
    tenant_vectors,
)

import vectorstore as vs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=30, help="as bench_tenants.py ran")
    parser.add_argument("--ef", default="200,400,700,1000")
    parser.add_argument("--shared", action="store_true")
    parser.add_argument("--load-shared", action="store_true",
                        help="load the shared table alone first (replaces the database)")
    parser.add_argument("--shared-only", action="store_true",
                        help="the database holds the shared table alone (an earlier --load-shared)")
    parser.add_argument("--url", default=None, help="the external server bench_tenants used")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    efs = [int(x) for x in args.ef.split(",")]

    # The same draws as bench_tenants.main, in the same order.
    sizes = tenant_sizes(args.rows, args.tenants)
    names = [f"tenant-{i:04d}" for i in range(args.tenants)]
    rng = np.random.default_rng(args.seed)
    basis = rng.standard_normal((INTRINSIC, DIM)).astype(np.float32) / np.sqrt(INTRINSIC)
    data = [tenant_vectors(n, rng, basis) for n in sizes]
    measured = measured_tenants(sizes)
    qrng = np.random.default_rng(args.seed + 1)
    queries: dict[int, list[Any]] = {}
    truth: dict[int, list[list[int]]] = {}
    for i in measured:
        picks = qrng.integers(0, sizes[i], args.queries)
        qs = data[i][picks] + 0.3 * qrng.standard_normal((args.queries, DIM)).astype(np.float32)
        qs /= np.linalg.norm(qs, axis=1, keepdims=True)
        queries[i] = list(qs)
        truth[i] = [[int(x) for x in np.argsort(1 - data[i] @ q)[:K]] for q in qs]

    load: dict[str, float] = {}
    if args.load_shared:
        engine = fresh_engine(args.url, "vectorstore-bench-tenants", DATABASE)
        load_shared(engine, names, data, texts_for(max(sizes), args.seed), measured, load)
    elif args.url:
        engine = vs.make_engine(vs.normalize_url(args.url).set(database=DATABASE))
    else:
        folder = Path(tempfile.gettempdir()) / f"vectorstore-bench-tenants-{os.getuid()}"
        engine = vs.make_engine(vs.EmbeddedServer(folder).start().set(database=DATABASE))

    def run(repo: Any, i: int, variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
        repo.nearest(queries[i][0], k=K)  # warm the caches
        times: list[list[float]] = [[] for _ in variants]
        recalls: list[list[float]] = [[] for _ in variants]
        used: list[dict[str, int]] = [{} for _ in variants]
        for qi, q in enumerate(queries[i]):
            # The index variants in turn (each comes first for some queries);
            # the exact ranking always after them: it reads the tenant's heap,
            # which at a million rows pushed the index's pages out of
            # shared_buffers for whichever variant came next (2-3x its p50).
            ann = [v for v in range(len(variants)) if variants[v].get("strategy") != "exact"]
            last = [v for v in range(len(variants)) if v not in ann]
            turn = qi % len(ann)
            for v in [*ann[turn:], *ann[:turn], *last]:
                began = time.perf_counter()
                hits = repo.nearest(q, k=K, **variants[v])
                times[v].append((time.perf_counter() - began) * 1000)
                got = [int(h.document.external_id.rsplit("-", 1)[1]) for h in hits]
                recalls[v].append(recall(got, truth[i][qi]))
                used[v][hits.strategy] = used[v].get(hits.strategy, 0) + 1
        return [
            {"tenant": names[i], "rows": sizes[i],
             "options": ", ".join(f"{k}={x}" for k, x in variants[v].items()) or "defaults",
             "p50 ms": round(statistics.median(times[v]), 1),
             "recall": round(statistics.fmean(recalls[v]), 3),
             "lowest recall": round(min(recalls[v]), 1), "strategies": used[v]}
            for v in range(len(variants))
        ]  # fmt: skip

    out = []
    alone = args.load_shared or args.shared_only
    if not alone:  # the partitions exist only in bench_tenants.py's set
        rows: list[dict[str, Any]] = []
        for i in measured[:3]:
            repo = vs.DocumentRepository.standalone(
                engine, collection=names[i], model=TenantDoc, embedding_model="synthetic"
            )
            rows += run(repo, i, [{"ef_search": ef} for ef in efs])
            print(f"{names[i]}: done", flush=True)
        title = f"Partitioned tenants, nearest by ef_search, k={K}, {args.rows:,} rows"
        out.append(markdown(title, rows))
    if args.shared:
        shared: list[dict[str, Any]] = []
        for i in measured[:3]:
            repo = vs.DocumentRepository.standalone(
                engine, collection=f"s-{names[i]}", embedding_model="synthetic"
            )
            with engine.begin() as conn:
                cid = conn.exec_driver_sql(
                    "SELECT id FROM vectorstore_collections WHERE name = %(n)s",
                    {"n": f"s-{names[i]}"},
                ).scalar_one()
                conn.exec_driver_sql(
                    f"DROP INDEX IF EXISTS vsx_vectorstore_documents_c{cid}_hnsw_cos"
                )
            variants = [{}, *({"ef_search": ef} for ef in efs), {"strategy": "exact"}]
            shared += run(repo, i, variants)
            print(f"s-{names[i]}: done", flush=True)
        title = f"The largest tenants on the shared table (table-wide index), k={K}"
        out.append(markdown(title, shared))
    if load:
        steps = [{"step": k, "seconds": round(v, 1)} for k, v in load.items()]
        out.append(markdown("Loading the shared table alone", steps))
    engine.dispose()
    text = f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n\n"
    text += "\n\n".join(out)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    name = f"tenants_ef_shared_{args.rows}" if alone else f"tenants_ef_{args.rows}"
    (RESULTS / f"{name}_tables.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
