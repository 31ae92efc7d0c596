"""Re-run tenant-scoped queries on the database ``bench_tenants.py`` loaded (no reload).

For 5 tenants (the 3 largest, one middle, one smallest): 20 queries near the
tenant's own rows, 2 rounds, the three layouts in random order per query;
p50, recall@10 against the exact ranking, paired-median ratios.  Used to
measure a change to the query path without the 25-minute load.

Results: printed (a markdown table); the docs keep it in
``benchmarks/results/tenants_recheck.md``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_tenants import DATABASE, TenantDoc, dedicated_model

import vectorstore as vs

TENANTS = ((0, "tenant-0000"), (1, "tenant-0001"), (2, "tenant-0002"), (100, "tenant-0100"),
           (999, "tenant-0999"))  # fmt: skip
HEADER = ["tenant", "rows", "partitioned p50 ms", "dedicated p50 ms", "shared+partial p50 ms",
          "partitioned recall", "dedicated recall", "shared+partial recall",
          "partitioned / dedicated", "partitioned / shared+partial"]  # fmt: skip


def ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over the same queries of a's time over b's."""
    pairs = zip(times[a], times[b], strict=True)
    return round(statistics.median(x / y for x, y in pairs), 2)


def main() -> int:
    folder = Path(tempfile.gettempdir()) / f"vectorstore-bench-tenants-{os.getuid()}"
    engine = vs.make_engine(vs.EmbeddedServer(folder).start().set(database=DATABASE))
    rng = np.random.default_rng(5)
    out: list[list[Any]] = []
    for i, name in TENANTS:
        repos: dict[str, Any] = {
            "partitioned": vs.DocumentRepository.standalone(engine, collection=name,
                                                            model=TenantDoc),
            "dedicated": vs.DocumentRepository.standalone(engine, collection=name,
                                                          model=dedicated_model(i)),
            "shared+partial": vs.DocumentRepository.standalone(engine, collection=f"p-{name}"),
        }  # fmt: skip
        seed = rng.standard_normal(384).astype("float32")
        near = repos["dedicated"].nearest(seed, k=20, with_embedding=True)
        noise = 0.3 * rng.standard_normal((len(near), 384)).astype("float32")
        queries = [np.asarray(h.document.embedding) + noise[j] for j, h in enumerate(near)]
        times: dict[str, list[float]] = {m: [] for m in repos}
        recalls: dict[str, list[float]] = {m: [] for m in repos}
        for repo in repos.values():
            repo.nearest(queries[0], k=10)
        for _round in range(2):
            for q in queries:
                exact = repos["dedicated"].nearest(q, k=10, strategy="exact")
                truth = {h.document.external_id for h in exact}
                for method in rng.permutation(list(repos)):
                    started = time.perf_counter()
                    hits = repos[method].nearest(q, k=10)
                    times[method].append((time.perf_counter() - started) * 1000)
                    got = {h.document.external_id for h in hits}
                    recalls[method].append(len(got & truth) / 10)

        out.append([
            name, repos["partitioned"].count(),
            *(round(statistics.median(times[m]), 1) for m in repos),
            *(round(statistics.mean(recalls[m]), 3) for m in repos),
            ratio(times, "partitioned", "dedicated"),
            ratio(times, "partitioned", "shared+partial"),
        ])  # fmt: skip
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for row in out:
        print("| " + " | ".join(map(str, row)) + " |")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
