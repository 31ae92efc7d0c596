"""Search benchmark: recall, latency, filtered search, library overhead, compact indexes.

Everything side by side in one run, on one server:

1. unfiltered recall@10 and p50/p95 at several ef_search values (synthetic and
   real MiniLM embeddings of the stdlib documentation);
2. filtered queries keeping 0.1%, 1%, 10% and 50% of rows: rows returned,
   recall and latency of a plain HNSW scan, an iterative scan and an exact
   ranking (all hand-written SQL) against ``nearest`` choosing by itself;
3. nearest's latency against the same query as hand-written SQL (overhead);
4. halfvec and binary-quantized indexes, and a per-collection partial index:
   recall and size.

Usage::

    python benchmarks/bench_search.py                 # 100,000 rows, 100 queries
    python benchmarks/bench_search.py --rows 20000    # quicker
    python benchmarks/bench_search.py --url postgresql://...  # an external server

Results: ``benchmarks/results/search.json`` and ``search_tables.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vectorstore as vs  # noqa: E402
from vectorstore.diagnostics import percentile  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DIM = 384
K = 10
SELECTIVITY_FIELDS = {
    "0.1%": ("g1000", 1000),
    "1%": ("g100", 100),
    "10%": ("g10", 10),
    "50%": ("g2", 2),
}


def clustered(n: int, seed: int = 0, clusters: int = 200) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, DIM)).astype(np.float32)
    labels = rng.integers(0, clusters, n)
    data = centers[labels] + 0.35 * rng.standard_normal((n, DIM)).astype(np.float32)
    return (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return (time.perf_counter() - started) * 1000, out


def summary(times: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(times, 0.5), 3), "p95_ms": round(percentile(times, 0.95), 3)}


def exact_ids(
    matrix: np.ndarray[Any, Any],
    ids: np.ndarray[Any, Any],
    q: np.ndarray[Any, Any],
    mask: np.ndarray[Any, Any] | None = None,
    k: int = K,
) -> list[int]:
    d = 1 - matrix @ (q / np.linalg.norm(q))
    if mask is not None:
        d = np.where(mask, d, np.inf)
    top = np.argsort(d)[:k]
    return [int(ids[i]) for i in top if np.isfinite(d[i])]


def recall(got: list[int], truth: list[int]) -> float:
    return len(set(got) & set(truth)) / len(truth) if truth else 1.0


def vec_literal(q: np.ndarray[Any, Any]) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in q) + "]"


class HandSQL:
    """The same queries written by hand on a raw DB-API connection."""

    COLUMNS = "id, external_id, text, content_hash, metadata, created_at, collection_id"

    def __init__(self, engine: Any, collection_id: int) -> None:
        self.raw = engine.raw_connection()
        self.cid = collection_id

    def query(
        self,
        q: np.ndarray[Any, Any],
        *,
        where: str = "",
        params: tuple[Any, ...] = (),
        settings: dict[str, str] | None = None,
        exact: bool = False,
    ) -> list[int]:
        cur = self.raw.cursor()
        for name, value in (settings or {}).items():
            cur.execute(f"SET LOCAL {name} = {value}")
        vec = vec_literal(q)
        order = "(embedding <=> %s::vector) + 0" if exact else "d"
        cur.execute(
            f"SELECT {self.COLUMNS}, embedding <=> %s::vector AS d FROM vectorstore_documents "
            f"WHERE collection_id = %s {where} ORDER BY {order} LIMIT {K}",
            (vec, self.cid, *params, *((vec,) if exact else ())),
        )
        rows = cur.fetchall()
        self.raw.rollback()
        return [int(r[1]) for r in rows]

    def close(self) -> None:
        self.raw.close()


def load_synthetic(
    engine: Any, rows: int, seed: int
) -> tuple[Any, np.ndarray[Any, Any], dict[str, np.ndarray[Any, Any]]]:
    data = clustered(rows, seed)
    rng = np.random.default_rng(seed + 1)
    groups = {name: rng.integers(0, size, rows) for name, size in SELECTIVITY_FIELDS.values()}
    repo: Any = vs.DocumentRepository.standalone(
        engine, collection="synthetic", embedding_model="synthetic"
    )
    metadata = [{name: int(groups[name][i]) for name in groups} for i in range(rows)]
    started = time.perf_counter()
    repo.bulk_add(
        [f"synthetic {i}" for i in range(rows)],
        embeddings=data,
        metadata=metadata,
        external_ids=[str(i) for i in range(rows)],
    )
    print(f"loaded {rows} rows in {time.perf_counter() - started:.1f} s", flush=True)
    return repo, data, groups


def build(repo: Any, spec: vs.IndexSpec, memory: str = "1GB") -> tuple[str, float]:
    started = time.perf_counter()
    name = repo.create_index(spec, maintenance_work_mem=memory)
    return name, time.perf_counter() - started


def index_size(engine: Any, name: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT pg_relation_size(CAST(:n AS regclass))"), {"n": name}
            ).scalar_one()
        )


def unfiltered_table(
    repo: Any,
    data: np.ndarray[Any, Any],
    ids: np.ndarray[Any, Any],
    queries: np.ndarray[Any, Any],
    efs: list[int],
    label: str,
) -> list[dict[str, Any]]:
    truth = [exact_ids(data, ids, q) for q in queries]
    out = []
    times = []
    for q in queries:
        ms, _ = timed(lambda q=q: repo.nearest(q, k=K, exact=True))
        times.append(ms)
    out.append({"corpus": label, "setting": "exact", "recall": 1.0, **summary(times)})
    for ef in [*efs, None]:
        times, recalls = [], []
        for q, t in zip(queries, truth, strict=True):
            kwargs = {"ef_search": ef} if ef else {}
            ms, hits = timed(lambda q=q, kw=kwargs: repo.nearest(q, k=K, **kw))
            times.append(ms)
            recalls.append(recall([int(h.document.external_id) for h in hits], t))
        name = f"ef_search={ef}" if ef else "nearest() defaults"
        out.append(
            {
                "corpus": label,
                "setting": name,
                "recall": round(statistics.fmean(recalls), 4),
                **summary(times),
            }
        )
    return out


def filtered_table(
    repo: Any,
    hand: HandSQL,
    data: np.ndarray[Any, Any],
    ids: np.ndarray[Any, Any],
    groups: dict[str, np.ndarray[Any, Any]],
    queries: np.ndarray[Any, Any],
) -> list[dict[str, Any]]:
    out = []
    where = "AND metadata @> %s::jsonb"
    for label, (field, _) in SELECTIVITY_FIELDS.items():
        methods: dict[str, dict[str, list[float]]] = {}
        strategies: dict[str, int] = {}
        for qi, q in enumerate(queries):
            value = int(groups[field][qi * 7919 % len(ids)])
            mask = groups[field] == value
            truth = exact_ids(data, ids, q, mask)
            params = (json.dumps({field: value}),)
            runs = {
                "hnsw (no iterative)": lambda q=q, p=params: hand.query(
                    q, where=where, params=p, settings={"hnsw.ef_search": "100"}
                ),
                "iterative scan": lambda q=q, p=params: hand.query(
                    q,
                    where=where,
                    params=p,
                    settings={
                        "hnsw.ef_search": "100",
                        "hnsw.iterative_scan": "relaxed_order",
                        "hnsw.max_scan_tuples": "40000",
                    },
                ),
                "exact (GIN + sort)": lambda q=q, p=params: hand.query(
                    q, where=where, params=p, exact=True
                ),
            }
            for name, fn in runs.items():
                ms, got = timed(fn)
                m = methods.setdefault(name, {"t": [], "r": [], "n": []})
                m["t"].append(ms)
                m["r"].append(recall(got, truth))
                m["n"].append(len(got))
            ms, hits = timed(lambda q=q, f=field, v=value: repo.nearest(q, k=K, filter={f: v}))
            m = methods.setdefault("nearest (auto)", {"t": [], "r": [], "n": []})
            m["t"].append(ms)
            m["r"].append(recall([int(h.document.external_id) for h in hits], truth))
            m["n"].append(len(hits))
            strategies[hits.strategy] = strategies.get(hits.strategy, 0) + 1
        best = min(
            percentile(methods[n]["t"], 0.5) for n in ("iterative scan", "exact (GIN + sort)")
        )
        for name, m in methods.items():
            row = {
                "selectivity": label,
                "method": name,
                "min_rows": int(min(m["n"])),
                "mean_rows": round(statistics.fmean(m["n"]), 2),
                "recall": round(statistics.fmean(m["r"]), 4),
                **summary(m["t"]),
            }
            if name == "nearest (auto)":
                row["vs_best_hand_p50"] = round(row["p50_ms"] / best, 3)
                row["strategies"] = strategies
            out.append(row)
        print(f"  filtered {label} done", flush=True)
    return out


def overhead_table(
    repo: Any, hand: HandSQL, queries: np.ndarray[Any, Any], rounds: int
) -> list[dict[str, Any]]:
    lib, raw = [], []
    for _ in range(rounds):
        for q in queries:
            lib.append(timed(lambda q=q: repo.nearest(q, k=K))[0])
            raw.append(timed(lambda q=q: hand.query(q, settings={"hnsw.ef_search": "100"}))[0])
    a, b = summary(lib), summary(raw)
    return [
        {"method": "hand-written SQL (psycopg2)", **b},
        {"method": "nearest()", **a, "overhead_p50": round(a["p50_ms"] / b["p50_ms"] - 1, 3)},
    ]


def compact_table(
    repo: Any,
    engine: Any,
    data: np.ndarray[Any, Any],
    ids: np.ndarray[Any, Any],
    queries: np.ndarray[Any, Any],
    full_name: str,
) -> list[dict[str, Any]]:
    truth = [exact_ids(data, ids, q) for q in queries]
    out = []
    variants = [("vector (full)", full_name, {})]
    for precision in ("halfvec", "binary"):
        name, secs = build(repo, vs.IndexSpec(precision=precision))  # type: ignore[arg-type]
        print(f"  built {precision} index in {secs:.1f} s", flush=True)
        variants.append((precision, name, {"precision": precision}))
    for label, name, kwargs in variants:
        times, recalls = [], []
        for q, t in zip(queries, truth, strict=True):
            ms, hits = timed(lambda q=q, kw=kwargs: repo.nearest(q, k=K, strategy="index", **kw))
            times.append(ms)
            recalls.append(recall([int(h.document.external_id) for h in hits], t))
        out.append(
            {
                "index": label,
                "size_mb": round(index_size(engine, name) / 2**20, 1),
                "recall": round(statistics.fmean(recalls), 4),
                **summary(times),
            }
        )
    return out


def real_embeddings(
    engine: Any, limit: int, n_queries: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from vectorstore._stdlib_corpus import extract_corpus

    _, texts = extract_corpus(limit=limit + n_queries)
    rng = np.random.default_rng(5)
    order = rng.permutation(len(texts))
    query_texts = [texts[i].text for i in order[:n_queries]]
    stored = [texts[i] for i in order[n_queries:]]
    embedder = vs.SentenceTransformerEmbedder(device="cpu")
    started = time.perf_counter()
    matrix = embedder.embed([t.text for t in stored])
    queries = embedder.embed(query_texts)
    print(
        f"embedded {len(stored) + len(query_texts)} stdlib texts in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    repo: Any = vs.DocumentRepository.standalone(engine, collection="stdlib", embedder=embedder)
    repo.bulk_add(
        [t.text for t in stored],
        embeddings=matrix,
        metadata=[t.metadata for t in stored],
        external_ids=[str(i) for i in range(len(stored))],
    )
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE vectorstore_documents")
    ids = np.arange(len(stored))
    rows = unfiltered_table(
        repo, matrix, ids, queries, [40, 100, 200], f"stdlib MiniLM ({len(stored)})"
    )
    # A per-collection partial index for this tenant of the shared table.
    name, secs = build(repo, vs.IndexSpec(per_collection=True))
    truth = [exact_ids(matrix, ids, q) for q in queries]
    times, recalls = [], []
    for q, t in zip(queries, truth, strict=True):
        ms, hits = timed(lambda q=q: repo.nearest(q, k=K))
        times.append(ms)
        recalls.append(recall([int(h.document.external_id) for h in hits], t))
    explain = str(repo.explain(queries[0], k=K))
    partial = [
        {
            "index": f"partial {name}",
            "size_mb": round(index_size(engine, name) / 2**20, 2),
            "build_s": round(secs, 2),
            "recall": round(statistics.fmean(recalls), 4),
            **summary(times),
            "explain": explain,
        }
    ]
    return rows, partial


def markdown(title: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols = [c for c in rows[0] if c not in ("explain",)]
    for row in rows:
        cols += [c for c in row if c not in cols and c != "explain"]
    lines = [f"### {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--real", type=int, default=2000, help="stdlib texts to embed (0: skip)")
    parser.add_argument("--overhead-rounds", type=int, default=3)
    parser.add_argument(
        "--url", default=None, help="an external PostgreSQL (default: own embedded)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.url:
        url = vs.normalize_url(args.url)
    else:
        server = vs.EmbeddedServer(Path(tempfile.gettempdir()) / f"vs-bench-search-{os.getuid()}")
        url = server.start()
    admin = vs.make_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("DROP DATABASE IF EXISTS bench_search WITH (FORCE)")
        conn.exec_driver_sql("CREATE DATABASE bench_search")
    admin.dispose()
    url = url.set(database="bench_search")
    vs.migrate(url)
    engine = vs.make_engine(url)
    with engine.begin() as conn:  # pgvector's loading recipe: COPY first, index after
        conn.exec_driver_sql("DROP INDEX ix_vectorstore_documents_embedding_hnsw")

    results: dict[str, Any] = {"rows": args.rows, "queries": args.queries, "k": K}
    repo, data, groups = load_synthetic(engine, args.rows, args.seed)
    full_name, secs = build(repo, vs.IndexSpec(m=16, ef_construction=64))
    results["hnsw_build_s"] = round(secs, 1)
    print(f"built HNSW in {secs:.1f} s", flush=True)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE vectorstore_documents")
    ids = np.arange(args.rows)
    rng = np.random.default_rng(args.seed + 2)
    picks = rng.integers(0, args.rows, args.queries)
    queries = data[picks] + 0.3 * rng.standard_normal((args.queries, DIM)).astype(
        np.float32
    ) / np.sqrt(DIM)
    for q in queries[:5]:  # warm up caches
        repo.nearest(q, k=K)
        repo.nearest(q, k=K, exact=True)

    results["unfiltered"] = unfiltered_table(
        repo, data, ids, queries, [40, 64, 100, 200], f"synthetic ({args.rows})"
    )
    print("unfiltered done", flush=True)
    hand = HandSQL(engine, repo.collection.id)
    results["filtered"] = filtered_table(repo, hand, data, ids, groups, queries)
    results["overhead"] = overhead_table(repo, hand, queries, args.overhead_rounds)
    hand.close()
    print("overhead done", flush=True)
    results["compact"] = compact_table(
        repo, engine, data, ids, queries[: min(50, len(queries))], full_name
    )
    if args.real:
        results["real"], results["partial"] = real_embeddings(
            engine, args.real, min(100, args.queries)
        )
    engine.dispose()

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "search.json").write_text(json.dumps(results, indent=2, default=str))
    tables = [
        markdown(
            "Unfiltered recall@10 and latency", results["unfiltered"] + results.get("real", [])
        ),
        markdown("Filtered queries (k=10)", results["filtered"]),
        markdown("Library overhead (unfiltered, k=10, ef_search=100)", results["overhead"]),
        markdown("Compact indexes (synthetic)", results["compact"]),
        markdown("Per-collection partial index (stdlib MiniLM)", results.get("partial", [])),
    ]
    text_out = (
        f"rows={args.rows} queries={args.queries} hnsw build {results['hnsw_build_s']} s\n\n"
        + "\n".join(t for t in tables if t)
    )
    (RESULTS / "search_tables.md").write_text(text_out)
    print(text_out)
    if results.get("partial"):
        print(results["partial"][0]["explain"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
