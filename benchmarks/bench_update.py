"""Changing rows: the HNSW penalty of a metadata update, delete_where, and keyset pages.

pgvector/pgvector#875: an UPDATE of a non-vector column costs ~100x on a
table with an HNSW index, because the new row version goes into every index,
the HNSW graph included (a graph search per row).  PostgreSQL skips the
indexes only for a HOT update (the new version on the same page, and no
indexed column changed): the metadata GIN index covers the changed column, so
a metadata update is never HOT on vectorstore's table.

Data: the correlated set of ``bench_filtered_correlated.py`` (synthetic 384-d
vectors in clusters, 30-220-word texts), with metadata ``{"cat", "i",
"bucket": i % 10, "v"}``; ``bucket`` picks a 10 % of rows spread through the
table (as an attribute refresh of one day's products would).  Layouts, each
in its own database with the same rows, measured side by side in rounds
(each round visits every layout; VACUUM between operations, untimed, so no
layout carries another round's dead rows):

* ``hnsw``: vectorstore's schema (GIN on metadata, HNSW on embedding);
* ``no hnsw``: the same without the HNSW index (the target's reference);
* ``hot``: HNSW, no metadata GIN, ``fillfactor = 70``: the HOT route (what
  dropping the metadata index buys, and costs filters);
* ``metadata table``: vectorstore's ``metadata_index = "table"`` layout
  (a ``DocumentMixin`` model ``bench_docs``): HNSW, no GIN on the documents,
  ``fillfactor = 80``, the GIN on a shadow table the database keeps by
  statement triggers; the repository's own ``update_where``;
* ``side table``: HNSW on the documents, the mutable metadata in a side
  table ``(document_id primary key, metadata jsonb)`` with its own GIN
  index: the side-table route's write cost (updated by hand SQL in the same
  1,000-row batches).

Operations: ``update_where`` merging ``{"v": round}`` into one bucket (10 %
of the rows, batches of 1,000, standalone); ``delete_where`` of one bucket
(in a Session, rolled back after timing, so every round deletes from the full
table); and, on ``no hnsw``, a page of 100 at depth d by keyset (``list(after=
...)``) against ``OFFSET d``.

Usage::

    python benchmarks/bench_update.py                 # 100,000 rows
    python benchmarks/bench_update.py --rows 10000    # the quick measure

Results: ``benchmarks/results/update.json`` and ``update_tables.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from bench_filtered_correlated import build_set, texts_for  # noqa: E402
from bench_search import fresh_engine, markdown  # noqa: E402
from sqlalchemy import BigInteger, MetaData, text  # noqa: E402
from sqlalchemy.dialects.postgresql import JSONB  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column  # noqa: E402

import vectorstore as vs  # noqa: E402
from vectorstore.models import NAMING_CONVENTION  # noqa: E402
from vectorstore.query import listing  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
LAYOUTS = ("hnsw", "no hnsw", "hot", "metadata table", "side table")
SERVER_DIR = "vectorstore-bench-update"
BATCH = 1_000


class _Base(DeclarativeBase):
    pass


class _ShadowBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class BenchDoc(vs.DocumentMixin, _ShadowBase):
    """The ``metadata table`` layout: vectorstore's opt-in HOT-update schema."""

    __tablename__ = "bench_docs"
    metadata_index = "table"


def table_of(layout: str) -> str:
    return "bench_docs" if layout == "metadata table" else "vectorstore_documents"


def model_of(layout: str) -> Any:
    return BenchDoc if layout == "metadata table" else vs.Document


def load(url: str | None, layout: str, rows: int, seed: int) -> tuple[Any, Any, dict[str, float]]:
    database = "bench_update_" + layout.replace(" ", "_")
    engine = fresh_engine(url, SERVER_DIR, database)  # migrated, HNSW dropped
    if layout == "hot":
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_vectorstore_documents_metadata")
            conn.exec_driver_sql("ALTER TABLE vectorstore_documents SET (fillfactor = 70)")
    if layout == "metadata table":
        _ShadowBase.metadata.create_all(engine)
        with engine.begin() as conn:  # COPY first, index after, as for the others
            conn.exec_driver_sql("DROP INDEX ix_bench_docs_embedding_hnsw")
    data, cats, _ = build_set(rows, seed)
    repo: Any = vs.DocumentRepository.standalone(
        engine, collection="upd", embedding_model="synthetic", model=model_of(layout)
    )
    timings: dict[str, float] = {}
    started = time.perf_counter()
    repo.bulk_add(
        texts_for(rows, seed), embeddings=data,
        metadata=[{"cat": c, "i": i, "bucket": i % 10, "v": 0} for i, c in enumerate(cats)],
        external_ids=[str(i) for i in range(rows)], rebuild_index=False,
    )  # fmt: skip
    timings["load_s"] = round(time.perf_counter() - started, 1)
    if layout != "no hnsw":
        started = time.perf_counter()
        repo.create_index(vs.IndexSpec(m=16, ef_construction=64), maintenance_work_mem="1GB")
        timings["hnsw_build_s"] = round(time.perf_counter() - started, 1)
    if layout == "side table":
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE bench_attrs (document_id bigint PRIMARY KEY "
                "REFERENCES vectorstore_documents (id) ON DELETE CASCADE, metadata jsonb NOT NULL)"
            )
            conn.exec_driver_sql(
                "INSERT INTO bench_attrs SELECT id, metadata FROM vectorstore_documents"
            )
            conn.exec_driver_sql(
                "CREATE INDEX bench_attrs_metadata ON bench_attrs "
                "USING gin (metadata jsonb_path_ops)"
            )
    vacuum(engine)
    print(f"{layout}: {timings}", flush=True)
    return engine, repo, timings


