"""A million rows: load, HNSW build, then unfiltered and filtered nearest at its defaults.

Sized by ``--rows`` (default 100,000, so CI and a laptop can run it; the
scale figures in ``docs/scale.md`` are ``--rows 1000000``).

Data (built on every machine, no download): ``rows`` synthetic 384-d unit
vectors in clusters of uneven sizes under a few topics, near a 24-d subspace
(as in ``bench_filtered_correlated.py``: real embeddings have a low intrinsic
dimension and neighbouring topics), with prose-like texts of 100-700
characters.  Each row's metadata holds two filter keys with the same shares
(0.1 %, 1 %, 10 %, 50 % of the rows, the rest in "other"):

* ``cat``, **correlated**: every category is a union of whole clusters, so
  the rows a filter keeps lie together;
* ``rnd``, **random**: the same shares, assigned at random.

Load: one ``bulk_add`` in big-load mode (``rebuild_index=True``: the table's
indexes are dropped for the COPY and rebuilt after it, the HNSW graph with
``maintenance_work_mem`` sized by :func:`vectorstore.schema.indexes.hnsw_graph_bytes`
unless ``--maintenance-work-mem`` says otherwise, progress printed).

Queries, at nearest's defaults (k = 10), timed one after another:

* unfiltered, near random rows;
* random filters (``{"rnd": c}``), near random rows;
* correlated filters (``{"cat": c}``) with the query *away* from the
  filtered rows (near a row of another category): the case where a filtered
  HNSW scan collapses.

Ground truth: exact search in numpy over the same float32 vectors (with a
filter: over the filtered rows), for every query.  Reported per case: p50,
p95, recall@10, share of short results, the strategies nearest chose.

Usage::

    python benchmarks/bench_scale.py                     # 100,000 rows
    python benchmarks/bench_scale.py --rows 1000000      # the scale run (~2.3 GB of graph)
    python benchmarks/bench_scale.py --rows 1000000 --reuse   # queries only, on the loaded set

Results: ``benchmarks/results/scale_<rows>.json`` and ``scale_<rows>_tables.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_search import markdown, recall, summary, timed  # noqa: E402

import vectorstore as vs  # noqa: E402
from vectorstore.schema.indexes import hnsw_graph_bytes  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DIM = 384
K = 10
INTRINSIC = 24
TOPICS = 8
#: category -> share of rows (the rest is "other")
SHARES = {"c0.1": 0.001, "c1": 0.01, "c10": 0.10, "c50": 0.50}
#: clusters per category (correlated filters own whole clusters)
CLUSTERS = {"c0.1": 1, "c1": 3, "c10": 8, "c50": 24, "other": 24}
WORDS = [
    "index", "scan", "graph", "vector", "query", "filter", "tenant", "category", "topic",
    "cluster", "row", "table", "distance", "neighbour", "recall", "latency", "budget",
    "sample", "estimate", "cost", "plan", "server", "module", "function", "class", "method",
    "value", "record", "field", "document", "text", "model", "embedding",
]  # fmt: skip


def build_memory(rows: int, *, floor_mb: int = 0) -> str:
    """maintenance_work_mem for an HNSW build over ``rows`` rows: the graph fits, 10 % spare."""
    needed = int(hnsw_graph_bytes(rows, DIM) * 1.1 / 1024**2) + 64
    return f"{max(needed, floor_mb)}MB"


def database(rows: int) -> str:
    return f"bench_scale_{rows}"


def build_set(rows: int, seed: int) -> tuple[np.ndarray[Any, Any], list[str], list[str]]:
    """Vectors, each row's correlated category (by cluster) and random category."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    cluster_cat: list[str] = []
    rest = rows
    for cat, share in SHARES.items():
        n = max(1, round(rows * share))
        rest -= n
        parts = rng.dirichlet(np.ones(CLUSTERS[cat]) * 2) if CLUSTERS[cat] > 1 else [1.0]
        cut = [max(1, int(n * p)) for p in parts]
        cut[0] += n - sum(cut)
        sizes += cut
        cluster_cat += [cat] * len(cut)
    parts = rng.dirichlet(np.ones(CLUSTERS["other"]) * 2)
    cut = [max(1, int(rest * p)) for p in parts]
    cut[0] += rest - sum(cut)
    sizes += cut
    cluster_cat += ["other"] * len(cut)
    basis = rng.standard_normal((INTRINSIC, DIM)).astype(np.float32) / np.sqrt(INTRINSIC)
    topics = 1.2 * rng.standard_normal((TOPICS, INTRINSIC))
    centres = topics[rng.integers(0, TOPICS, len(sizes))]
    centres = centres + 0.8 * rng.standard_normal((len(sizes), INTRINSIC))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(labels)
    data = np.empty((rows, DIM), dtype=np.float32)
    step = 100_000  # in slices: the 1M x 384 float64 temporaries would need 3 GB
    for at in range(0, rows, step):
        part = labels[at : at + step]
        latent = centres[part] + rng.standard_normal((len(part), INTRINSIC))
        chunk = (latent @ basis).astype(np.float32)
        chunk += 0.05 * rng.standard_normal(chunk.shape).astype(np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        data[at : at + step] = chunk
    cats = [cluster_cat[c] for c in labels]
    randoms = list(rng.permutation(np.asarray(cats)))  # the same shares, spread at random
    return data, cats, randoms


def texts_for(rows: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed + 7)
    lengths = rng.integers(15, 100, rows)
    picks = rng.integers(0, len(WORDS), int(lengths.sum()))
    out, at = [], 0
    for i, n in enumerate(lengths):
        out.append(f"row {i}: " + " ".join(WORDS[j] for j in picks[at : at + n]))
        at += n
    return out


def fresh_engine(url: str | None, rows: int) -> Any:
    """An engine on a new, migrated database (its HNSW index is rebuilt by the big load)."""
    base = (vs.normalize_url(url) if url else vs.EmbeddedServer(
        Path(tempfile.gettempdir()) / f"vs-bench-scale-{os.getuid()}").start())  # fmt: skip
    admin = vs.make_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database(rows)} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {database(rows)}")
    admin.dispose()
    target = base.set(database=database(rows))
    vs.migrate(target)
    return vs.make_engine(target)


