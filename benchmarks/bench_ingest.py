"""Bulk-load benchmark: bulk_add against the usual ways of loading pgvector rows.

Side by side in one run, on one dedicated embedded server, the same rows
(default 100,000 rows of 384-d float32 vectors with text, 3-key metadata and an
external id; ``--texts``: ``words`` (default: 40 words from a 6,000-word
vocabulary with Zipf frequencies, ~330 characters, like reviews or
paragraphs), ``docstrings`` (the demo's stdlib corpus) or ``template`` (the
old 11-word template with few distinct lexemes)).  The table is truncated
before each run.

Part 1, the COPY (no HNSW index anywhere: inserting into HNSW row by row is
the slow path big-load mode avoids):

* ``server COPY FROM file, bare table``: the server reads a binary COPY file of
  the same rows from its own disk into a table with the same columns and only
  the primary key: no client, no socket, no schema cost.  The upper limit.
* ``server COPY FROM file``: the same into vectorstore's default document
  table with its btree and GIN (metadata, full text) indexes and foreign key
  kept up row by row: the schema's cost.
* ``bulk_add psycopg2`` / ``bulk_add psycopg3``: vectorstore, binary COPY,
  ``rebuild_index=False`` (the small-load path: every index kept up).
* ``bulk_add psycopg2/3, big load``: the default (``rebuild_index=None``
  chooses big-load mode for 100,000 rows into an empty table): the secondary
  indexes and the foreign key dropped in the load's transaction, COPY, then
  rebuilt and ANALYZE.  Reported: the COPY phase (``BulkResult.write_s``)
  and the whole call.
* ``bulk_add psycopg2, big load, "expression" layout``: the same big load into
  a table of a model declared ``full_text_search = "expression"`` (a GIN
  index on ``to_tsvector('english', text)``, no stored ``tsvector``): what
  the COPY phase reaches without the generated column the default
  (``"stored"``) layout computes for every row.
* ``psycopg3 write_row (pgvector recipe)``: pgvector-python's loading example
  (binary COPY, one ``write_row`` per row).
* ``text COPY``: text-format COPY with the vector formatted by Python.
* ``execute_values``: psycopg2.extras.execute_values with pgvector's adapter.
* ``ORM add_all``: SQLAlchemy ORM objects, ``add_all`` + commit.

Part 2, load + every index, end to end (once each, HNSW included, the same
build settings: ``maintenance_work_mem`` 512MB, the default parallel
maintenance workers):

* ``bare table: server COPY + HNSW build``: the least a loaded, searchable
  table can cost.
* ``default table: bulk_add big load``: ``bulk_add`` into the empty default
  table with all its indexes: drop, COPY, rebuild of every index (HNSW, GIN,
  btree) and the foreign key, ANALYZE.

Each run happens in a fresh subprocess so its client peak memory (RSS sampled
every 10 ms, minus the RSS before the load started, i.e. beyond the input data)
is its own.  Fast methods run ``--repeats`` times, interleaved; the median
rows/s is reported (and the best).  Slow methods run once on ``--slow-rows``.

Usage::

    python benchmarks/bench_ingest.py                 # 100k rows, ~10 minutes here
    python benchmarks/bench_ingest.py --rows 1000000 --slow-rows 100000
    python benchmarks/bench_ingest.py --texts template   # the old, cheap texts

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

from _ingest_common import (
    BARE_COLUMNS,
    BARE_TABLE,
    DIM,
    HNSW,
    RESULTS,
    ROOT,
    TABLE,
    TEXT_KINDS,
    RssSampler,
    make_rows,
    start_server,
)
from sqlalchemy import URL, MetaData, make_url
from sqlalchemy.orm import DeclarativeBase, Session

import vectorstore as vs
from vectorstore.write.batch import batches_from_arrays
from vectorstore.write.copy import COPY_COLUMNS, encoded_stream

COLUMNS = ", ".join(COPY_COLUMNS)


class _ExpressionBase(DeclarativeBase):
    metadata = MetaData(naming_convention=vs.models.NAMING_CONVENTION)


class ExpressionDocument(vs.DocumentMixin, _ExpressionBase):
    """The default table's columns and indexes, full text as an expression GIN index."""

    __tablename__ = "vectorstore_documents_expr"
    full_text_search = "expression"


