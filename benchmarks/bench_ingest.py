"""Bulk-load benchmark: bulk_add against the usual ways of loading pgvector rows.

Side by side in one run, on one dedicated embedded server, the same rows
(default 100,000 rows of 384-d float32 vectors with text, 3-key metadata and an
external id), the same table state for every method: vectorstore's default
document table with its btree, GIN (metadata, full text) indexes and the
generated tsvector column, but WITHOUT the HNSW index (inserting into HNSW
row by row is the slow path the ``rebuild_index`` option avoids; all methods
would pay it equally).  The table is truncated before each run.

Methods:

* ``server COPY FROM file``: the server reads a binary COPY file of the same
  rows from its own disk: no client, no socket.  The upper limit.
* ``bulk_add psycopg2`` / ``bulk_add psycopg3``: vectorstore, binary COPY.
* ``psycopg3 write_row (pgvector recipe)``: pgvector-python's loading example
  (binary COPY, one ``write_row`` per row).
* ``text COPY``: text-format COPY with the vector formatted by Python.
* ``execute_values``: psycopg2.extras.execute_values with pgvector's adapter.
* ``ORM add_all``: SQLAlchemy ORM objects, ``add_all`` + commit.

Each run happens in a fresh subprocess so its client peak memory (RSS sampled
every 10 ms, minus the RSS before the load started, i.e. beyond the input data)
is its own.  Fast methods run ``--repeats`` times, interleaved; the median
rows/s is reported (and the best).  Slow methods run once on ``--slow-rows``.

Usage::

    python benchmarks/bench_ingest.py                 # 100k rows, ~3-4 minutes here
    python benchmarks/bench_ingest.py --rows 1000000 --slow-rows 100000

Results: ``benchmarks/results/ingest.json`` and ``ingest_tables.md``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _ingest_common import DIM, HNSW, RESULTS, ROOT, TABLE, RssSampler, make_rows, start_server
from sqlalchemy import URL, make_url
from sqlalchemy.orm import Session

import vectorstore as vs
from vectorstore.write.batch import batches_from_arrays
from vectorstore.write.copy import COPY_COLUMNS, encoded_stream

COLUMNS = ", ".join(COPY_COLUMNS)
FAST = ["server COPY FROM file", "bulk_add psycopg2", "bulk_add psycopg3"]
SLOW = ["psycopg3 write_row (pgvector recipe)", "text COPY", "execute_values", "ORM add_all"]


def records(rows: dict[str, Any]) -> Any:
    """(external id, text, metadata, embedding) per row, for the hand-written methods."""
    return zip(
        rows["external_ids"], rows["texts"], rows["metadata"], rows["embeddings"], strict=True
    )


def collection_id(url: URL) -> int:
    engine = vs.make_engine(url)
    with Session(engine) as session:
        repo = vs.DocumentRepository(session, collection="bench", embedding_model="bench")
        cid = repo.collection.id
        session.commit()
    engine.dispose()
    return cid


def psycopg2_connect(url: URL) -> Any:
    import psycopg2

    return psycopg2.connect(dbname=url.database, user=url.username, host=url.query["host"])


# -- the methods (run inside the worker subprocess) ---------------------------------------
def run_bulk_add(url: URL, rows: dict[str, Any], driver: str) -> None:
    engine = vs.make_engine(url.set(drivername=f"postgresql+{driver}"))
    with Session(engine) as session:
        repo = vs.DocumentRepository(session, collection="bench", embedding_model="bench")
        repo.bulk_add(
            rows["texts"],
            embeddings=rows["embeddings"],
            metadata=rows["metadata"],
            external_ids=rows["external_ids"],
        )
        session.commit()
    engine.dispose()


def run_server_copy(url: URL, rows: dict[str, Any], path: str) -> None:
    conn = psycopg2_connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(f"COPY {TABLE} ({COLUMNS}) FROM %s (FORMAT BINARY)", (path,))
    conn.close()


def run_write_row(url: URL, rows: dict[str, Any], cid: int) -> None:
    import hashlib

    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    with psycopg.connect(dbname=url.database, user=url.username, host=url.query["host"]) as conn:
        register_vector(conn)
        with (
            conn.cursor() as cur,
            cur.copy(
                f"COPY {TABLE} (collection_id, external_id, text, content_hash, metadata, "
                "embedding) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int4", "text", "text", "bytea", "jsonb", "vector"])
            for ext, body, meta, vec in records(rows):
                copy.write_row(
                    (cid, ext, body, hashlib.sha256(body.encode()).digest(), Jsonb(meta), vec)
                )


def _text_lines(rows: dict[str, Any], cid: int) -> Iterator[str]:
    import hashlib

    for ext, body, meta, vec in records(rows):
        digest = hashlib.sha256(body.encode()).hexdigest()
        vector = "[" + ",".join(map(str, vec.tolist())) + "]"
        yield f"{cid}\t{ext}\t{body}\t\\\\x{digest}\t{json.dumps(meta)}\t{vector}\n"


class _LineReader(io.RawIOBase):
    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines

    def read(self, size: int = -1) -> bytes:
        chunk = []
        for _ in range(1000):
            line = next(self._lines, None)
            if line is None:
                break
            chunk.append(line)
        return "".join(chunk).encode()


def run_text_copy(url: URL, rows: dict[str, Any], cid: int) -> None:
    conn = psycopg2_connect(url)
    with conn, conn.cursor() as cur:
        cur.copy_expert(
            f"COPY {TABLE} (collection_id, external_id, text, content_hash, metadata, embedding) "
            "FROM STDIN",
            _LineReader(_text_lines(rows, cid)),
        )
    conn.close()


def run_execute_values(url: URL, rows: dict[str, Any], cid: int) -> None:
    import hashlib

    from pgvector.psycopg2 import register_vector
    from psycopg2.extras import Json, execute_values

    conn = psycopg2_connect(url)
    register_vector(conn)
    with conn, conn.cursor() as cur:
        execute_values(
            cur,
            f"INSERT INTO {TABLE} (collection_id, external_id, text, content_hash, metadata, "
            "embedding) VALUES %s",
            [
                (cid, ext, body, hashlib.sha256(body.encode()).digest(), Json(meta), vec)
                for ext, body, meta, vec in records(rows)
            ],
            page_size=1000,
        )
    conn.close()


def run_orm(url: URL, rows: dict[str, Any], cid: int) -> None:
    import hashlib

    engine = vs.make_engine(url)
    with Session(engine) as session:
        session.add_all(
            vs.Document(
                collection_id=cid,
                external_id=ext,
                text=body,
                content_hash=hashlib.sha256(body.encode()).digest(),
                metadata_=meta,
                embedding=vec,
            )
            for ext, body, meta, vec in records(rows)
        )
        session.commit()
    engine.dispose()


def worker(args: argparse.Namespace) -> None:
    url = make_url(args.url)
    rows = make_rows(args.rows)
    methods: dict[str, Callable[[], None]] = {
        "server COPY FROM file": lambda: run_server_copy(url, rows, args.copy_file),
        "bulk_add psycopg2": lambda: run_bulk_add(url, rows, "psycopg2"),
        "bulk_add psycopg3": lambda: run_bulk_add(url, rows, "psycopg"),
        "psycopg3 write_row (pgvector recipe)": lambda: run_write_row(url, rows, args.cid),
        "text COPY": lambda: run_text_copy(url, rows, args.cid),
        "execute_values": lambda: run_execute_values(url, rows, args.cid),
        "ORM add_all": lambda: run_orm(url, rows, args.cid),
    }
    with RssSampler() as sampler:
        began = time.perf_counter()
        methods[args.worker]()
        elapsed = time.perf_counter() - began
    print(json.dumps({"elapsed_s": elapsed, "peak_mb": sampler.peak - sampler.start_mb}))


# -- the driver -----------------------------------------------------------------------------
def reset(url: URL) -> None:
    conn = psycopg2_connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"TRUNCATE {TABLE}")
        cur.execute(f"DROP INDEX IF EXISTS {HNSW}")
        cur.execute("CHECKPOINT")
    conn.close()


def count(url: URL) -> int:
    conn = psycopg2_connect(url)
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {TABLE}")
        n = int(cur.fetchone()[0])
    conn.close()
    return n


def run_one(method: str, url: URL, n: int, cid: int, copy_file: str) -> dict[str, float]:
    reset(url)
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            method,
            "--url",
            url.render_as_string(hide_password=False),
            "--rows",
            str(n),
            "--cid",
            str(cid),
            "--copy-file",
            copy_file,
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    stored = count(url)
    if stored != n:
        raise RuntimeError(f"{method}: {stored} rows stored, expected {n}")
    result["rows_per_s"] = n / result["elapsed_s"]
    return dict(result)


def write_copy_file(path: Path, n: int, cid: int) -> None:
    rows = make_rows(n)
    batches = batches_from_arrays(
        rows["texts"],
        rows["embeddings"],
        DIM,
        metadata=rows["metadata"],
        external_ids=rows["external_ids"],
    )
    with open(path, "wb") as handle:
        for chunk in encoded_stream(batches, cid):
            handle.write(chunk)
    os.chmod(path, 0o644)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--slow-rows", type=int, default=None, help="rows for the slow methods (default: --rows)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of each fast method")
    parser.add_argument("--data-dir", default=None, help="server folder (default: a temp dir)")
    parser.add_argument("--skip", nargs="*", default=[], help="methods to leave out")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--cid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--copy-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    server, url, owned = start_server(args.data_dir)
    slow_rows = args.slow_rows or args.rows
    try:
        cid = collection_id(url)
        copy_file = Path(server.data_dir).parent / "rows.copy"
        write_copy_file(copy_file, args.rows, cid)
        results: dict[str, list[dict[str, float]]] = {}
        for _ in range(args.repeats):
            for method in FAST:
                if method not in args.skip:
                    r = run_one(method, url, args.rows, cid, str(copy_file))
                    results.setdefault(method, []).append(r)
                    print(f"  {method:40s} {r['rows_per_s']:>10,.0f} rows/s", flush=True)
        for method in SLOW:
            if method not in args.skip:
                r = run_one(method, url, slow_rows, cid, str(copy_file))
                results[method] = [r]
                print(f"  {method:40s} {r['rows_per_s']:>10,.0f} rows/s", flush=True)
    finally:
        server.stop()
        if owned:
            shutil.rmtree(Path(server.data_dir).parent, ignore_errors=True)
    report(results, args, slow_rows)


def report(
    results: dict[str, list[dict[str, float]]], args: argparse.Namespace, slow_rows: int
) -> None:
    limit = statistics.median(r["rows_per_s"] for r in results["server COPY FROM file"])
    ev = results.get("execute_values")
    ev_rate = ev[0]["rows_per_s"] if ev else float("nan")
    lines = [
        f"Bulk load, {args.rows:,} rows of {DIM}-d float32 + text + metadata "
        f"(slow methods: {slow_rows:,} rows); table: default schema without the HNSW index; "
        f"dedicated embedded PostgreSQL 18 + pgvector; {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}). Median of {args.repeats} runs for "
        "the first three methods.",
        "",
        "| method | rows/s (median) | best | x server-side COPY | x execute_values "
        "| client peak MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    table = {}
    for method, runs in results.items():
        rates = [r["rows_per_s"] for r in runs]
        median = statistics.median(rates)
        peak = max(r["peak_mb"] for r in runs)
        table[method] = {
            "rows_per_s": median,
            "best": max(rates),
            "runs": rates,
            "vs_server_copy": median / limit,
            "vs_execute_values": median / ev_rate,
            "client_peak_mb": peak,
        }
        lines.append(
            f"| {method} | {median:,.0f} | {max(rates):,.0f} | {median / limit:.2f} | "
            f"{median / ev_rate:.1f} | {peak:,.0f} |"
        )
    text_out = "\n".join(lines)
    print("\n" + text_out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(
        json.dumps(
            {"rows": args.rows, "slow_rows": slow_rows, "repeats": args.repeats, "methods": table},
            indent=2,
        )
    )
    (RESULTS / "ingest_tables.md").write_text(text_out + "\n")


if __name__ == "__main__":
    main()
