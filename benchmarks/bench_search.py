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
import functools
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
from vectorstore.query.diagnostics import percentile  # noqa: E402
from vectorstore.query.options import (  # noqa: E402
    DEFAULT_EF_SEARCH,
    DEFAULT_FILTERED_EF_SEARCH,
    DEFAULT_MAX_SCAN_TUPLES,
    DEFAULT_PROBES,
    DEFAULT_RERANK,
)

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


_TEMPLATE = "[" + ",".join(["%.9g"] * DIM) + "]"


def vec_literal(q: np.ndarray[Any, Any]) -> str:
    """pgvector's text form; %.9g round-trips float32 exactly (one C-level format)."""
    return _TEMPLATE % tuple(np.asarray(q, dtype=np.float32).tolist())


def settings_for(strategy: str) -> dict[str, str]:
    """The settings nearest applies for ``strategy`` at its defaults (none for exact)."""
    if strategy == "exact":
        return {}
    out = {"hnsw.ef_search": str(DEFAULT_EF_SEARCH), "ivfflat.probes": str(DEFAULT_PROBES)}
    if strategy == "iterative":
        out["hnsw.ef_search"] = str(DEFAULT_FILTERED_EF_SEARCH)
        out.update({"enable_sort": "off", "hnsw.iterative_scan": "relaxed_order",
                    "hnsw.max_scan_tuples": str(DEFAULT_MAX_SCAN_TUPLES),
                    "ivfflat.iterative_scan": "relaxed_order"})  # fmt: skip
    return out


class HandSQL:
    """The same queries written by hand on the same engine's DB-API connections.

    Same work as ``nearest`` on a standalone repository: a pooled connection
    checked out per query (the engine's pre-ping included), one transaction,
    the same settings in one ``set_config`` statement sent in the same execute
    as the query on psycopg2 (as nearest does), the same columns and rows,
    commit.  ``held=True`` keeps one connection instead (no checkout),
    shown for reference.
    """

    COLUMNS = "id, external_id, text, content_hash, metadata, created_at, collection_id"

    def __init__(self, engine: Any, collection_id: int, *, held: bool = False) -> None:
        self.engine = engine
        self.held = engine.raw_connection() if held else None
        self.cid = collection_id
        self.one_trip = engine.dialect.driver == "psycopg2"

    def query(
        self,
        q: np.ndarray[Any, Any],
        *,
        where: str = "",
        params: tuple[Any, ...] = (),
        settings: dict[str, str] | None = None,
        exact: bool = False,
    ) -> list[int]:
        raw = self.held or self.engine.raw_connection()
        try:
            cur = raw.cursor()
            prefix = ""
            if settings:
                prefix = "SELECT " + ", ".join(
                    f"set_config('{n}', '{v}', true)" for n, v in settings.items())  # fmt: skip
                if self.one_trip:
                    prefix += "; "  # psycopg2 binds client-side: both in one execute
                else:
                    cur.execute(prefix)
                    prefix = ""
            vec = vec_literal(q)
            order = "(embedding <=> %s::vector) + 0" if exact else "d"
            cur.execute(
                f"{prefix}SELECT {self.COLUMNS}, embedding <=> %s::vector AS d "
                f"FROM vectorstore_documents "
                f"WHERE collection_id = %s {where} ORDER BY {order} LIMIT {K}",
                (vec, self.cid, *params, *((vec,) if exact else ())),
            )
            rows = cur.fetchall()
            raw.commit()
        finally:
            if self.held is None:
                raw.close()  # back to the pool
        return [int(r[1]) for r in rows]

    def close(self) -> None:
        if self.held is not None:
            self.held.close()


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
        ms, _ = timed(lambda q=q: repo.nearest(q, k=K, strategy="exact"))
        times.append(ms)
    out.append({"corpus": label, "setting": "exact", "recall": 1.0, **summary(times)})
    for ef in [*efs, None]:
        times, recalls = [], []
        used: dict[str, int] = {}
        for q, t in zip(queries, truth, strict=True):
            kwargs = {"ef_search": ef} if ef else {}
            ms, hits = timed(lambda q=q, kw=kwargs: repo.nearest(q, k=K, **kw))
            times.append(ms)
            recalls.append(recall([int(h.document.external_id) for h in hits], t))
            used[hits.strategy] = used.get(hits.strategy, 0) + 1
        name = f"ef_search={ef}" if ef else "nearest() defaults"
        out.append(
            {
                "corpus": label,
                "setting": name,
                "recall": round(statistics.fmean(recalls), 4),
                **summary(times),
                "strategies": used,
            }
        )
    return out


