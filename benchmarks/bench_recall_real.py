"""Recall of the HNSW index on real MiniLM embeddings at a scale that tests it.

The stdlib corpus of ``bench_search.py`` has 2,087 texts: every ef_search finds
all neighbours there.  This script embeds tens of thousands of real texts with
the bundled all-MiniLM-L6-v2 -- the docstrings of the installed Python
packages, read from source with ``ast`` (nothing is imported), cleaned and cut
as the demo's corpus is, deduplicated, sampled with a fixed seed -- loads
them into one collection, builds the default HNSW index (m=16,
ef_construction=64) and measures recall@10 of ``nearest`` against an exact
numpy ranking, for held-out query texts, at several ef_search values and at
nearest's defaults.

Usage::

    python benchmarks/bench_recall_real.py                  # 20,000 texts, 200 queries
    python benchmarks/bench_recall_real.py --texts 5000     # quicker
    python benchmarks/bench_recall_real.py --url postgresql://...

Results: ``benchmarks/results/recall_real.json`` and ``recall_real_tables.md``.
Embedding runs at roughly 60-70 texts a second on two CPU cores.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_search import fresh_engine  # noqa: E402

import vectorstore as vs  # noqa: E402
from vectorstore._stdlib_corpus import _clip  # noqa: E402
from vectorstore.query.diagnostics import percentile  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
K = 10
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def package_docstrings(root: Path) -> list[str]:
    """Unique cleaned docstrings of every ``.py`` file under ``root``, in path order."""
    seen: set[str] = set()
    out = []
    for path in sorted(root.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, _DOCUMENTED):
                text = _clip(ast.get_docstring(node, clean=False))
                if text and text not in seen:
                    seen.add(text)
                    out.append(text)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--url", default=None, help="an external PostgreSQL (default: embedded)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    corpus = package_docstrings(Path(sysconfig.get_paths()["purelib"]))
    wanted = args.texts + args.queries
    if len(corpus) < wanted:
        print(f"only {len(corpus)} docstrings found; using all of them", flush=True)
        wanted = len(corpus)
    rng = np.random.default_rng(args.seed)
    picked = [corpus[i] for i in rng.choice(len(corpus), size=wanted, replace=False)]
    query_texts, stored = picked[: args.queries], picked[args.queries :]
    print(f"{len(corpus)} unique docstrings; {len(stored)} stored, {len(query_texts)} queries",
          flush=True)  # fmt: skip

    embedder = vs.SentenceTransformerEmbedder()
    started = time.perf_counter()
    matrix = embedder.embed(stored)
    queries = embedder.embed(query_texts)
    embed_s = time.perf_counter() - started
    print(f"embedded {wanted} texts in {embed_s:.0f} s on {embedder.device}", flush=True)

    engine = fresh_engine(args.url, "vs-bench-recall", "bench_recall_real")
    repo: Any = vs.DocumentRepository.standalone(engine, collection="docstrings",
                                                 embedder=embedder)  # fmt: skip
    repo.bulk_add(stored, embeddings=matrix, external_ids=[str(i) for i in range(len(stored))])
    started = time.perf_counter()
    repo.create_index(vs.IndexSpec(), maintenance_work_mem="1GB")
    build_s = time.perf_counter() - started
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE vectorstore_documents")

    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    truth = []
    for q in queries:
        order = np.argsort(1 - unit @ (q / np.linalg.norm(q)))[:K]
        truth.append({str(int(i)) for i in order})
    for q in queries[:10]:  # warm the index pages
        repo.nearest(q, k=K)

    rows = []
    for ef in (40, 64, 100, 200, 400, None):
        recalls, times, used = [], [], set()
        for q, t in zip(queries, truth, strict=True):
            kwargs = {"ef_search": ef} if ef else {}
            started = time.perf_counter()
            hits = repo.nearest(q, k=K, **kwargs)
            times.append((time.perf_counter() - started) * 1000)
            recalls.append(len({h.document.external_id for h in hits} & t) / K)
            used.add(hits.strategy)
        rows.append({
            "setting": f"ef_search={ef}" if ef else "nearest() defaults",
            "recall@10": round(statistics.fmean(recalls), 4),
            "min recall": round(min(recalls), 2),
            "p50_ms": round(percentile(times, 0.5), 3),
            "p95_ms": round(percentile(times, 0.95), 3),
            "strategy": ",".join(sorted(used)),
        })  # fmt: skip
    engine.dispose()

    header = (f"{len(stored)} real docstring embeddings (all-MiniLM-L6-v2, 384-d), "
              f"{len(queries)} held-out queries, k={K}; HNSW m=16, ef_construction=64, "
              f"built in {build_s:.1f} s; embedding took {embed_s:.0f} s")  # fmt: skip
    cols = list(rows[0])
    table = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    table += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    text = header + "\n\n" + "\n".join(table) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "recall_real.json").write_text(json.dumps(
        {"stored": len(stored), "queries": len(queries), "build_s": round(build_s, 1),
         "embed_s": round(embed_s, 1), "rows": rows}, indent=2))  # fmt: skip
    (RESULTS / "recall_real_tables.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