EXPR_TABLE = ExpressionDocument.__tablename__
EXPR_HNSW = f"ix_{EXPR_TABLE}_embedding_hnsw"
EXPR_BIG = 'bulk_add psycopg2, big load, "expression" layout'
BARE_COPY = "server COPY FROM file, bare table"
FAST = [
    BARE_COPY,
    "server COPY FROM file",
    "bulk_add psycopg2",
    "bulk_add psycopg3",
    "bulk_add psycopg2, big load",
    "bulk_add psycopg3, big load",
    EXPR_BIG,
]
E2E_BARE = "bare table: server COPY + HNSW build"
E2E_BIG = "default table: bulk_add big load, every index rebuilt"
E2E = [E2E_BARE, E2E_BIG]
WORKERS = max(0, min(7, (os.cpu_count() or 1) - 1))  # the library's default
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
def run_bulk_add(
    url: URL, rows: dict[str, Any], driver: str, rebuild_index: bool | None, model: Any = None
) -> dict[str, Any]:
    engine = vs.make_engine(url.set(drivername=f"postgresql+{driver}"))
    with Session(engine) as session:
        repo = vs.DocumentRepository(
            session, collection="bench", embedding_model="bench", model=model or vs.Document
        )
        result = repo.bulk_add(
            rows["texts"],
            embeddings=rows["embeddings"],
            metadata=rows["metadata"],
            external_ids=rows["external_ids"],
            rebuild_index=rebuild_index,
        )
        session.commit()
    engine.dispose()
    if rebuild_index is None and not result.big_load:
        raise RuntimeError(f"expected a big load, got: {result.big_load_reason}")
    return {"write_s": result.write_s, "index_s": result.index_s,
            "rebuilt": list(result.rebuilt)}  # fmt: skip


def run_server_copy(url: URL, rows: dict[str, Any], path: str, table: str = TABLE) -> None:
    conn = psycopg2_connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(f"COPY {table} ({COLUMNS}) FROM %s (FORMAT BINARY)", (path,))
    conn.close()