def schedule(
    n_queries: int, methods: list[str], rounds: int, seed: int
) -> list[tuple[int, int, str]]:
    """(round, query, method) in the order to run them.

    Each method runs every query once per round.  No call runs right after a
    call on the same query vector: the second run of a query finds the index
    pages it walks in the CPU caches and in shared buffers (measured: up to
    2x faster), so any schedule that lets one method follow another on the
    same vector more often than the reverse biases the comparison.

    A round is one pass over the queries per method.  Every query has its own
    random order of the methods, and pass k runs each query with the k-th
    method of its order, the queries in a fresh random order (never starting
    with the query that ended the pass before).  So which method runs a query
    first, and which follows which on it, is random per query and round.

    The schedule before this one gave method m query ``step + m * stride``
    at each step: consecutive calls were on different queries, but every
    query was run by the methods in one fixed order, the last listed first
    and the first listed last, ``stride`` steps apart.  Method 0 (``nearest``
    in every benchmark here) always ran a query after all the others had
    warmed its pages.  Figures measured with it are labelled so in the docs.
    """
    rng = np.random.default_rng(seed)
    out: list[tuple[int, int, str]] = []
    last = -1
    for round_no in range(rounds):
        orders = [rng.permutation(len(methods)) for _ in range(n_queries)]
        for k in range(len(methods)):
            queries = [int(q) for q in rng.permutation(n_queries)]
            if n_queries > 1 and queries[0] == last:
                queries[0], queries[-1] = queries[-1], queries[0]
            for q in queries:
                out.append((round_no, q, methods[int(orders[q][k])]))
            last = queries[-1]
    return out


def paired_median(times: dict[str, dict[tuple[int, int], float]], a: str, b: str) -> float:
    """Median over (round, query) of a's time over b's on the same query and round."""
    return statistics.median(times[a][key] / times[b][key] for key in times[a])


def _filtered_call(
    repo: Any, hand: HandSQL, name: str, q: np.ndarray[Any, Any], field: str, value: int
) -> Any:
    """One call of one method of the filtered table."""
    if name == "nearest (auto)":
        return repo.nearest(q, k=K, filter={field: value})
    params = (json.dumps({field: value}),)
    where = "AND metadata @> %s::jsonb"
    if name == "exact (GIN + sort)":
        return hand.query(q, where=where, params=params, exact=True)
    strategy = "index" if name == "hnsw (no iterative)" else "iterative"
    return hand.query(q, where=where, params=params, settings=settings_for(strategy))