def existing_engine(url: str | None, rows: int) -> Any:
    base = (vs.normalize_url(url) if url else vs.EmbeddedServer(
        Path(tempfile.gettempdir()) / f"vs-bench-scale-{os.getuid()}").start())  # fmt: skip
    return vs.make_engine(base.set(database=database(rows)))


def load(engine: Any, data: np.ndarray[Any, Any], cats: list[str], randoms: list[str],
         seed: int, memory: str, workers: int | None) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    repo: Any = vs.DocumentRepository.standalone(
        engine, collection="scale", embedding_model="synthetic"
    )
    last = [0.0]

    def progress(p: Any) -> None:
        now = time.perf_counter()
        if p.phase == "done" or now - last[0] >= 15:
            last[0] = now
            share = f" {100 * p.fraction:.0f}%" if p.fraction is not None else ""
            print(f"    [{p.number}/{p.total}] {p.index}: {p.phase}{share}", flush=True)

    texts = texts_for(len(cats), seed)
    pairs = zip(cats, randoms, strict=True)
    metadata = [{"cat": c, "rnd": r, "i": i} for i, (c, r) in enumerate(pairs)]
    options: dict[str, Any] = {"maintenance_work_mem": memory, "progress": progress}
    if workers is not None:
        options["parallel_workers"] = workers
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", vs.IndexMemoryWarning)
        result = repo.bulk_add(texts, embeddings=data, metadata=metadata,
                               external_ids=[str(i) for i in range(len(cats))],
                               rebuild_index=True, index_options=options)  # fmt: skip
    spilled = [str(w.message) for w in caught if issubclass(w.category, vs.IndexMemoryWarning)]
    with engine.connect() as conn:
        size = conn.execute(text(
            "SELECT c.relname, pg_relation_size(c.oid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
            "WHERE a.amname = 'hnsw'"
        )).all()  # fmt: skip
        table = conn.execute(text("SELECT pg_total_relation_size('vectorstore_documents')"))
        table_bytes = int(table.scalar_one())
    info = {
        "rows": len(cats), "load_s": round(result.write_s, 1), "index_s": round(result.index_s, 1),
        "total_s": round(result.elapsed_s, 1), "maintenance_work_mem": memory,
        "parallel_workers": workers, "graph_estimate_mb": round(
            hnsw_graph_bytes(len(cats), DIM) / 1024**2),
        "hnsw_index_mb": {name: round(int(b) / 1024**2) for name, b in size},
        "table_total_mb": round(table_bytes / 1024**2), "memory_warnings": spilled,
        "rebuilt": list(result.rebuilt),
    }  # fmt: skip
    print(f"loaded {len(cats)} rows: COPY {info['load_s']} s, indexes {info['index_s']} s "
          f"(total {info['total_s']} s); HNSW {info['hnsw_index_mb']} MB; "
          f"warnings {spilled}", flush=True)  # fmt: skip
    return repo, info


def truth(data: np.ndarray[Any, Any], q: np.ndarray[Any, Any],
          mask: np.ndarray[Any, Any] | None) -> list[int]:  # fmt: skip
    d = 1 - data @ q
    if mask is not None:
        d = np.where(mask, d, np.inf)
    top = np.argpartition(d, K)[:K]
    return [int(i) for i in top[np.argsort(d[top])] if np.isfinite(d[i])]