def run_bare_copy_and_hnsw(url: URL, path: str) -> dict[str, Any]:
    conn = psycopg2_connect(url)
    with conn, conn.cursor() as cur:
        began = time.perf_counter()
        cur.execute(f"COPY {BARE_TABLE} ({COLUMNS}) FROM %s (FORMAT BINARY)", (path,))
        copied = time.perf_counter()
        cur.execute("SET maintenance_work_mem = '512MB'")
        cur.execute(f"SET max_parallel_maintenance_workers = {WORKERS}")
        cur.execute(
            f"CREATE INDEX ON {BARE_TABLE} USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )
        cur.execute(f"ANALYZE {BARE_TABLE}")
        done = time.perf_counter()
    conn.close()
    return {"write_s": copied - began, "index_s": done - copied}


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
    rows = make_rows(args.rows, texts=args.texts)
    methods: dict[str, Callable[[], dict[str, Any] | None]] = {
        BARE_COPY: lambda: run_server_copy(url, rows, args.copy_file, BARE_TABLE),
        "server COPY FROM file": lambda: run_server_copy(url, rows, args.copy_file),
        "bulk_add psycopg2": lambda: run_bulk_add(url, rows, "psycopg2", False),
        "bulk_add psycopg3": lambda: run_bulk_add(url, rows, "psycopg", False),
        "bulk_add psycopg2, big load": lambda: run_bulk_add(url, rows, "psycopg2", None),
        "bulk_add psycopg3, big load": lambda: run_bulk_add(url, rows, "psycopg", None),
        EXPR_BIG: lambda: run_bulk_add(url, rows, "psycopg2", None, ExpressionDocument),
        E2E_BARE: lambda: run_bare_copy_and_hnsw(url, args.copy_file),
        E2E_BIG: lambda: run_bulk_add(url, rows, "psycopg2", None),
        "psycopg3 write_row (pgvector recipe)": lambda: run_write_row(url, rows, args.cid),
        "text COPY": lambda: run_text_copy(url, rows, args.cid),
        "execute_values": lambda: run_execute_values(url, rows, args.cid),
        "ORM add_all": lambda: run_orm(url, rows, args.cid),
    }
    with RssSampler() as sampler:
        began = time.perf_counter()
        extra = methods[args.worker]()
        elapsed = time.perf_counter() - began
    out = {"elapsed_s": elapsed, "peak_mb": sampler.peak - sampler.start_mb, **(extra or {})}
    print(json.dumps(out))


# -- the driver -----------------------------------------------------------------------------
def reset(url: URL, with_hnsw: bool = False) -> None:
    conn = psycopg2_connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {BARE_TABLE}")
        cur.execute(f"CREATE TABLE {BARE_TABLE} ({BARE_COLUMNS})")
        cur.execute(f"TRUNCATE {TABLE}")
        cur.execute(f"DROP INDEX IF EXISTS {HNSW}")
        cur.execute(f"DROP TABLE IF EXISTS {EXPR_TABLE}")
    engine = vs.make_engine(url)
    _ExpressionBase.metadata.create_all(engine)
    engine.dispose()
    with conn.cursor() as cur:
        cur.execute(f"DROP INDEX IF EXISTS {EXPR_HNSW}")
        if with_hnsw:
            cur.execute(
                f"CREATE INDEX {HNSW} ON {TABLE} USING hnsw (embedding vector_cosine_ops) "
                "WITH (m = 16, ef_construction = 64)"
            )
        cur.execute("CHECKPOINT")
    conn.close()


def count(url: URL, table: str = TABLE) -> int:
    conn = psycopg2_connect(url)
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        n = int(cur.fetchone()[0])
    conn.close()
    return n


def run_one(method: str, url: URL, n: int, cid: int, copy_file: str, texts: str) -> dict[str, Any]:
    reset(url, with_hnsw=method == E2E_BIG)
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
            "--texts",
            texts,
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    table = EXPR_TABLE if method == EXPR_BIG else TABLE
    stored = count(url, BARE_TABLE if method in (BARE_COPY, E2E_BARE) else table)
    if stored != n:
        raise RuntimeError(f"{method}: {stored} rows stored, expected {n}")
    result["rows_per_s"] = n / result["elapsed_s"]
    return dict(result)


def write_copy_file(path: Path, n: int, cid: int, texts: str) -> None:
    rows = make_rows(n, texts=texts)
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
    parser.add_argument("--texts", choices=TEXT_KINDS, default="words", help="kind of texts")
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
        write_copy_file(copy_file, args.rows, cid, args.texts)
        results: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.repeats):
            for method in FAST:
                if method not in args.skip:
                    r = run_one(method, url, args.rows, cid, str(copy_file), args.texts)
                    results.setdefault(method, []).append(r)
                    print(f"  {method:40s} {r['rows_per_s']:>10,.0f} rows/s", flush=True)
        for method in E2E:
            if method not in args.skip:
                r = run_one(method, url, args.rows, cid, str(copy_file), args.texts)
                results[method] = [r]
                print(f"  {method:55s} {r['elapsed_s']:>8.1f} s", flush=True)
        for method in SLOW:
            if method not in args.skip:
                r = run_one(method, url, slow_rows, cid, str(copy_file), args.texts)
                results[method] = [r]
                print(f"  {method:40s} {r['rows_per_s']:>10,.0f} rows/s", flush=True)
    finally:
        server.stop()
        if owned:
            shutil.rmtree(Path(server.data_dir).parent, ignore_errors=True)
    report(results, args, slow_rows)


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)


