"""Benchmark: ``$in`` over a metadata key, one parameter against one containment per value.

Side by side in one run, on one server and one table (``--rows`` documents,
384-d random vectors, metadata ``{"n": i, "t": str(i % 97)}``):

* **new**: the filter language's own compile (``compile_filter``):
  ``metadata @> ANY(:docs)`` up to ``INDEXED_IN_MAX`` values (the GIN index
  serves it), a hashed ``metadata -> 'n' IN (SELECT jsonb_array_elements(:values))``
  above;
* **old**: the form it replaced, one containment per value ORed
  (``or_(*[Document.metadata_.contains({"n": v}) for v in values])``), passed
  to ``nearest`` as a SQLAlchemy expression.

For each list length: the time to build the filter alone, and the time of a
whole ``nearest(k=10)`` call (building the filter, planning, compiling,
executing) on a standalone repository, whose raw path serves it after a first
warming call; then the strategy and indexes EXPLAIN ANALYZE reports.  The
``$in`` values are spread over the table (each matches one row).  The table
is vacuumed after the load: right after a bulk load the GIN index's pending
list (~490 pages here) made every index search scan it (39 ms instead of
0.2 ms for 10 values, either form).  Both drivers run: psycopg 3 prepares a
statement run five times, and PostgreSQL may then plan it generically.

Usage (the default run takes ~14 minutes, nearly all of it the old form at
16,000 values, ~100 s a call; ``--old-max 1000`` runs in under a minute)::

    python benchmarks/bench_filter_in.py                      # 100,000 rows
    python benchmarks/bench_filter_in.py --old-max 1000       # quick
    python benchmarks/bench_filter_in.py --sizes 10,1000 --rows 20000
    python benchmarks/bench_filter_in.py --drivers psycopg    # psycopg 3 only

Results: ``benchmarks/results/filter_in_tables.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import or_, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vectorstore as vs  # noqa: E402
from benchmarks.bench_search import fresh_engine, markdown  # noqa: E402
from vectorstore.query.filters import INDEXED_IN_MAX, compile_filter  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DIM = 384
K = 10
#: A measurement slower than this is repeated only once more.
SLOW_S = 2.0


def old_filter(values: list[Any]) -> Any:
    """The replaced compile of ``{"n": {"$in": values}}``: one containment per value."""
    return or_(*[vs.Document.metadata_.contains({"n": v}) for v in values])


def median_ms(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time of ``fn`` in ms over ``repeat`` runs (1 more when slow), last result."""
    times = []
    out = None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
        if times[-1] > SLOW_S and len(times) >= 2:
            break
    return round(statistics.median(times) * 1000, 2), out


def load(repo: Any, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((rows, DIM)).astype(np.float32)
    repo.bulk_add(
        [f"doc {i}" for i in range(rows)], embeddings=vectors,
        metadata=[{"n": i, "t": str(i % 97)} for i in range(rows)],
        external_ids=[str(i) for i in range(rows)],
    )  # fmt: skip


def form_sql(size: int, form: str) -> str:
    if form == "old":
        return f"{size} x `metadata @> :doc` ORed"
    if size <= INDEXED_IN_MAX:
        return "`metadata @> ANY(:docs)`"
    return "`(metadata -> 'n' IN (SELECT jsonb_array_elements(:values))) IS TRUE`"


def measure(repo: Any, query: Any, size: int, form: str, rows: int, repeat: int) -> dict[str, Any]:
    step = max(1, rows // size)
    values = [(i * step) % rows for i in range(size)]
    spec = {"n": {"$in": values}}
    if form == "new":
        build: Callable[[], Any] = lambda: compile_filter(spec, vs.Document)  # noqa: E731
        filter_of: Callable[[], Any] = lambda: spec  # noqa: E731
    else:
        build = lambda: old_filter(values)  # noqa: E731
        filter_of = build
    build_ms, _ = median_ms(build, repeat)

    def call() -> Any:
        return repo.nearest(query, k=K, filter=filter_of())

    started = time.perf_counter()
    first = call()  # takes the sample and compiles the statement
    first_ms = round((time.perf_counter() - started) * 1000, 1)
    nearest_ms, hits = median_ms(call, repeat)
    report = repo.explain(query, k=K, filter=filter_of())
    print(f"{size:>7} values {form}: build {build_ms} ms, nearest {nearest_ms} ms", flush=True)
    return {
        "values": f"{size:,}",
        "form": form,
        "SQL": form_sql(size, form),
        "build filter ms": build_ms,
        "first nearest ms": first_ms,
        "nearest ms (p50)": nearest_ms,
        "strategy": report.strategy,
        "indexes": ", ".join(report.index_names) or "-",
        "execution ms (EXPLAIN)": round(report.execution_ms, 2),
        "ids": [h.document.external_id for h in hits] or [h.document.external_id for h in first],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sizes", default="10,1000,16000,100000",
                        help="$in lengths, comma separated")  # fmt: skip
    parser.add_argument(
        "--old-max", type=int, default=16_000,
        help="the old form is measured up to this many values (it grows quadratically)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--drivers", default="psycopg2,psycopg", help="comma separated")
    parser.add_argument(
        "--url", default=None, help="an external PostgreSQL (default: own embedded)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    engine = fresh_engine(args.url, "vs-bench-filter-in", "bench_filter_in")
    started = time.perf_counter()
    load(vs.DocumentRepository.standalone(engine, collection="bench", embedding_model="x"),
         args.rows, args.seed)  # fmt: skip
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE vectorstore_documents"))
    print(f"loaded {args.rows} rows in {time.perf_counter() - started:.1f} s", flush=True)
    query = np.random.default_rng(args.seed + 1).standard_normal(DIM).astype(np.float32)
    tables = []
    for driver in args.drivers.split(","):
        driven = vs.make_engine(engine.url.set(drivername=f"postgresql+{driver}"))
        repo = vs.DocumentRepository.standalone(driven, collection="bench", embedding_model="x")
        rows = run_sizes(repo, query, sizes, args)
        driven.dispose()
        tables.append(markdown(
            f"$in over a metadata key: {args.rows:,} rows, k={K}, {driver}, "
            "standalone repository (raw path after a warming call)", rows,
        ))  # fmt: skip
    engine.dispose()
    text_out = "\n".join(tables)
    print(text_out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "filter_in_tables.md").write_text(text_out)
    return 0


def run_sizes(repo: Any, query: Any, sizes: list[int], args: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for size in sizes:
        measured = [measure(repo, query, size, "new", args.rows, args.repeat)]
        if size <= args.old_max:
            measured.append(measure(repo, query, size, "old", args.rows, args.repeat))
        else:
            rows_note = {"values": f"{size:,}", "form": "old", "SQL": form_sql(size, "old"),
                         "build filter ms": "not run (quadratic: see --old-max)"}  # fmt: skip
            measured.append(rows_note)
        if len(measured) == 2 and "ids" in measured[1]:
            assert measured[0]["ids"] == measured[1]["ids"], "the two forms disagree"
        for row in measured:
            row.pop("ids", None)
        rows.extend(measured)
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