def filtered_table(
    repo: Any,
    hand: HandSQL,
    data: np.ndarray[Any, Any],
    ids: np.ndarray[Any, Any],
    groups: dict[str, np.ndarray[Any, Any]],
    queries: np.ndarray[Any, Any],
    rounds: int,
) -> list[dict[str, Any]]:
    """Both hand-tuned strategies, a plain HNSW scan and nearest, interleaved (see schedule).

    The hand-written strategies use nearest's default settings for them
    (ef_search, max_scan_tuples), so "hand-tuned" means the same knobs; each
    query runs ``rounds`` times and the p50 is over all runs.
    """
    out = []
    names = ["hnsw (no iterative)", "iterative scan", "exact (GIN + sort)", "nearest (auto)"]
    for label, (field, _) in SELECTIVITY_FIELDS.items():
        values = [int(groups[field][qi * 7919 % len(ids)]) for qi in range(len(queries))]
        truths = [exact_ids(data, ids, queries[qi], groups[field] == values[qi])
                  for qi in range(len(queries))]  # fmt: skip
        times: dict[str, dict[tuple[int, int], float]] = {n: {} for n in names}
        got_recall: dict[str, list[float]] = {n: [] for n in names}
        got_rows: dict[str, list[int]] = {n: [] for n in names}
        strategies: dict[str, int] = {}
        for round_no, qi, name in schedule(len(queries), names, rounds, seed=12345):
            run = functools.partial(_filtered_call, repo, hand, name, queries[qi], field,
                                    values[qi])  # fmt: skip
            ms, got = timed(run)
            times[name][(round_no, qi)] = ms
            if name == "nearest (auto)":
                strategies[got.strategy] = strategies.get(got.strategy, 0) + 1
                got = [int(h.document.external_id) for h in got]
            got_recall[name].append(recall(got, truths[qi]))
            got_rows[name].append(len(got))
        best_name = min(("iterative scan", "exact (GIN + sort)"),
                        key=lambda n: percentile(list(times[n].values()), 0.5))  # fmt: skip
        best = percentile(list(times[best_name].values()), 0.5)
        for name in names:
            row = {
                "selectivity": label,
                "method": name,
                "min_rows": int(min(got_rows[name])),
                "mean_rows": round(statistics.fmean(got_rows[name]), 2),
                "recall": round(statistics.fmean(got_recall[name]), 4),
                **summary(list(times[name].values())),
            }
            if name == "nearest (auto)":
                row["vs_best_hand_p50"] = round(row["p50_ms"] / best, 3)
                row["paired_median_ratio"] = round(paired_median(times, name, best_name), 3)
                row["strategies"] = strategies
            out.append(row)
        mine = out[-1]
        print(f"  filtered {label}: nearest/best-hand p50 = {mine['vs_best_hand_p50']}, "
              f"paired median ratio = {mine['paired_median_ratio']}", flush=True)  # fmt: skip
    return out