def report(
    results: dict[str, list[dict[str, Any]]], args: argparse.Namespace, slow_rows: int
) -> None:
    n = args.rows
    bare = _median(results[BARE_COPY], "rows_per_s")
    ev = results.get("execute_values")
    ev_rate = ev[0]["rows_per_s"] if ev else float("nan")
    lines = [
        f"Bulk load, {n:,} rows of {DIM}-d float32 + `{args.texts}` texts + metadata "
        f"(slow methods: {slow_rows:,} rows); no HNSW index in part 1; dedicated embedded "
        f"PostgreSQL 18 + pgvector; {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}). Median of {args.repeats} runs for "
        f"the first {len(FAST)} methods.",
        "",
        "Part 1, the COPY (x bare = rows/s over the server-side COPY into the bare table):",
        "",
        "| method | rows/s (median) | best | x bare | COPY phase rows/s | COPY phase x bare "
        "| x execute_values | client peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    table: dict[str, Any] = {}
    for method, runs in results.items():
        if method in E2E:
            continue
        rates = [r["rows_per_s"] for r in runs]
        median = statistics.median(rates)
        peak = max(r["peak_mb"] for r in runs)
        copy_rate = n / _median(runs, "write_s") if "write_s" in runs[0] else median
        table[method] = {
            "rows_per_s": median, "best": max(rates), "runs": rates, "vs_bare_copy": median / bare,
            "copy_phase_rows_per_s": copy_rate, "copy_phase_vs_bare_copy": copy_rate / bare,
            "vs_execute_values": median / ev_rate, "client_peak_mb": peak,
            "index_s": _median(runs, "index_s") if "index_s" in runs[0] else 0.0,
        }  # fmt: skip
        lines.append(
            f"| {method} | {median:,.0f} | {max(rates):,.0f} | {median / bare:.2f} | "
            f"{copy_rate:,.0f} | {copy_rate / bare:.2f} | {median / ev_rate:.1f} | {peak:,.0f} |"
        )
    lines += [
        "",
        "Part 2, load + every index, end to end (one run each):",
        "",
        "| method | COPY s | index build s | total s | x bare |",
        "|---|---:|---:|---:|---:|",
    ]
    e2e_bare = results.get(E2E_BARE, [{}])[0].get("elapsed_s")
    for method in E2E:
        if method not in results:
            continue
        r = results[method][0]
        ratio = r["elapsed_s"] / e2e_bare if e2e_bare else float("nan")
        table[method] = {**r, "vs_bare": ratio}
        lines.append(
            f"| {method} | {r['write_s']:.1f} | {r['index_s']:.1f} | {r['elapsed_s']:.1f} | "
            f"{ratio:.2f} |"
        )
    lines += ["", "Targets (issue #19):", ""]
    for method, label in (
        ("bulk_add psycopg2, big load", "psycopg2, default table (stored tsvector)"),
        ("bulk_add psycopg3, big load", "psycopg3, default table (stored tsvector)"),
        (EXPR_BIG, 'psycopg2, "expression" layout'),
    ):
        big = table.get(method)
        if big:
            ratio = big["copy_phase_vs_bare_copy"]
            verdict = "met" if ratio >= 0.8 else "MISSED"
            lines.append(
                f"* COPY phase of a big-load bulk_add ({label}) = {ratio:.2f}x the server-side "
                f"COPY into the bare table (target >= 0.8: {verdict})"
            )
    if E2E_BIG in table and e2e_bare:
        ratio = table[E2E_BIG]["vs_bare"]
        verdict = "met" if ratio <= 1.5 else "MISSED"
        lines.append(
            f"* load + rebuild of every index = {ratio:.2f}x COPY + HNSW build into the bare "
            f"table (target <= 1.5: {verdict})"
        )
    text_out = "\n".join(lines)
    print("\n" + text_out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(
        json.dumps(
            {"rows": n, "texts": args.texts, "slow_rows": slow_rows, "repeats": args.repeats,
             "methods": table},
            indent=2,
        )
    )  # fmt: skip
    (RESULTS / "ingest_tables.md").write_text(text_out + "\n")


if __name__ == "__main__":
    main()
