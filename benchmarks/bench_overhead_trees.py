"""nearest()'s unfiltered overhead for two source trees, alternately, on one loaded database.

The raw fast path must not get slower when the planner changes: this runs
``bench_search.overhead_table`` (nearest against the same query by hand,
interleaved, client CPU time per call) in one subprocess per tree, trees
alternating, on the set ``bench_filtered_correlated.py`` loaded (run that
first).  Client CPU time is the robust figure on a shared machine.

Usage::

    python benchmarks/bench_overhead_trees.py /work/main .   # main, this tree, main, this tree
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

_ONE = r"""
import json, sys
tree = sys.argv[1]
sys.path[:0] = [tree, tree + "/benchmarks"]
from pathlib import Path
import numpy as np
import vectorstore as vs
assert vs.__file__.startswith(tree), vs.__file__
import bench_search as b
base = vs.EmbeddedServer(Path(sys.argv[2])).start()
engine = vs.make_engine(base.set(database="bench_filtered_correlated"))
repo = vs.DocumentRepository.standalone(engine, collection="correlated")
with engine.connect() as c:
    rows = c.exec_driver_sql("SELECT embedding::text FROM vectorstore_documents "
                             "ORDER BY id LIMIT 60 OFFSET 5000").scalars().all()
queries = np.array([[float(x) for x in r[1:-1].split(",")] for r in rows], dtype=np.float32)
for q in queries[:5]:
    repo.nearest(q, k=10)
hand = b.HandSQL(engine, repo.collection.id)
out = b.overhead_table(repo, engine, hand, queries, 4)
print(json.dumps({"tree": tree, "nearest p50 ms": out[-1]["p50_ms"],
                  "hand p50 ms": out[0]["p50_ms"],
                  "nearest client CPU ms": out[-1]["client_cpu_ms_mean"],
                  "hand client CPU ms": out[0]["client_cpu_ms_mean"],
                  "paired median overhead": out[-1]["paired_median_overhead"]}))
engine.dispose()
"""


def main() -> int:
    trees = [str(Path(t).resolve()) for t in sys.argv[1:3]] or [str(ROOT)]
    server = Path(tempfile.gettempdir()) / f"vs-bench-correlated-{os.getuid()}"
    rows = []
    for _ in range(2):
        for tree in trees:
            done = subprocess.run([sys.executable, "-c", _ONE, tree, str(server)],
                                  capture_output=True, text=True, check=True)  # fmt: skip
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "overhead_trees_tables.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