def near(data: np.ndarray[Any, Any], i: int, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    q = data[i] + 0.4 * rng.standard_normal(DIM).astype(np.float32) / np.sqrt(DIM)
    return (q / np.linalg.norm(q)).astype(np.float32)


Case = tuple[str, str, Any, list[tuple[np.ndarray[Any, Any], list[int]]]]


def cases(data: np.ndarray[Any, Any], cats: list[str], randoms: list[str], n: int,
          seed: int) -> list[Case]:  # fmt: skip
    """(kind, selectivity, filter, [(query, truth)]) for every case."""
    rng = np.random.default_rng(seed + 3)
    rows = len(cats)
    cat_arr, rnd_arr = np.asarray(cats), np.asarray(randoms)
    out = []
    qs = [near(data, int(i), rng) for i in rng.integers(0, rows, n)]
    out.append(("unfiltered", "100%", None, [(q, truth(data, q, None)) for q in qs]))
    for c, share in SHARES.items():
        mask = rnd_arr == c
        qs = [near(data, int(i), rng) for i in rng.integers(0, rows, n)]
        out.append(("random", f"{100 * share:g}%", {"rnd": c},
                    [(q, truth(data, q, mask)) for q in qs]))  # fmt: skip
    for c, share in SHARES.items():
        mask = cat_arr == c
        away = np.flatnonzero((cat_arr != c) & (cat_arr != "other"))
        if c == "c50":  # every other category is "away" from the largest one
            away = np.flatnonzero(cat_arr != c)
        qs = [near(data, int(i), rng) for i in rng.choice(away, n)]
        out.append(("correlated (away)", f"{100 * share:g}%", {"cat": c},
                    [(q, truth(data, q, mask)) for q in qs]))  # fmt: skip
    return out


def run_cases(repo: Any, all_cases: Any, rounds: int) -> list[dict[str, Any]]:
    rows = []
    for kind, sel, flt, queries in all_cases:
        times: list[float] = []
        recalls: list[float] = []
        shorts = 0
        used: dict[str, int] = {}
        for _ in range(rounds):
            for q, want in queries:
                ms, got = timed(lambda q=q, f=flt: repo.nearest(q, k=K, filter=f))
                times.append(ms)
                ids = [int(h.document.external_id) for h in got]
                recalls.append(recall(ids, want))
                shorts += len(ids) < min(K, len(want))
                name = got.strategy + (f"<-{got.fallback_from}" if got.fallback_from else "")
                used[name] = used.get(name, 0) + 1
        row = {"queries": kind, "selectivity": sel, **summary(times),
               "recall": round(statistics.fmean(recalls), 4),
               "min_recall": round(min(recalls), 3),
               "short": f"{100 * shorts / len(times):.0f}%", "strategies": used}  # fmt: skip
        rows.append(row)
        print(f"  {kind} {sel}: p50 {row['p50_ms']} ms recall {row['recall']} "
              f"short {row['short']} {used}", flush=True)  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=20, help="per case")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--maintenance-work-mem", default=None,
                        help="default: the estimated graph size + 10 %%")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None, help="parallel build workers")
    parser.add_argument("--reuse", action="store_true", help="query the loaded set again")
    parser.add_argument("--url", default=None, help="an external PostgreSQL")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    data, cats, randoms = build_set(args.rows, args.seed)
    print(f"built {args.rows} vectors in {time.perf_counter() - started:.1f} s", flush=True)
    memory = args.maintenance_work_mem or build_memory(args.rows)
    load_info: dict[str, Any] = {}
    if args.reuse:
        engine = existing_engine(args.url, args.rows)
        repo: Any = vs.DocumentRepository.standalone(engine, collection="scale")
    else:
        engine = fresh_engine(args.url, args.rows)
        repo, load_info = load(engine, data, cats, randoms, args.seed, memory, args.workers)
    started = time.perf_counter()
    all_cases = cases(data, cats, randoms, args.queries, args.seed)
    print(f"ground truth for {sum(len(c[3]) for c in all_cases)} queries in "
          f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    for q, _ in all_cases[0][3][:3]:  # warm up: catalog, sample, cost constants
        repo.nearest(q, k=K)
        repo.nearest(q, k=K, filter={"rnd": "c1"})
    rows = run_cases(repo, all_cases, args.rounds)
    engine.dispose()
    load_avg = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"rows": args.rows, "queries_per_case": args.queries, "rounds": args.rounds, "k": K,
           "load": load_info, "table": rows, "load_average_at_end": load_avg}  # fmt: skip
    name = f"scale_{args.rows}"
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2, default=str))
    parts = [
        f"rows={args.rows} queries={args.queries} per case rounds={args.rounds} k={K}; "
        f"load average at the end {load_avg[0]:.1f} on {os.cpu_count()} cores\n",
        "load: " + json.dumps(load_info) + "\n" if load_info else "",
        markdown(f"nearest at its defaults, {args.rows} rows", rows),
    ]
    text_out = "\n".join(parts)
    (RESULTS / f"{name}_tables.md").write_text(text_out)
    print(text_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
