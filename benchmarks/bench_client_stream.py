"""The client's CPU per row of a bulk load: validation + hashing + binary COPY encoding.

What ``bulk_add`` does on the client before a byte reaches the server, with no
server at all: build the batches (validate every id, text and metadata, JSON
and UTF-8 encode them, SHA-256 each text) and encode them into the binary
COPY stream.  Two variants in one process, interleaved: the whole-batch fast
paths (C-level passes over a batch, the C JSON encoder called directly) and
the row-by-row checks they fall back to (the code before the fast paths, and
still what names a bad row).  CPU seconds (``time.process_time``), so a busy
machine changes the figures less than wall time would.

Usage::

    python benchmarks/bench_client_stream.py            # 100k rows, 5 rounds

Results: ``benchmarks/results/client_stream_tables.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Any

from _ingest_common import DIM, RESULTS, TEXT_KINDS, make_rows

from vectorstore.write import batch as batch_module
from vectorstore.write.batch import batches_from_arrays
from vectorstore.write.copy import encode_batch


def run(rows: dict[str, Any], fast: bool) -> tuple[float, float]:
    """(validation s, encoding s) of CPU for all rows."""
    saved = batch_module._fast_ids
    if not fast:
        batch_module._fast_ids = lambda _ids: None  # type: ignore[assignment]
    try:
        began = time.process_time()
        batches = list(batches_from_arrays(rows["texts"], rows["embeddings"], DIM,
                                           metadata=rows["metadata"],
                                           external_ids=rows["external_ids"]))  # fmt: skip
        built = time.process_time()
        for batch in batches:
            encode_batch(batch, 1)
        done = time.process_time()
    finally:
        batch_module._fast_ids = saved  # type: ignore[assignment]
    return built - began, done - built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--texts", choices=TEXT_KINDS, default="words")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = make_rows(args.rows, texts=args.texts)
    results: dict[str, list[tuple[float, float]]] = {"row by row": [], "whole batch": []}
    for _ in range(args.repeats):
        for name in results:
            results[name].append(run(rows, fast=name == "whole batch"))
    lines = [
        f"Client CPU of a bulk load, {args.rows:,} rows of {DIM}-d float32 + `{args.texts}` "
        f"texts + 3-key metadata + external ids, no server; {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}), Python {platform.python_version()}. "
        f"Median CPU seconds of {args.repeats} interleaved rounds (min-max).",
        "",
        "| checks | validate + hash s | encode s | total s | µs per row |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        totals = [a + b for a, b in runs]
        total = statistics.median(totals)
        lines.append(
            f"| {name} | {statistics.median(a for a, _ in runs):.3f} | "
            f"{statistics.median(b for _, b in runs):.3f} | {total:.3f} "
            f"[{min(totals):.3f}-{max(totals):.3f}] | {1e6 * total / args.rows:.1f} |"
        )
    text_out = "\n".join(lines)
    print(text_out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "client_stream_tables.md").write_text(text_out + "\n")


if __name__ == "__main__":
    main()
