"""The tuning picture of the docs: recall@10 against p50 latency on real MiniLM embeddings.

The corpus is ``bench_recall_real.py``'s: docstrings of the installed Python
packages (read with ``ast``, cleaned as the demo's texts are, deduplicated,
sampled with a fixed seed), embedded with the bundled all-MiniLM-L6-v2, in one
collection with the default HNSW index (m=16, ef_construction=64).  Held-out
docstrings are the queries; ``measure_recall`` ranks each exactly (the truth)
and through the index at each ef_search value, and the report is drawn with
``RecallReport.plot``.

Usage::

    python benchmarks/bench_recall_plot.py                  # 10,000 texts, 200 queries
    python benchmarks/bench_recall_plot.py --texts 20000 --url postgresql://...

The embeddings are cached in ``--cache`` (a .npz; embedding runs at 50-70
texts a second on two idle CPU cores, far slower on a busy machine).
Results: ``benchmarks/results/recall_plot_tables.md`` and the picture
``docs/img/recall_docstrings.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_recall_real import package_docstrings  # noqa: E402
from bench_search import fresh_engine  # noqa: E402

import vectorstore as vs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PICTURE = ROOT / "docs" / "img" / "recall_docstrings.png"
EF_SEARCH = [10, 20, 40, 100, 200, 400]


def embeddings(texts: list[str], cache: Path) -> np.ndarray:
    if cache.exists():
        stored = np.load(cache)
        if stored["n"] == len(texts):
            print(f"embeddings from {cache}", flush=True)
            return np.asarray(stored["vectors"], dtype=np.float32)
    embedder = vs.SentenceTransformerEmbedder(device="cpu")
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    print(f"embedded {len(texts)} texts in {time.perf_counter() - started:.0f} s", flush=True)
    np.savez(cache, vectors=vectors, n=len(texts))
    return vectors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--url", default=None, help="an external PostgreSQL (default: embedded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "recall_plot.npz"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    corpus = package_docstrings(Path(sysconfig.get_paths()["purelib"]))
    wanted = min(len(corpus), args.texts + args.queries)
    rng = np.random.default_rng(args.seed)
    picked = [corpus[i] for i in rng.choice(len(corpus), size=wanted, replace=False)]
    vectors = embeddings(picked, Path(args.cache))
    queries, stored = vectors[: args.queries], vectors[args.queries :]
    texts = picked[args.queries :]

    engine = fresh_engine(args.url, "vs-bench-recall-plot", "bench_recall_plot")
    model = vs.DEFAULT_MODEL_NAME
    with vs.DocumentRepository.standalone(engine, collection="docstrings",
                                          embedding_model=model) as repo:  # fmt: skip
        repo.bulk_add(stored, texts=texts)
        started = time.perf_counter()
        index = repo.create_index(vs.IndexSpec(), maintenance_work_mem="512MB")
        build_s = time.perf_counter() - started
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE vectorstore_documents")
        for q in queries[:10]:  # warm the index pages
            repo.nearest(q, k=10)
        report = repo.measure_recall(list(queries), k=10, ef_search=EF_SEARCH)
    engine.dispose()
    heading = (f"{len(stored):,} package docstrings embedded with all-MiniLM-L6-v2, "
               f"{len(queries)} held-out queries; HNSW {index} (m=16, ef_construction=64, "
               f"built in {build_s:.0f} s)")  # fmt: skip
    table = f"{heading}\n\n{report.to_markdown()}\n"
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "recall_plot_tables.md").write_text(table)
    report.plot(PICTURE, title=f"recall@10 against latency: {len(stored):,} docstrings (MiniLM)")
    print(f"picture: {PICTURE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