def vacuum(engine: Any) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in ("vectorstore_documents", "bench_attrs", "bench_docs", "bench_docs_metadata"):
            if conn.exec_driver_sql(f"SELECT to_regclass('{name}')").scalar() is not None:
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {name}")


def hot_share(engine: Any, table: str) -> tuple[int, int]:
    with engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = %s",
            (table,),
        ).one()
    return int(row[0]), int(row[1])


def side_update(engine: Any, bucket: int, value: int) -> int:
    """The side-table route's update_where: the same keyset batches, on bench_attrs."""
    last, total = -1, 0
    patch = json.dumps({"v": value})
    while True:
        with engine.begin() as conn:
            ids = list(
                conn.execute(
                    text(
                        "UPDATE bench_attrs SET metadata = metadata || CAST(:p AS jsonb) "
                        "WHERE document_id IN (SELECT document_id FROM bench_attrs "
                        "WHERE metadata @> CAST(:f AS jsonb) AND document_id > :last "
                        "ORDER BY document_id LIMIT :n FOR UPDATE) RETURNING document_id"
                    ),
                    {"p": patch, "f": json.dumps({"bucket": bucket}), "last": last, "n": BATCH},
                ).scalars()
            )
        total += len(ids)
        if len(ids) < BATCH:
            return total
        last = max(ids)


def update_once(layout: str, engine: Any, repo: Any, bucket: int, value: int) -> tuple[float, int]:
    started = time.perf_counter()
    if layout == "side table":
        n = side_update(engine, bucket, value)
    else:
        n = repo.update_where({"bucket": bucket}, merge_metadata={"v": value}, batch_size=BATCH)
    return time.perf_counter() - started, n


def delete_once(engine: Any, bucket: int, model: Any) -> tuple[float, int]:
    with Session(engine) as session:
        repo: Any = vs.DocumentRepository(session, collection="upd", create=False, model=model)
        started = time.perf_counter()
        n = repo.delete_where({"bucket": bucket}, batch_size=BATCH)
        took = time.perf_counter() - started
        session.rollback()
    return took, n


