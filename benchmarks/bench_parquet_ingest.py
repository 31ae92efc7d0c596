"""Big-file ingest: 1,000,000 rows from parquet through ``ingest``, client memory flat.

The file holds precomputed 384-d float32 vectors (``fixed_size_list``), text,
JSON metadata and external ids; it is written in row groups, chunk by chunk,
so writing it needs little memory either.  The model is not used: on 2 CPU
cores all-MiniLM-L6-v2 embeds a few hundred texts per second, hours for a
million; use ``--embed`` with ``--device cuda`` (and a smaller ``--rows`` on
CPU) to include the model; then the bare encode rate is measured too.

While ``ingest`` runs, a thread samples the process RSS every 50 ms together
with the rows done; the report shows RSS at 10 %, 50 % and 100 % of the rows
and the peak, so a leak (memory growing with rows) would be visible.  The
table is the default one without its HNSW index (``--rebuild-index`` rebuilds
it after the load, which on 2 cores takes far longer than the load itself).

Usage::

    python benchmarks/bench_parquet_ingest.py                  # 1M rows, a few minutes
    python benchmarks/bench_parquet_ingest.py --rows 200000 --embed --device cuda

Results: ``benchmarks/results/parquet_ingest.json`` and ``parquet_ingest_tables.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from _ingest_common import (
    DIM,
    HNSW,
    RESULTS,
    RssSampler,
    make_rows,
    peak_rss_mb,
    rss_mb,
    start_server,
)
from sqlalchemy import text
from sqlalchemy.orm import Session

import vectorstore as vs


def write_file(path: Path, n: int, chunk: int, with_vectors: bool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [("external_id", pa.string()), ("text", pa.string()), ("metadata", pa.string())]
    if with_vectors:
        fields.append(("embedding", pa.list_(pa.float32(), DIM)))
    schema = pa.schema(fields)
    with pq.ParquetWriter(str(path), schema) as out:
        for start in range(0, n, chunk):
            rows = make_rows(min(chunk, n - start), offset=start)
            columns: list[Any] = [
                pa.array(rows["external_ids"]),
                pa.array(rows["texts"]),
                pa.array([json.dumps(m) for m in rows["metadata"]]),
            ]
            if with_vectors:
                flat = pa.array(rows["embeddings"].reshape(-1))
                columns.append(pa.FixedSizeListArray.from_arrays(flat, DIM))
            out.write_table(pa.table(columns, schema=schema))


class Counting:
    """Wraps an embedder to time the bare encode rate inside the pipeline."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.texts = 0

    @property
    def model_name(self) -> str:
        return str(self.inner.model_name)

    @property
    def dimension(self) -> int:
        return int(self.inner.dimension)

    def embed(self, texts: Any) -> Any:
        began = time.perf_counter()
        out = self.inner.embed(texts)
        self.seconds += time.perf_counter() - began
        self.texts += len(texts)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument("--embed", action="store_true", help="embed with all-MiniLM-L6-v2")
    parser.add_argument("--device", default=None, help="cuda / cpu (with --embed)")
    parser.add_argument(
        "--encode-sample",
        type=int,
        default=20_000,
        help="texts for the bare encode rate (with --embed)",
    )
    parser.add_argument("--rebuild-index", action="store_true")
    parser.add_argument("--on-conflict", default="skip", choices=["error", "skip", "update"])
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    server, url, owned = start_server(args.data_dir)
    folder = Path(server.data_dir).parent
    path = folder / "docs.parquet"
    try:
        began = time.perf_counter()
        write_file(path, args.rows, 50_000, with_vectors=not args.embed)
        print(
            f"wrote {path.stat().st_size / 2**20:,.0f} MiB parquet in "
            f"{time.perf_counter() - began:.0f}s",
            flush=True,
        )
        engine = vs.make_engine(url)
        with engine.begin() as conn:
            conn.execute(text(f"DROP INDEX IF EXISTS {HNSW}"))
            conn.execute(text("CHECKPOINT"))
        embedder: Counting | None = None
        bare_rate = None
        if args.embed:
            model = vs.SentenceTransformerEmbedder(device=args.device, batch_size=256)
            embedder = Counting(model)
            sample = [f"warm up text number {i} with some words" for i in range(args.encode_sample)]
            model.embed(sample[:512])
            t0 = time.perf_counter()
            model.embed(sample)
            bare_rate = len(sample) / (time.perf_counter() - t0)
        base_mb = rss_mb()
        with Session(engine) as session:
            repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository(
                session,
                collection="big",
                embedder=embedder,
                embedding_model=None if embedder else "bench",
            )
            with RssSampler(interval=0.05) as sampler:
                result = vs.ingest(
                    path,
                    embedder,
                    repository=repo,
                    chunk_rows=args.chunk_rows,
                    rebuild_index=args.rebuild_index,
                    on_conflict=args.on_conflict,
                    progress=False,
                )
            session.commit()
        engine.dispose()
    finally:
        server.stop()
        if owned:
            shutil.rmtree(folder, ignore_errors=True)
    report(args, result, sampler, base_mb, bare_rate, embedder)


