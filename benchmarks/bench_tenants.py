"""Many tenants: partitions per tenant against a shared table and against dedicated tables.

1,000 tenants of uneven sizes (a few large, many small: sizes fall off as a
power law, at least 10 rows each) share ``--rows`` rows (100,000 by default;
``--rows 1000000`` for the million-row run).  The same tenant-scoped nearest
queries run, interleaved (``bench_search.schedule``), against:

* ``partitioned``: a ``partition_by_collection = True`` table, one partition
  per tenant with its own HNSW index (``vectorstore.schema.partitions``);
  every tenant loaded by ``bulk_add`` through the partitioned parent;
* ``dedicated``: the same tenant alone in a table of its own (the target:
  partitioned p50 <= 1.2x dedicated);
* ``shared``: one shared table with the table-wide HNSW index only
  (``nearest`` at its defaults: the planner picks exact or iterative scans);
* ``shared+partial``: today's layout, the same shared table once a
  per-collection partial HNSW index has been built for each measured
  tenant (``IndexSpec(per_collection=True)``).

The queries run in two phases on the same loaded tables: first
``partitioned``, ``dedicated`` and ``shared`` interleaved, then, after the
partial indexes are built, ``partitioned``, ``dedicated`` and
``shared+partial`` interleaved (a partial index would serve the ``shared``
queries too, so the two shared layouts cannot run side by side on one
table).  The partitioned and dedicated figures are phase one's; the
partitioned / shared+partial ratio is paired within phase two.

Measured tenants: the 3 largest, 3 of middle size and 3 of the smallest.
Queries: near one of the tenant's own rows (a row plus noise), ground truth
by numpy over the tenant's rows.  Also timed: creating a tenant (collection
+ partition + its four indexes), detaching it and attaching it again, with
the 1,000 partitions in place.

Data: synthetic 384-d unit vectors near a 24-d subspace, each tenant its own
cluster mix around a topic (no cached set of real embeddings exists here and
embedding 100,000 texts with the CPU model takes too long); texts are the
varied-length prose-like strings of ``bench_filtered_correlated.py``.

Usage::

    python benchmarks/bench_tenants.py                  # 100,000 rows, 1,000 tenants
    python benchmarks/bench_tenants.py --rows 1000000   # the million-row run
    python benchmarks/bench_tenants.py --rows 20000 --tenants 200 --queries 10  # quick

Results: ``benchmarks/results/tenants.json`` and ``tenants_tables.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_filtered_correlated import texts_for  # noqa: E402
from bench_scale import build_memory  # noqa: E402
from bench_search import (  # noqa: E402
    fresh_engine,
    markdown,
    paired_median,
    recall,
    schedule,
    summary,
    timed,
)

import vectorstore as vs  # noqa: E402
from vectorstore.models import NAMING_CONVENTION  # noqa: E402
from vectorstore.schema import tenants  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DIM = 384
K = 10
INTRINSIC = 24
DATABASE = "bench_tenants"
METHODS = ["partitioned", "dedicated", "shared+partial", "shared"]
PHASES = (["partitioned", "dedicated", "shared"], ["partitioned", "dedicated", "shared+partial"])


class BenchBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TenantDoc(vs.DocumentMixin, BenchBase):
    __tablename__ = "bench_tenant_docs"
    partition_by_collection = True


def dedicated_model(i: int) -> Any:
    """A document table of its own for one tenant (the 'one table per tenant' layout)."""
    return type(f"Dedicated{i}", (vs.DocumentMixin, BenchBase), {"__tablename__": f"bench_ded_{i}"})


def tenant_sizes(rows: int, tenants: int, floor: int = 10) -> list[int]:
    """Power-law sizes: a few large tenants, many small ones; sum == rows."""
    weights = 1.0 / np.arange(1, tenants + 1) ** 1.1
    spare = rows - floor * tenants
    sizes = (floor + np.floor(spare * weights / weights.sum())).astype(int)
    sizes[0] += rows - int(sizes.sum())
    return [int(s) for s in sizes]


def tenant_vectors(n: int, rng: np.random.Generator, basis: np.ndarray[Any, Any]) -> Any:
    """A tenant's rows: a few clusters around the tenant's own topic, near a 24-d subspace."""
    topic = 1.2 * rng.standard_normal(INTRINSIC)
    clusters = max(1, min(20, n // 500))
    centres = topic + 0.8 * rng.standard_normal((clusters, INTRINSIC))
    latent = centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, INTRINSIC))
    data = (latent @ basis).astype(np.float32)
    data += 0.05 * rng.standard_normal((n, DIM)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    return data.astype(np.float32)


def records(name: str, data: Any, texts: list[str]) -> list[vs.Record]:
    return [
        vs.Record(texts[i], {"tenant": name, "n": i % 7}, f"{name}-{i}", data[i])
        for i in range(len(data))
    ]


def measured_tenants(sizes: list[int]) -> list[int]:
    n = len(sizes)
    mid = n // 10
    return [0, 1, 2, mid, mid + 1, mid + 2, n - 3, n - 2, n - 1]


@dataclass
class Phase:
    """One interleaved run of some methods over every measured tenant's queries."""

    times: dict[int, dict[str, dict[tuple[int, int], float]]]
    recalls: dict[int, dict[str, list[float]]]
    short: dict[int, dict[str, int]]
    strategies: dict[int, dict[str, set[str]]]