def overhead_table(
    repo: Any, engine: Any, hand: HandSQL, queries: np.ndarray[Any, Any], rounds: int
) -> list[dict[str, Any]]:
    """nearest vs the same query by hand: wall time and client CPU time per call.

    Interleaved as in :func:`schedule`.  Client CPU time (this process only)
    is the library's own cost, which the server's share and the noise of a
    shared machine do not blur.
    """
    held = HandSQL(engine, hand.cid, held=True)
    settings = settings_for("index")
    calls: dict[str, Callable[[np.ndarray[Any, Any]], Any]] = {
        "nearest()": lambda q: repo.nearest(q, k=K),
        "hand": lambda q: hand.query(q, settings=settings),
        "held": lambda q: held.query(q, settings=settings),
    }
    wall: dict[str, dict[tuple[int, int], float]] = {name: {} for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for round_no, qi, name in schedule(len(queries), list(calls), rounds, seed=54321):
        c0 = time.process_time()
        ms, _ = timed(lambda qi=qi, name=name: calls[name](queries[qi]))
        cpu[name].append((time.process_time() - c0) * 1000)
        wall[name][(round_no, qi)] = ms
    held.close()
    ratios = [
        percentile([t for (r, _), t in wall["nearest()"].items() if r == round_no], 0.5)
        / percentile([t for (r, _), t in wall["hand"].items() if r == round_no], 0.5)
        for round_no in range(rounds)
    ]

    def row(label: str, name: str) -> dict[str, Any]:
        return {"method": label, **summary(list(wall[name].values())),
                "client_cpu_ms_mean": round(statistics.fmean(cpu[name]), 3)}  # fmt: skip

    lib, raw = row("nearest()", "nearest()"), row("hand-written SQL, pooled connection", "hand")
    lib["overhead_p50"] = round(lib["p50_ms"] / raw["p50_ms"] - 1, 3)
    lib["median_round_overhead"] = round(statistics.median(ratios) - 1, 3)
    # Per call, against the hand-written query on the same vector in the same
    # round: robust to this machine's bimodal latencies (calls take either
    # ~0.8 or ~1.7 ms, whatever the method), which can move a p50 by 10-30%.
    lib["paired_median_overhead"] = round(paired_median(wall, "nearest()", "hand") - 1, 3)
    return [raw, row("hand-written SQL, one held connection (reference)", "held"), lib]


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
        if precision == "halfvec":
            variants.append((precision, name, {"precision": precision}))
            continue
        for factor in sorted({4, DEFAULT_RERANK, 20, 40}):
            label = f"binary, re-rank {factor}x" + (
                " (default)" if factor == DEFAULT_RERANK else ""
            )
            variants.append((label, name, {"precision": precision, "rerank": factor}))
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
    # A per-collection partial index for this tenant of the shared table: the
    # recall of an HNSW graph over real embeddings, at each ef_search.
    name, secs = build(repo, vs.IndexSpec(per_collection=True))
    partial_rows = unfiltered_table(
        repo, matrix, ids, queries, [40, 100, 200], f"stdlib MiniLM ({len(stored)}), partial HNSW"
    )
    rows += partial_rows[1:]
    recalls = [partial_rows[-1]["recall"]]
    times = [partial_rows[-1]["p50_ms"]]
    explain = str(repo.explain(queries[0], k=K))
    partial = [
        {
            "index": f"partial {name}",
            "size_mb": round(index_size(engine, name) / 2**20, 2),
            "build_s": round(secs, 2),
            "recall (defaults)": recalls[0],
            "p50_ms (defaults)": times[0],
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


def fresh_engine(url: str | None, server_dir: str, database: str) -> Any:
    """An engine on ``database``, dropped, created and migrated anew, without its HNSW index.

    ``url``: an external server; None starts (or reuses) an embedded one in
    ``<tmp>/<server_dir>-<uid>``.  The HNSW index is dropped because
    pgvector's loading recipe is COPY first, index after.
    """
    if url:
        base = vs.normalize_url(url)
    else:
        base = vs.EmbeddedServer(
            Path(tempfile.gettempdir()) / f"{server_dir}-{os.getuid()}"
        ).start()
    admin = vs.make_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {database}")
    admin.dispose()
    target = base.set(database=database)
    vs.migrate(target)
    engine = vs.make_engine(target)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_vectorstore_documents_embedding_hnsw")
    return engine


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--real", type=int, default=2000, help="stdlib texts to embed (0: skip)")
    parser.add_argument("--overhead-rounds", type=int, default=6)
    parser.add_argument("--filtered-rounds", type=int, default=2)
    parser.add_argument(
        "--url", default=None, help="an external PostgreSQL (default: own embedded)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    engine = fresh_engine(args.url, "vs-bench-search", "bench_search")

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
        repo.nearest(q, k=K, strategy="exact")

    results["unfiltered"] = unfiltered_table(
        repo, data, ids, queries, [40, 64, 100, 200], f"synthetic ({args.rows})"
    )
    print("unfiltered done", flush=True)
    hand = HandSQL(engine, repo.collection.id)
    results["filtered"] = filtered_table(repo, hand, data, ids, groups, queries,
                                         args.filtered_rounds)  # fmt: skip
    results["overhead"] = overhead_table(repo, engine, hand, queries, args.overhead_rounds)
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
        markdown(
            f"Library overhead (unfiltered, k=10, ef_search={DEFAULT_EF_SEARCH})",
            results["overhead"],
        ),
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