def report(
    args: argparse.Namespace,
    result: vs.IngestResult,
    sampler: RssSampler,
    base_mb: float,
    bare_rate: float | None,
    embedder: Counting | None,
) -> None:
    times = np.array([t for t, _ in sampler.samples])
    mbs = np.array([mb for _, mb in sampler.samples])
    total = times[-1] if len(times) else 0.0

    def at(fraction: float) -> float:
        return float(mbs[min(len(mbs) - 1, int(np.searchsorted(times, fraction * total)))])

    lines = [
        f"ingest() of a {args.rows:,}-row parquet file (384-d float32 vectors "
        f"{'embedded by all-MiniLM-L6-v2 on ' + str(args.device) if args.embed else 'precomputed'}"
        f", text, JSON metadata), chunk_rows={args.chunk_rows:,}, "
        f"on_conflict={args.on_conflict!r}; "
        f"table without HNSW index"
        f"{' (rebuilt after)' if args.rebuild_index else ''}; dedicated embedded PostgreSQL.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| rows inserted | {result.inserted:,} |",
        f"| elapsed | {result.elapsed_s:,.1f} s |",
        f"| end-to-end rate | {result.rows_per_s:,.0f} rows/s |",
        f"| time writing (encode + COPY) | {result.write_s:,.1f} s |",
        f"| time embedding | {result.embed_s:,.1f} s |",
        f"| time asking which texts are already stored | {result.lookup_s:,.1f} s |",
        f"| client RSS before ingest | {base_mb:,.0f} MiB |",
        f"| client RSS at 10 % / 50 % / 100 % of the time | {at(0.1):,.0f} / {at(0.5):,.0f} / "
        f"{at(1.0):,.0f} MiB |",
        f"| client peak RSS during ingest | {sampler.peak:,.0f} MiB |",
        f"| process peak RSS (ru_maxrss, whole run incl. writing the file) "
        f"| {peak_rss_mb():,.0f} MiB |",
    ]
    if bare_rate is not None and embedder is not None:
        lines.append(
            f"| bare encode rate (model alone, {args.encode_sample:,} texts) "
            f"| {bare_rate:,.0f} texts/s |"
        )
        lines.append(
            f"| encode rate inside the pipeline | "
            f"{embedder.texts / max(embedder.seconds, 1e-9):,.0f} texts/s |"
        )
    out = "\n".join(lines)
    print(out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "parquet_ingest.json").write_text(
        json.dumps(
            {
                "rows": args.rows,
                "inserted": result.inserted,
                "elapsed_s": result.elapsed_s,
                "rows_per_s": result.rows_per_s,
                "write_s": result.write_s,
                "embed_s": result.embed_s,
                "rss_base_mb": base_mb,
                "rss_peak_mb": sampler.peak,
                "bare_encode_rate": bare_rate,
                "rss_samples": [(round(t, 2), round(mb, 1)) for t, mb in sampler.samples[::20]],
            },
            indent=2,
        )
    )
    (RESULTS / "parquet_ingest_tables.md").write_text(out + "\n")


if __name__ == "__main__":
    main()