def pages(engine: Any, repo: Any, rows: int, repeats: int) -> list[dict[str, Any]]:
    """A page of 100 at each depth: the SQL alone (ids), and the whole list() call."""
    out = []
    depths = [d for d in (0, 1_000, 10_000, rows // 2, rows - 200) if d < rows]
    cid = repo.collection.id
    keyset_sql = text(
        "SELECT id FROM vectorstore_documents WHERE collection_id = :c AND id > :last "
        "ORDER BY id LIMIT 101"
    )
    offset_sql = text(
        "SELECT id FROM vectorstore_documents WHERE collection_id = :c "
        "ORDER BY id OFFSET :d LIMIT 100"
    )
    for depth in depths:
        times: dict[str, list[float]] = {"keyset": [], "offset": [], "list": []}
        with engine.connect() as conn:
            last_id = conn.execute(
                text("SELECT id FROM vectorstore_documents ORDER BY id OFFSET :d LIMIT 1"),
                {"d": max(depth - 1, 0)},
            ).scalar_one()
            last = last_id if depth else -1
            cursor = listing._encode("id", last_id, last_id) if depth else None
            for _ in range(repeats):
                started = time.perf_counter()
                a = list(conn.execute(keyset_sql, {"c": cid, "last": last}).scalars())[:100]
                times["keyset"].append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                b = list(conn.execute(offset_sql, {"c": cid, "d": depth}).scalars())
                times["offset"].append((time.perf_counter() - started) * 1000)
                assert a == b
                started = time.perf_counter()
                got = repo.list(limit=100, after=cursor)
                times["list"].append((time.perf_counter() - started) * 1000)
                assert [d.id for d in got] == a
        k, o = statistics.median(times["keyset"]), statistics.median(times["offset"])
        out.append({"depth": depth, "keyset SQL p50 ms": round(k, 2),
                    "OFFSET SQL p50 ms": round(o, 2), "OFFSET / keyset": round(o / k, 1),
                    "list() p50 ms": round(statistics.median(times["list"]), 2)})  # fmt: skip
    return out


class BenchAttrs(_Base):
    """The side table as a mapped class, for nearest(join=...)."""

    __tablename__ = "bench_attrs"
    document_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB)


def nearest_paths(loaded: dict[str, Any], rows: int, queries: int) -> list[dict[str, Any]]:
    """nearest at its defaults on each layout that has HNSW: p50 and recall@10.

    ``hnsw`` filters metadata through its GIN index, ``metadata table``
    through the shadow table's, ``side table`` joins the side table through
    ``join=``.  The truth is the exact ranking on ``hnsw`` (the same rows in
    every database, compared by external id).
    """
    data, _, _ = build_set(rows, 0)
    rng = np.random.default_rng(11)
    picks = rng.integers(0, rows, queries)
    join = {"join": BenchAttrs, "join_on": BenchAttrs.document_id == vs.Document.id}
    names = [n for n in ("hnsw", "metadata table", "side table") if n in loaded]
    out = []
    cases = (("none (unfiltered)", None), ("bucket (10 %, random)", {"bucket": 3}),
             ("cat c1 (1 %, correlated)", {"cat": "c1"}))  # fmt: skip
    for label, flt in cases:
        times: dict[str, list[float]] = {name: [] for name in names}
        recalls: dict[str, list[float]] = {name: [] for name in names}
        truth_repo = loaded["hnsw"][1]
        for p in picks:
            q = data[p] + 0.05 * rng.standard_normal(data.shape[1]).astype(np.float32)
            exact = truth_repo.nearest(q, k=10, filter=flt, strategy="exact")
            truth = {h.document.external_id for h in exact}
            for name in names:
                repo = loaded[name][1]
                started = time.perf_counter()
                if name == "side table" and flt is not None:
                    hits = repo.nearest(q, k=10, filter=BenchAttrs.metadata_.contains(flt), **join)
                else:
                    hits = repo.nearest(q, k=10, filter=flt)
                times[name].append((time.perf_counter() - started) * 1000)
                got = {h.document.external_id for h in hits}
                recalls[name].append(len(got & truth) / max(len(truth), 1))
        base = statistics.median(times["hnsw"])
        for name in names:
            p50 = statistics.median(times[name])
            out.append({"filter": label, "layout": name, "p50 ms": round(p50, 2),
                        "vs hnsw": round(p50 / base, 2),
                        "recall@10": round(statistics.mean(recalls[name]), 3)})  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--url", default=None, help="an external server (default: embedded)")
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    args = parser.parse_args()
    layouts = [name.strip() for name in args.layouts.split(",")]
    loaded = {name: load(args.url, name, args.rows, args.seed) for name in layouts}
    upd: dict[str, list[float]] = {name: [] for name in layouts}
    dels: dict[str, list[float]] = {name: [] for name in layouts if name != "side table"}
    counts: dict[str, int] = {}
    for r in range(args.rounds):
        order = layouts if r % 2 == 0 else layouts[::-1]  # alternate who goes first
        for name in order:
            engine, repo, _ = loaded[name]
            took, n = update_once(name, engine, repo, r % 10, r + 1)
            counts[name] = n
            upd[name].append(took)
            vacuum(engine)
            if name in dels:
                took, n = delete_once(engine, (r + 5) % 10, model_of(name))
                dels[name].append(took)
                vacuum(engine)
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in upd.items()), flush=True)
    reference = statistics.median(upd["no hnsw"]) if "no hnsw" in upd else None
    table = []
    for name in layouts:
        engine, _, timings = loaded[name]
        med = statistics.median(upd[name])
        total, hot = hot_share(engine, table_of(name))
        row: dict[str, Any] = {
            "layout": name,
            "rows updated": counts[name],
            "update_where s (median)": round(med, 2),
            "spread s": f"{min(upd[name]):.2f}-{max(upd[name]):.2f}",
            "vs no hnsw": round(med / reference, 1) if reference else "",
            "HOT updates": f"{hot}/{total}" if name != "side table" else "(side table)",
        }
        if name in dels:
            row["delete_where s (median)"] = round(statistics.median(dels[name]), 2)
        row.update(timings)
        table.append(row)
    page_rows = pages(*loaded["no hnsw"][:2], args.rows, 7) if "no hnsw" in loaded else []
    paths = nearest_paths(loaded, args.rows, args.queries) if "hnsw" in loaded else []
    title = f"{args.rows:,} rows, update/delete of 10 % ({args.rows // 10:,}), {args.rounds} rounds"
    md = markdown(f"Metadata update_where and delete_where: {title}", table)
    md += "\n" + markdown("A page of 100 at depth: keyset (list(after=...)) vs OFFSET", page_rows)
    md += "\n" + markdown("nearest k=10 at its defaults on each layout with HNSW", paths)
    print(md)
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if args.rows == 100_000 else f"_{args.rows}"
    report = {
        "rows": args.rows,
        "update": upd,
        "delete": dels,
        "table": table,
        "pages": page_rows,
        "nearest": paths,
    }
    (RESULTS / f"update{suffix}.json").write_text(json.dumps(report, indent=2))
    (RESULTS / f"update{suffix}_tables.md").write_text(md)
    for engine, _, _ in loaded.values():
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
