"""Spark ingest against single-process ingest, side by side (interleaved repetitions).

1. Precomputed vectors: ``vectorstore.integrations.spark.write`` of N rows read
   from parquet (2 partitions, local[2]) against one process's ``bulk_add`` of
   the same rows from memory (``on_conflict="skip"``, the policy Spark ingest
   uses, and ``"error"``, a plain COPY).  Spark's own share is measured by a
   no-op pass over the same DataFrame (read, Arrow batches to Python workers,
   collect): what any Spark sink pays before it writes a row.
2. The real model on CPU: the bare ``embed`` rate of all-MiniLM-L6-v2 in one
   process, single-process ``ingest``, and Spark with 2 partitions (one torch
   thread each, model loaded once per Python worker; a warm-up job loads it,
   the timed job then finds it cached).

Usage: python benchmarks/bench_spark.py [--rows 100000] [--model-rows 1000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _ingest_common import RESULTS, make_rows, start_server

import vectorstore as vs

COLLECTION = "bench_spark"
MODEL_COLLECTION = "bench_spark_model"


def spark_session(cores: int) -> Any:
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("vectorstore-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "2g")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def write_parquet(rows: dict[str, Any], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(rows["texts"])
    dim = rows["embeddings"].shape[1]
    table = pa.table({
        "id": rows["external_ids"],
        "text": rows["texts"],
        "tag": [m["tag"] for m in rows["metadata"]],
        "i": [m["i"] for m in rows["metadata"]],
        "embedding": pa.FixedSizeListArray.from_arrays(
            pa.array(rows["embeddings"].reshape(-1)), dim
        ).cast(pa.list_(pa.float32())),
    })  # fmt: skip
    assert table.num_rows == n
    pq.write_table(table, path, row_group_size=max(1, n // 8))


def reset(url: Any) -> None:
    engine = vs.make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE vectorstore_documents")
    engine.dispose()


BULK_SPLITS: list[Any] = []  # each bulk_add's BulkResult (its COPY phase and rebuild)


def run_bulk_add(url: Any, rows: dict[str, Any], policy: str) -> float:
    started = time.perf_counter()
    with vs.DocumentRepository.standalone(url, collection=COLLECTION,
                                          embedding_model="precomputed") as repo:  # fmt: skip
        result = repo.bulk_add(rows["texts"], embeddings=rows["embeddings"],
                               metadata=rows["metadata"], external_ids=rows["external_ids"],
                               on_conflict=policy, rebuild_index=True)  # type: ignore[arg-type]  # fmt: skip
    assert result.inserted == len(rows["texts"]), result
    BULK_SPLITS.append((policy, result))
    return time.perf_counter() - started


def run_spark(
    url: Any, df: Any, n: int, collection: str = COLLECTION, **options: Any
) -> tuple[float, Any]:
    from vectorstore.integrations import spark as vs_spark

    started = time.perf_counter()
    result = vs_spark.write(df, url, collection=collection, id_col="id",
                            metadata_cols=["tag", "i"], **options)  # fmt: skip
    assert result.inserted == n, result
    return time.perf_counter() - started, result


def run_noop(df: Any) -> float:
    import pyarrow as pa

    def count(batches: Any) -> Any:
        rows = sum(b.num_rows for b in batches)
        yield pa.RecordBatch.from_pylist([{"rows": rows}])

    started = time.perf_counter()
    df.mapInArrow(count, "rows LONG").collect()
    return time.perf_counter() - started


class _CpuModel:
    """A picklable factory: the real model on CPU with ``threads`` torch threads."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def __call__(self) -> vs.Embedder:
        import torch

        torch.set_num_threads(self.threads)
        return vs.SentenceTransformerEmbedder(device="cpu")


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--model-rows", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--skip-model", action="store_true")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    server, url, owned = start_server(args.data_dir)
    work = Path(tempfile.mkdtemp(prefix="vs-bench-spark-"))
    spark = spark_session(args.partitions)
    lines: list[str] = []
    try:
        rows = make_rows(args.rows)
        write_parquet(rows, work / "rows.parquet")
        df = spark.read.parquet(str(work / "rows.parquet")).repartition(args.partitions)
        df = df.cache()
        df.count()
        # Warm-up: start the Python workers (they import vectorstore once and are reused).
        run_spark(url, df.limit(64).repartition(args.partitions), 64,
                  embedding_col="embedding", embedding_model="precomputed")  # fmt: skip
        times: dict[str, list[float]] = {"bulk_add skip": [], "bulk_add error": [],
                                         "spark write": [], "spark no-op pass": []}  # fmt: skip
        splits: list[Any] = []
        for _ in range(args.rounds):
            for method in times:
                reset(url)
                if method == "spark no-op pass":
                    times[method].append(run_noop(df))
                elif method == "spark write":
                    took, result = run_spark(url, df, args.rows, embedding_col="embedding",
                                             embedding_model="precomputed")  # fmt: skip
                    times[method].append(took)
                    splits.append(result)
                else:
                    times[method].append(run_bulk_add(url, rows, method.split()[1]))
        best = {m: min(v) for m, v in times.items()}
        lines += [
            f"## Precomputed vectors: {args.rows:,} rows, {args.partitions} partitions, "
            f"{args.rounds} interleaved rounds, {os.cpu_count()} cores",
            "",
            "| method | seconds (best) | spread | rows/s | vs bulk_add skip |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for m, v in times.items():
            lines.append(
                f"| {m} | {best[m]:.2f} | {spread(v)} | {args.rows / best[m]:,.0f} | "
                f"{best['bulk_add skip'] / best[m]:.2f}x |"
            )
        last = splits[-1]
        lines += ["", f"Spark write split (last round, summed over partitions): "
                  f"write {last.write_s:.2f} s, index rebuild + ANALYZE {last.index_s:.2f} s, "
                  f"elapsed {last.elapsed_s:.2f} s"]  # fmt: skip
        for policy in ("skip", "error"):
            done = [r for p, r in BULK_SPLITS if p == policy][-1]
            lines.append(f"bulk_add {policy} split (last round): COPY phase {done.write_s:.2f} s, "
                         f"index rebuild + ANALYZE {done.index_s:.2f} s")  # fmt: skip
        lines.append("")
        print("\n".join(lines), flush=True)  # each section as soon as it is measured
        if not args.skip_model:
            lines += model_section(spark, url, args)
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
        if owned:
            server.stop()
    out = "\n".join(lines)
    print(out)
    (RESULTS / "spark_tables.md").write_text(out + "\n")


def model_section(spark: Any, url: Any, args: argparse.Namespace) -> list[str]:
    from _ingest_common import make_texts

    n = args.model_rows
    texts = make_texts(n)
    ids = [f"m-{i}" for i in range(n)]
    df = spark.createDataFrame(list(zip(ids, texts, ["t"] * n, range(n), strict=True)),
                               "id STRING, text STRING, tag STRING, i LONG")  # fmt: skip
    df = df.repartition(args.partitions).cache()
    df.count()
    threads = max(1, (os.cpu_count() or 1) // args.partitions)
    factory = _CpuModel(threads)
    bare = vs.SentenceTransformerEmbedder(device="cpu")
    bare.embed(texts[:32])  # load
    # Warm-up: each Python worker loads the model once and keeps it.
    reset(url)
    run_spark(url, df.limit(args.partitions * 8).repartition(args.partitions), args.partitions * 8,
              collection=MODEL_COLLECTION, embedder=factory, rebuild_index=False,
              embedding_model=vs.DEFAULT_MODEL_NAME)  # fmt: skip
    times: dict[str, list[float]] = {"bare embed (1 process)": [], "single-process ingest": [],
                                     "spark write (2 partitions)": []}  # fmt: skip
    splits = []
    for _ in range(args.rounds):
        for method in times:
            reset(url)
            started = time.perf_counter()
            if method.startswith("bare"):
                bare.embed(texts)
            elif method.startswith("single"):
                with vs.DocumentRepository.standalone(url, collection=MODEL_COLLECTION,
                                                      embedder=bare) as repo:  # fmt: skip
                    repo.ingest(texts, skip_known=False, progress=False)
            else:
                _, result = run_spark(url, df, n, collection=MODEL_COLLECTION,
                                      embedder=factory, rebuild_index=False,
                                      embedding_model=vs.DEFAULT_MODEL_NAME)
                splits.append(result)
            times[method].append(time.perf_counter() - started)
    best = {m: min(v) for m, v in times.items()}
    bare_rate = n / best["bare embed (1 process)"]
    lines = [
        f"## The real model on CPU: {n:,} texts (~250 characters), {args.rounds} rounds; "
        f"Spark: {args.partitions} partitions x {threads} torch thread(s)",
        "",
        "| method | seconds (best) | spread | texts/s | vs bare embed |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for m, v in times.items():
        lines.append(f"| {m} | {best[m]:.2f} | {spread(v)} | {n / best[m]:,.0f} | "
                     f"{n / best[m] / bare_rate:.2f}x |")  # fmt: skip
    last = splits[-1]
    lines += ["", f"Spark split (last round, summed over partitions): embedding "
              f"{last.embed_s:.2f} s, staging + merge {last.write_s:.2f} s", ""]  # fmt: skip
    return lines


if __name__ == "__main__":
    main()
