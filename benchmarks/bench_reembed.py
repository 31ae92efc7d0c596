"""Is the database the bottleneck of ``vs.reembed``?  Its rate against the bare embedder's.

The target (issue #15): a re-embedding runs at >= 0.8x the rate of the
embedder alone, so the database must not be what it waits for.  The corpus is
the stdlib's documentation (``vectorstore._stdlib_corpus``: real prose of
varied length, with module / kind metadata), loaded into a source collection
with vectors of a stand-in "old model"; each round then

1. embeds all its texts with the real model (all-MiniLM-L6-v2 on CPU, the
   bundled weights), in the pipeline's chunks: the bare ``embedder.embed`` rate;
2. re-embeds the collection with the same model through ``vs.reembed`` into a
   new collection of the same table (which has the default table-wide HNSW
   index, so every row written is also an index insert), with the sample
   check and the alias switch: rows copied / the whole call's seconds.

Rounds interleave (embed, reembed, embed, reembed, ...) so both see the same
machine; the table reports each round and the spread.

    python benchmarks/bench_reembed.py [--texts 3000] [--rounds 2] [--chunk-rows 256]

Writes ``benchmarks/results/reembed_tables.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vectorstore as vs  # noqa: E402
from vectorstore._stdlib_corpus import extract_corpus  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def _bare_rate(embedder: vs.Embedder, texts: list[str], chunk_rows: int) -> float:
    began = time.perf_counter()
    for start in range(0, len(texts), chunk_rows):
        embedder.embed(texts[start : start + chunk_rows])
    return len(texts) / (time.perf_counter() - began)


def _reset(engine: Any) -> None:
    """Back to the source alone: the alias on v1, no v2."""
    info = vs.get_alias(engine, "docs")
    if info.collection != "docs_v1":
        vs.switch_alias(engine, "docs", "docs_v1")
    vs.drop_collection(engine, "docs_v2", missing_ok=True)
    with engine.begin() as conn:
        conn.execute(text("UPDATE vectorstore_aliases SET previous_collection_id = NULL"))
        conn.execute(text("ANALYZE vectorstore_documents"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunk-rows", type=int, default=256)
    parser.add_argument("--url", default=os.environ.get("VECTORSTORE_BENCH_URL"))
    args = parser.parse_args()

    _, docs = extract_corpus(limit=args.texts)
    texts = [d.text for d in docs]
    chars = [len(t) for t in texts]
    print(f"{len(texts)} stdlib texts, {statistics.mean(chars):.0f} chars on average "
          f"(median {statistics.median(chars):.0f}, max {max(chars)})")  # fmt: skip
    server = None
    url = args.url
    if url is None:
        server = vs.EmbeddedServer(Path(tempfile.gettempdir()) / "vectorstore-bench-reembed")
        url = server.start()
    engine = vs.make_engine(url)
    vs.migrate(engine)
    with engine.begin() as conn:  # a fresh start
        conn.execute(text("DELETE FROM vectorstore_aliases"))
        conn.execute(text("DELETE FROM vectorstore_collections"))
    old = vs.HashingTestEmbedder()
    with vs.DocumentRepository.standalone(engine, collection="docs_v1", embedder=old) as repo:
        repo.bulk_add([{"text": d.text, "external_id": d.external_id, "metadata": d.metadata}
                       for d in docs])  # fmt: skip
    vs.create_alias(engine, "docs", "docs_v1")
    model = vs.SentenceTransformerEmbedder(device="cpu")
    model.embed(texts[:64])  # load and warm the model outside the measurements

    rows: list[tuple[int, float, float, float, Any]] = []
    for n in range(1, args.rounds + 1):
        _reset(engine)
        bare = _bare_rate(model, texts, args.chunk_rows)
        result = vs.reembed(engine, "docs", model, target="docs_v2", chunk_rows=args.chunk_rows,
                            progress=False)  # fmt: skip
        if not (result.switched and result.rows == len(texts)):
            raise SystemExit(f"unexpected result: {result}")
        rate = result.copied / result.elapsed_s
        rows.append((n, bare, rate, rate / bare, result))
        print(f"round {n}: embed {bare:.1f} texts/s, reembed {rate:.1f} rows/s "
              f"({rate / bare:.2f}x; embed {result.embed_s:.1f} s, write {result.write_s:.1f} s, "
              f"copy {result.copy_s:.1f} s, sample {result.sample_s:.1f} s, "
              f"whole call {result.elapsed_s:.1f} s)")  # fmt: skip
    ratios = [r[3] for r in rows]
    lines = [
        f"Re-embedding {len(texts)} stdlib texts with all-MiniLM-L6-v2 on CPU "
        f"({os.cpu_count()} cores), chunks of {args.chunk_rows} rows, into a table with a "
        "table-wide HNSW index; the whole `vs.reembed` call (diff, copy, sample check of 20 "
        "queries, switch) against `embedder.embed` alone on the same texts.",
        "",
        "| round | embedder alone (texts/s) | reembed (rows/s) | ratio | copy phase (rows/s) "
        "| its ratio | embed s | write s | sample check s | whole call s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, bare, rate, ratio, result in rows:
        copy_rate = result.copied / result.copy_s
        lines.append(
            f"| {n} | {bare:.1f} | {rate:.1f} | {ratio:.2f}x | {copy_rate:.1f} | "
            f"{copy_rate / bare:.2f}x | {result.embed_s:.1f} | {result.write_s:.1f} | "
            f"{result.sample_s:.1f} | {result.elapsed_s:.1f} |"
        )
    lines += ["", f"Ratio: median {statistics.median(ratios):.2f}x, range "
              f"{min(ratios):.2f}x - {max(ratios):.2f}x (target >= 0.8x)."]  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reembed_tables.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    engine.dispose()
    if server is not None:
        server.stop()


if __name__ == "__main__":
    main()
