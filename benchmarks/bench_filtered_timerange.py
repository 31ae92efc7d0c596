"""Filtered search on time ranges that follow topic drift: a range filter is a correlated filter.

Issue #20 names three kinds of correlated filters: categories
(``bench_filtered_correlated.py``), tenants (``bench_tenants.py``) and time
ranges that follow topic drift, measured here.  What people wrote about
moves with time: a topic is written about for a while, then another.  So
the rows of a date range are not spread evenly through the vector space; a
range keeps a few topics, whole.

Data: the vectors and clusters of ``bench_filtered_correlated.build_set``
(100,000 synthetic 384-d vectors near a 24-d subspace, clusters of uneven
sizes under six topics).  Each cluster is written about in its own span of
a 1,000-day timeline (the clusters in random order, each span as long as its
share of the rows); 90 % of a cluster's rows fall in its span, the other
10 % on any day (stragglers).  The day is stored in ``metadata["day"]`` (an
integer) and in a btree-indexed typed column ``bench_day`` for the
hand-written strategies.

Filters: ``{"day": {"$gte": lo, "$lt": hi}}``, one range per share (0.1 %,
1 %, 5 %, 10 %, 30 %, 50 % of the rows), each starting at a random day.
Queries per range: half near a row inside the range, half near a row of a
cluster the range leaves out ("away").

Methods, interleaved (``bench_search.schedule``):

* ``nearest (defaults)``: the default model; a range on a metadata key
  has no index to use there (the GIN index serves containment only);
* ``nearest (indexed key)``: the same table mapped with
  ``indexed_metadata_keys = ("day",)`` (its btree created by the benchmark
  from the declaration);
* ``hand exact (btree)``: the exact ranking of the rows the typed column's
  btree selects;
* ``hand iterative (btree, ef 400, 40k)``: the HNSW index with
  ``hnsw.iterative_scan = relaxed_order`` filtered on the typed column.

With ``--created-at``, the same ranges on the ``created_at`` column (set
to day 0 = 2020-01-01 plus each row's day, the column an app's time range
filters): ``nearest (created_at)`` filters ``{"created_at": {"$gte": ...,
"$lt": ...}}`` with ISO strings.  The sample holds ``created_at``, so the
range gets the cost model; no btree leads with ``created_at`` unless
``--created-at-index`` creates one on ``(collection_id, created_at)`` (an
app's own migration would), and the run without it drops it: which one a
run measured is in its output file's name.

Reported per share: p50, p95, recall@10 against numpy, share short, the
strategies nearest chose, and nearest's p50 over the faster hand strategy
(and over the faster one that keeps recall 0.98).

Usage::

    python benchmarks/bench_filtered_timerange.py                   # 100,000 rows
    python benchmarks/bench_filtered_timerange.py --reuse --queries 64
    python benchmarks/bench_filtered_timerange.py --rows 20000 --queries 8   # quick
    python benchmarks/bench_filtered_timerange.py --reuse --created-at [--created-at-index]

Results: ``benchmarks/results/filtered_timerange.json`` and ``filtered_timerange_tables.md``
(``filtered_timerange_created_at[_btree]`` with ``--created-at``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_filtered_correlated import (  # noqa: E402
    Hand,
    build_set,
    existing_engine,
    iterative_settings,
    texts_for,
)
from bench_search import (  # noqa: E402
    fresh_engine,
    markdown,
    recall,
    schedule,
    summary,
    timed,
)

import vectorstore as vs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DIM = 384
K = 10
DAYS = 1_000
DATABASE = "bench_filtered_timerange"
SERVER = "vs-bench-timerange"
SHARES = (0.001, 0.01, 0.05, 0.10, 0.30, 0.50)
METHODS = ("nearest (defaults)", "nearest (indexed key)", "hand exact (btree)",
           "hand iterative (btree, ef 400, 40k)")  # fmt: skip
NEAREST = METHODS[:2]
HANDS = METHODS[2:]
HAND_WHERE = "AND bench_day >= %s AND bench_day < %s"


class _KeyedBase(DeclarativeBase):
    metadata = MetaData()


class DayDoc(vs.DocumentMixin, _KeyedBase):
    """The default table, mapped with ``day`` as an indexed metadata key."""

    __tablename__ = "vectorstore_documents"
    indexed_metadata_keys = ("day",)


def days_for(labels: np.ndarray[Any, Any], seed: int) -> np.ndarray[Any, Any]:
    """Each row's day: its cluster's span for 90 % of the rows, any day for the rest."""
    rng = np.random.default_rng(seed + 5)
    clusters = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=clusters)
    order = rng.permutation(clusters)
    ends = np.cumsum(sizes[order]) / len(labels) * DAYS
    start = np.empty(clusters)
    span = np.empty(clusters)
    start[order] = ends - sizes[order] / len(labels) * DAYS
    span[order] = sizes[order] / len(labels) * DAYS
    day = start[labels] + rng.random(len(labels)) * span[labels]
    stray = rng.random(len(labels)) < 0.10
    day[stray] = rng.random(int(stray.sum())) * DAYS
    return np.minimum(day.astype(int), DAYS - 1)


def ranges_for(days: np.ndarray[Any, Any], seed: int) -> list[tuple[float, int, int]]:
    """(share, lo, hi) per share: a range of consecutive days keeping about that share."""
    rng = np.random.default_rng(seed + 6)
    ordered = np.sort(days)
    counts = np.bincount(days, minlength=DAYS)
    out = []
    for share in SHARES:
        want = max(1, round(share * len(days)))
        lo = int(ordered[int(rng.random() * (len(days) - want))])
        hi, kept = lo, 0
        while hi < DAYS and kept < want:
            kept += int(counts[hi])
            hi += 1
        out.append((share, lo, hi))
    return out


def load(engine: Any, data: np.ndarray[Any, Any], days: np.ndarray[Any, Any], seed: int) -> Any:
    repo: Any = vs.DocumentRepository.standalone(
        engine, collection="timerange", embedding_model="synthetic"
    )
    started = time.perf_counter()
    repo.bulk_add(texts_for(len(days), seed), embeddings=data,
                  metadata=[{"day": int(d), "i": i} for i, d in enumerate(days)],
                  external_ids=[str(i) for i in range(len(days))])  # fmt: skip
    print(f"loaded {len(days)} rows in {time.perf_counter() - started:.1f} s", flush=True)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE vectorstore_documents ADD COLUMN bench_day integer")
        conn.exec_driver_sql(
            "UPDATE vectorstore_documents SET bench_day = (metadata ->> 'day')::integer"
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (FULL, ANALYZE) vectorstore_documents")
        conn.exec_driver_sql("CREATE INDEX bench_day_btree ON vectorstore_documents (bench_day)")
    repo.create_index(vs.IndexSpec(m=16, ef_construction=64), maintenance_work_mem="1GB")
    return repo


def create_key_index(engine: Any) -> None:
    index = next(i for i in DayDoc.__table__.indexes if i.name.endswith("_metadata_day"))
    with engine.begin() as conn:
        index.create(conn, checkfirst=True)
        conn.exec_driver_sql("ANALYZE vectorstore_documents")


DAY_0 = datetime(2020, 1, 1, tzinfo=UTC)
CREATED = "nearest (created_at)"


def set_created_at(engine: Any, index: bool) -> None:
    """created_at = day 0 + the row's day (once), and the app's btree on it, or none."""
    with engine.begin() as conn:
        wrong = conn.exec_driver_sql(
            "SELECT count(*) FROM vectorstore_documents WHERE created_at IS DISTINCT FROM "
            "timestamptz '2020-01-01 00:00+00' + bench_day * interval '1 day'"
        ).scalar_one()
        if wrong:
            conn.exec_driver_sql(
                "UPDATE vectorstore_documents SET created_at = "
                "timestamptz '2020-01-01 00:00+00' + bench_day * interval '1 day'"
            )
        conn.exec_driver_sql("DROP INDEX IF EXISTS bench_created_btree")
        if index:
            conn.exec_driver_sql(
                "CREATE INDEX bench_created_btree ON vectorstore_documents "
                "(collection_id, created_at)"
            )
    if wrong:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (FULL, ANALYZE) vectorstore_documents")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE vectorstore_documents")
    print(f"created_at set ({wrong} rows updated), btree on it: {index}", flush=True)


def call(repos: dict[str, Any], hand: Hand, name: str, q: Any, lo: int, hi: int) -> Any:
    if name == CREATED:
        bounds = {"$gte": (DAY_0 + timedelta(days=lo)).isoformat(),
                  "$lt": (DAY_0 + timedelta(days=hi)).isoformat()}  # fmt: skip
        return repos[name].nearest(q, k=K, filter={"created_at": bounds})
    if name in NEAREST:
        return repos[name].nearest(q, k=K, filter={"day": {"$gte": lo, "$lt": hi}})
    if name == "hand exact (btree)":
        return hand.exact(q, HAND_WHERE, (lo, hi))
    return hand.query(q, where=HAND_WHERE, params=(lo, hi),
                      settings=iterative_settings(400, 40_000))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=64, help="per range (half inside)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="reuse a loaded set of this size")
    parser.add_argument("--url", default=None, help="an external PostgreSQL")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--created-at", action="store_true",
                        help="also filter the created_at column (set from the day)")
    parser.add_argument("--created-at-index", action="store_true",
                        help="with --created-at: a btree on (collection_id, created_at)")
    args = parser.parse_args()
    methods = list(METHODS)
    nearest = list(NEAREST)
    out_name = "filtered_timerange"
    if args.created_at:
        methods.insert(2, CREATED)
        nearest.append(CREATED)
        out_name += "_created_at" + ("_btree" if args.created_at_index else "")

    data, _, labels = build_set(args.rows, args.seed)
    days = days_for(labels, args.seed)
    engine = existing_engine(args.url, args.rows, SERVER, DATABASE) if args.reuse else None
    if engine is None:
        engine = fresh_engine(args.url, SERVER, DATABASE)
        repo = load(engine, data, days, args.seed)
    else:
        repo = vs.DocumentRepository.standalone(engine, collection="timerange")
    create_key_index(engine)
    if args.created_at:
        set_created_at(engine, args.created_at_index)
    repos = {"nearest (defaults)": repo,
             "nearest (indexed key)": vs.DocumentRepository.standalone(
                 engine, collection="timerange", model=DayDoc),
             CREATED: repo}  # fmt: skip
    hand = Hand(engine, repo.collection.id)
    for q in data[:5]:  # warm the caches (sample, costs, statements)
        for r in repos.values():
            r.nearest(q, k=K, filter={"day": {"$gte": 100, "$lt": 200}})
            if args.created_at:
                r.nearest(q, k=K, filter={"created_at": {"$gte": "2020-03-01"}})

    rng = np.random.default_rng(args.seed + 3)
    rows: list[dict[str, Any]] = []
    for _share, lo, hi in ranges_for(days, args.seed):
        mask = (days >= lo) & (days < hi)
        in_range = np.bincount(labels[mask], minlength=int(labels.max()) + 1)
        left_out = in_range / np.bincount(labels) < 0.05
        qs = []
        for kind, pool in (("inside", np.flatnonzero(mask)),
                           ("away", np.flatnonzero(~mask & left_out[labels]))):  # fmt: skip
            for i in rng.choice(pool, args.queries // 2, replace=len(pool) < args.queries // 2):
                q = data[i] + 0.4 * rng.standard_normal(DIM).astype(np.float32) / np.sqrt(DIM)
                qs.append((kind, (q / np.linalg.norm(q)).astype(np.float32)))
        truths = []
        for _, q in qs:
            d = np.where(mask, 1 - data @ q, np.inf)
            top = np.argpartition(d, K)[:K]
            truths.append([int(i) for i in top[np.argsort(d[top])]])
        times: dict[str, dict[tuple[int, int], float]] = {m: {} for m in methods}
        got: dict[str, dict[int, list[int]]] = {m: {} for m in methods}
        chosen: dict[str, dict[int, str]] = {m: {} for m in nearest}
        for round_no, qi, name in schedule(len(qs), methods, args.rounds, seed=777):
            ms, out = timed(lambda n=name, v=qs[qi][1], a=lo, b=hi: call(repos, hand, n, v, a, b))
            times[name][(round_no, qi)] = ms
            if name in nearest:
                chosen[name][qi] = out.strategy + (
                    f"<-{out.fallback_from}" if out.fallback_from else "")  # fmt: skip
                out = [int(h.document.external_id) for h in out]
            got[name][qi] = out
        label = f"{100 * mask.mean():.2f}% (days {lo}-{hi - 1})"
        for kind in ("all", "inside", "away"):
            picked = [i for i in range(len(qs)) if kind in ("all", qs[i][0])]
            p50 = {m: statistics.median(v for (r, i), v in times[m].items() if i in picked)
                   for m in methods}  # fmt: skip
            rec = {m: statistics.fmean(recall(got[m][i], truths[i]) for i in picked)
                   for m in methods}  # fmt: skip
            for m in methods:
                row: dict[str, Any] = {
                    "range keeps": label, "queries": kind, "method": m,
                    **summary([v for (r, i), v in times[m].items() if i in picked]),
                    "recall": round(rec[m], 4),
                    "short": f"{100 * statistics.fmean(len(got[m][i]) < K for i in picked):.0f}%",
                }  # fmt: skip
                if m in nearest:
                    used: dict[str, int] = {}
                    for i in picked:
                        used[chosen[m][i]] = used.get(chosen[m][i], 0) + 1
                    row["strategies"] = used
                    best = min(HANDS, key=lambda h: p50[h])
                    row["vs_best_hand_p50"] = round(p50[m] / p50[best], 3)
                    row["best_hand"] = best
                    safe = [h for h in HANDS if rec[h] >= 0.98]
                    if safe:
                        sbest = min(safe, key=lambda h: p50[h])
                        row["vs_best_hand_with_recall_0.98"] = round(p50[m] / p50[sbest], 3)
                rows.append(row)
        for m in nearest:
            mine = next(r for r in rows if r["range keeps"] == label and r["method"] == m)
            print(f"  {label}: {m} p50 {mine['p50_ms']} ms recall {mine['recall']} "
                  f"vs best hand {mine['vs_best_hand_p50']}x {mine['strategies']}",
                  flush=True)  # fmt: skip
    engine.dispose()
    head = (f"rows={args.rows} queries={args.queries} per range (half inside, half away) "
            f"rounds={args.rounds} k={K}\n")  # fmt: skip
    out_text = "\n".join([
        head,
        markdown("Time-range filters: all queries", [r for r in rows if r["queries"] == "all"]),
        markdown("Inside vs away", [r for r in rows if r["queries"] != "all"]),
    ])  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{out_name}.json").write_text(json.dumps(
        {"rows": args.rows, "queries_per_range": args.queries, "rounds": args.rounds, "k": K,
         "table": rows}, indent=2, default=str))  # fmt: skip
    (RESULTS / f"{out_name}_tables.md").write_text(out_text)
    print(out_text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