def measure(
    methods: list[str],
    repos: dict[str, dict[int, Any]],
    measured: list[int],
    queries: dict[int, list[Any]],
    truth: dict[int, list[list[int]]],
    args: argparse.Namespace,
) -> Phase:
    for method in methods:  # warm every path once
        for i in measured:
            repos[method][i].nearest(queries[i][0], k=K)
    out = Phase(
        times={i: {m: {} for m in methods} for i in measured},
        recalls={i: {m: [] for m in methods} for i in measured},
        short={i: dict.fromkeys(methods, 0) for i in measured},
        strategies={i: {m: set() for m in methods} for i in measured},
    )
    order = schedule(args.queries, methods, args.rounds, args.seed)
    for i in measured:
        for round_no, qi, method in order:
            ms, hits = timed(lambda r=repos[method][i], q=queries[i][qi]: r.nearest(q, k=K))
            out.times[i][method][(round_no, qi)] = ms
            if round_no == 0:
                rows = [int(h.document.external_id.rsplit("-", 1)[1]) for h in hits]
                out.recalls[i][method].append(recall(rows, [int(x) for x in truth[i][qi]]))
                out.short[i][method] += len(hits) < K
                out.strategies[i][method].add(hits.strategy)
    return out


def load_shared(engine: Any, names: list[str], data: list[Any], texts: list[str],
                measured: list[int], timings: dict[str, float]) -> dict[int, Any]:  # fmt: skip
    """Every tenant into the shared table (COPY, no HNSW), then one table-wide build.

    Returns the measured tenants' repositories; the two steps' seconds go
    into ``timings``.
    """
    started = time.perf_counter()
    shared = {}
    for i, name in enumerate(names):
        repo = vs.DocumentRepository.standalone(engine, collection=f"s-{name}",
                                                embedding_model="synthetic")  # fmt: skip
        repo.bulk_add(records(name, data[i], texts), rebuild_index=False)
        if i in measured:
            shared[i] = repo
    timings["load shared, COPY (s)"] = time.perf_counter() - started
    print(f"shared: loaded in {timings['load shared, COPY (s)']:.0f} s", flush=True)
    started = time.perf_counter()
    # A fixed 1GB spilled the million-row build to disk (IndexMemoryWarning): sized by rows.
    rows = sum(len(d) for d in data)
    shared[measured[0]].create_index(
        vs.IndexSpec(), maintenance_work_mem=build_memory(rows, floor_mb=1024)
    )
    timings["shared, table-wide HNSW build (s)"] = time.perf_counter() - started
    print(f"shared: HNSW built in {timings['shared, table-wide HNSW build (s)']:.0f} s", flush=True)
    return shared


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=30, help="queries per measured tenant")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--url", default=None, help="an external server (default: embedded)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sizes = tenant_sizes(args.rows, args.tenants)
    names = [f"tenant-{i:04d}" for i in range(args.tenants)]
    rng = np.random.default_rng(args.seed)
    basis = rng.standard_normal((INTRINSIC, DIM)).astype(np.float32) / np.sqrt(INTRINSIC)
    texts = texts_for(max(sizes), args.seed)
    data = [tenant_vectors(n, rng, basis) for n in sizes]
    measured = measured_tenants(sizes)
    print(f"{args.rows:,} rows in {args.tenants:,} tenants: largest {sizes[0]:,}, "
          f"median {int(np.median(sizes))}, smallest {sizes[-1]}", flush=True)  # fmt: skip

    engine = fresh_engine(args.url, "vectorstore-bench-tenants", DATABASE)
    BenchBase.metadata.create_all(engine, tables=[TenantDoc.__table__])
    timings: dict[str, float] = {}

    # -- partitioned: every tenant through bulk_add (its first write creates its partition)
    started = time.perf_counter()
    part = {}
    for i, name in enumerate(names):
        repo: Any = vs.DocumentRepository.standalone(
            engine, collection=name, model=TenantDoc, embedding_model="synthetic"
        )
        repo.bulk_add(records(name, data[i], texts))
        if i in measured:
            part[i] = repo
    timings["load partitioned (s)"] = time.perf_counter() - started
    print(f"partitioned: loaded in {timings['load partitioned (s)']:.0f} s", flush=True)

    # -- shared: COPY without the HNSW index, then one table-wide build (the
    # partial indexes come after the first query phase: see the module docstring)
    shared = load_shared(engine, names, data, texts, measured, timings)

    # -- dedicated: each measured tenant alone in its own table
    dedicated = {}
    for i in measured:
        model = dedicated_model(i)
        BenchBase.metadata.create_all(engine, tables=[model.__table__])
        repo = vs.DocumentRepository.standalone(engine, collection=names[i], model=model,
                                                embedding_model="synthetic")  # fmt: skip
        repo.bulk_add(records(names[i], data[i], texts))
        dedicated[i] = repo
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    print("all layouts loaded", flush=True)

    # -- tenants added, detached, attached with the partitions in place
    ops: dict[str, list[float]] = {"create": [], "detach": [], "attach": [], "drop": []}
    for j in range(5):
        name = f"new-{j}"
        ops["create"].append(timed(lambda n=name: tenants.create_tenant(
            engine, n, model=TenantDoc, embedding_model="synthetic"))[0])  # fmt: skip
        vs.DocumentRepository.standalone(engine, collection=name, model=TenantDoc).bulk_add(
            records(name, data[-1], texts)
        )
        ops["detach"].append(timed(lambda n=name: tenants.detach_tenant(
            engine, n, model=TenantDoc))[0])  # fmt: skip
        ops["attach"].append(timed(lambda n=name: tenants.attach_tenant(
            engine, n, model=TenantDoc))[0])  # fmt: skip
        ops["drop"].append(timed(lambda n=name: tenants.drop_tenant(
            engine, n, model=TenantDoc))[0])  # fmt: skip
    detached_big = timed(lambda: tenants.detach_tenant(engine, names[0], model=TenantDoc))[0]
    attached_big = timed(lambda: tenants.attach_tenant(engine, names[0], model=TenantDoc))[0]

    # -- queries, interleaved
    qrng = np.random.default_rng(args.seed + 1)
    queries: dict[int, list[Any]] = {}
    truth: dict[int, list[list[int]]] = {}
    for i in measured:
        picks = qrng.integers(0, sizes[i], args.queries)
        qs = data[i][picks] + 0.3 * qrng.standard_normal((args.queries, DIM)).astype(np.float32)
        qs /= np.linalg.norm(qs, axis=1, keepdims=True)
        queries[i] = list(qs)
        truth[i] = [list(np.argsort(1 - data[i] @ q)[:K]) for q in qs]
    repos = {"partitioned": part, "dedicated": dedicated, "shared": shared,
             "shared+partial": shared}  # fmt: skip
    phase1 = measure(PHASES[0], repos, measured, queries, truth, args)
    started = time.perf_counter()
    for i in measured:
        memory = build_memory(sizes[i], floor_mb=1024)
        shared[i].create_index(vs.IndexSpec(per_collection=True), maintenance_work_mem=memory)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    timings["partial indexes for the measured tenants (s)"] = time.perf_counter() - started
    print("partial indexes built", flush=True)
    phase2 = measure(PHASES[1], repos, measured, queries, truth, args)
    times = {i: {**phase1.times[i], "shared+partial": phase2.times[i]["shared+partial"]}
             for i in measured}  # fmt: skip
    recalls = {i: {**phase1.recalls[i], "shared+partial": phase2.recalls[i]["shared+partial"]}
               for i in measured}  # fmt: skip
    short = {i: {**phase1.short[i], "shared+partial": phase2.short[i]["shared+partial"]}
             for i in measured}  # fmt: skip
    strategies = phase1.strategies

    table_rows = []
    for i in measured:
        row: dict[str, Any] = {"tenant": names[i], "rows": sizes[i]}
        for m in METHODS:
            s = summary(list(times[i][m].values()))
            row[f"{m} p50 ms"] = s["p50_ms"]
            row[f"{m} recall"] = round(statistics.mean(recalls[i][m]), 3)
            if short[i][m]:
                row[f"{m} short"] = short[i][m]
        row["partitioned / dedicated"] = round(
            paired_median(times[i], "partitioned", "dedicated"), 2
        )
        row["partitioned p50 ms (phase 2)"] = summary(
            list(phase2.times[i]["partitioned"].values())
        )["p50_ms"]
        row["partitioned / shared+partial"] = round(
            paired_median(phase2.times[i], "partitioned", "shared+partial"), 2
        )
        row["shared strategies"] = ",".join(sorted(strategies[i]["shared"]))
        row["shared+partial strategies"] = ",".join(sorted(phase2.strategies[i]["shared+partial"]))
        table_rows.append(row)
    ops_row = [
        {"operation": f"{op} (small tenant, {args.tenants:,} partitions)",
         "p50 ms": round(statistics.median(v), 1), "max ms": round(max(v), 1)}
        for op, v in ops.items()
    ]  # fmt: skip
    for op, ms in (("detach", detached_big), ("attach", attached_big)):
        ops_row.append({"operation": f"{op} largest ({sizes[0]:,} rows)",
                        "p50 ms": round(ms, 1), "max ms": round(ms, 1)})  # fmt: skip
    out = [
        markdown(
            f"Tenant-scoped nearest, k={K}, {args.rows:,} rows, {args.tenants:,} tenants",
            table_rows,
        ),
        markdown("Tenant operations", ops_row),
        markdown("Loading", [{"step": k, "seconds": round(v, 1)} for k, v in timings.items()]),
    ]
    print("\n\n".join(out))
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if args.rows == 100_000 else f"_{args.rows}"
    (RESULTS / f"tenants{suffix}.json").write_text(json.dumps(
        {"rows": args.rows, "tenants": args.tenants, "queries": args.queries,
         "rounds": args.rounds, "nearest": table_rows, "operations": ops_row,
         "loading": timings}, indent=2))  # fmt: skip
    (RESULTS / f"tenants{suffix}_tables.md").write_text("\n\n".join(out) + "\n")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
