"""Streaming-write benchmark: latency of ``add`` against a bare psycopg2 INSERT + COMMIT.

One event at a time, as from a web request: each write is its own committed
transaction.  Side by side on one dedicated embedded server, same rows, same
table (vectorstore's default table WITH its HNSW index, as a live collection
has), interleaved in blocks so both see the same server state:

* ``bare psycopg2``: ``INSERT ... VALUES (...)`` with pgvector's psycopg2
  adapter, then ``COMMIT``, on one open connection: the floor.
* ``repo.add``: a standalone ``DocumentRepository`` (commits each call), vector
  given (no embedding in the timed path).
* ``writer`` (for reference): ``BufferedWriter.add`` latency (buffered, not yet
  durable) and its sustained rows/s with ``max_rows=500``.

Reported: p50 / p95 / p99 latency in ms and the ratio of ``add`` to the bare
INSERT.  Usage::

    python benchmarks/bench_stream.py               # 1,000 writes each, ~1 minute
    python benchmarks/bench_stream.py --writes 5000

Results: ``benchmarks/results/stream.json`` and ``stream_tables.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
from _ingest_common import DIM, RESULTS, TABLE, make_rows, start_server
from sqlalchemy import URL

import vectorstore as vs


def percentiles(values: list[float]) -> dict[str, float]:
    data = np.asarray(values) * 1000
    return {f"p{q}": float(np.percentile(data, q)) for q in (50, 95, 99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--block", type=int, default=50, help="writes per interleaved block")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    server, url, owned = start_server(args.data_dir)
    try:
        results = run(url, args)
    finally:
        server.stop()
        if owned:
            shutil.rmtree(Path(server.data_dir).parent, ignore_errors=True)
    report(results, args)


def run(url: URL, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    import psycopg2
    from pgvector.psycopg2 import register_vector
    from psycopg2.extras import Json

    n = args.writes
    rows = make_rows(2 * n + 1000)
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        url, collection="stream", embedding_model="bench"
    )
    cid = repo.collection.id
    # Warm both paths (connections, statement caches, the collection lookup).
    repo.add("warm up", embedding=rows["embeddings"][0])
    conn = psycopg2.connect(dbname=url.database, user=url.username, host=url.query["host"])
    register_vector(conn)
    cur = conn.cursor()
    sql = (
        f"INSERT INTO {TABLE} (collection_id, external_id, text, content_hash, metadata, "
        "embedding) VALUES (%s, %s, %s, %s, %s, %s)"
    )
    bare: list[float] = []
    add: list[float] = []
    i = 0
    while len(add) < n:
        for _ in range(args.block):
            body, vec = rows["texts"][i], rows["embeddings"][i]
            began = time.perf_counter()
            cur.execute(
                sql,
                (
                    cid,
                    rows["external_ids"][i],
                    body,
                    hashlib.sha256(body.encode()).digest(),
                    Json(rows["metadata"][i]),
                    vec,
                ),
            )
            conn.commit()
            bare.append(time.perf_counter() - began)
            i += 1
        for _ in range(args.block):
            began = time.perf_counter()
            repo.add(
                rows["texts"][i],
                embedding=rows["embeddings"][i],
                metadata=rows["metadata"][i],
                external_id=rows["external_ids"][i],
            )
            add.append(time.perf_counter() - began)
            i += 1
    conn.close()

    buffered: list[float] = []
    began_all = time.perf_counter()
    with repo.writer(max_rows=500, max_delay=0.5) as writer:
        for j in range(i, i + 1000):
            began = time.perf_counter()
            writer.add(
                rows["texts"][j],
                embedding=rows["embeddings"][j],
                external_id=rows["external_ids"][j],
            )
            buffered.append(time.perf_counter() - began)
    writer_rate = 1000 / (time.perf_counter() - began_all)
    return {
        "bare psycopg2 INSERT + COMMIT": percentiles(bare),
        "repo.add (standalone, commit per call)": percentiles(add),
        "writer.add (buffered, max_rows=500)": {**percentiles(buffered), "rows_per_s": writer_rate},
    }


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    base = results["bare psycopg2 INSERT + COMMIT"]
    lines = [
        f"Single-row writes, {args.writes:,} each, interleaved in blocks of {args.block}; "
        f"{DIM}-d vectors; table with its HNSW index; dedicated embedded PostgreSQL.",
        "",
        "| path | p50 ms | p95 ms | p99 ms | p50 x bare INSERT |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['p50']:.3f} | {r['p95']:.3f} | {r['p99']:.3f} | "
            f"{r['p50'] / base['p50']:.2f} |"
        )
    writer = results["writer.add (buffered, max_rows=500)"]
    lines.append("")
    lines.append(
        f"Buffered writer sustained rate (1,000 rows, flush by 500): "
        f"{writer['rows_per_s']:,.0f} rows/s (writer.add latency is the time to "
        f"buffer; a flush triggered by the 500th add is in its max, not shown)."
    )
    out = "\n".join(lines)
    print(out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stream.json").write_text(
        json.dumps({"writes": args.writes, "results": results}, indent=2)
    )
    (RESULTS / "stream_tables.md").write_text(out + "\n")


if __name__ == "__main__":
    main()
