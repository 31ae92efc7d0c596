"""A concurrent read/write workload, shared by ``tests/test_load.py`` and
``benchmarks/bench_load.py``.

Writer threads cycle through the write paths (``add`` of one document,
``bulk_add`` of a small batch, and ``add`` of one record to a
:class:`~vectorstore.BufferedWriter` that all writer threads share); reader
threads run filtered ``nearest``.  All threads start together (a barrier) and
stop after ``ops`` operations each or at ``deadline_s``, whichever comes first.

Every write that returned is *acknowledged*: its external ids are recorded so
the caller can check that each acknowledged write is readable afterwards and
nothing else is there.  A record handed to the buffered writer is acknowledged
once the writer has been closed without error (its flushes - by row count in
the adding threads, by age in the writer's timer thread, and the final one at
close - have committed); a failed flush is an error of the run.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine

import vectorstore as vs

DIM = vs.DEFAULT_DIMENSION
BULK_ROWS = 10
#: The shared buffered writer flushes at this many records or after this delay.
BUFFER_ROWS = 16
BUFFER_DELAY_S = 0.02
WRITE_OPS = ("add", "bulk_add", "writer")
ROWS_PER_OP = {"add": 1, "bulk_add": BULK_ROWS, "writer": 1}
#: Readers filter on ``writer = n % WRITER_BUCKETS`` (seeded rows use the same buckets).
WRITER_BUCKETS = 8


@dataclass
class LoadReport:
    """What a run did: acknowledged ids, errors and per-operation latencies (seconds)."""

    acked: set[str] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    rows_written: int = 0
    elapsed_s: float = 0.0
    #: Ids handed to the buffered writer, acknowledged when it closes cleanly.
    buffered: set[str] = field(default_factory=set)
    #: Flushes of the buffered writer (by row count, age and close).
    flushes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self, op: str, seconds: float, ids: list[str] | None = None, *, pending: bool = False
    ) -> None:
        with self.lock:
            self.latencies.setdefault(op, []).append(seconds)
            if ids and pending:
                self.buffered.update(ids)
            elif ids:
                self.acked.update(ids)
                self.rows_written += len(ids)


def expected_rows(writers: int, ops: int, write_ops: tuple[str, ...] = WRITE_OPS) -> int:
    """Rows a complete run writes (every thread did all ``ops`` operations)."""
    return writers * sum(ROWS_PER_OP[write_ops[n % len(write_ops)]] for n in range(ops))


def _vectors(seed: int, n: int) -> np.ndarray[Any, Any]:
    matrix = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def _writer(
    engine: Engine, collection: str, w: int, ops: int, deadline: float, report: LoadReport,
    start: threading.Barrier, write_ops: tuple[str, ...], buffered: vs.BufferedWriter | None,
) -> None:  # fmt: skip
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection=collection, embedding_model="load"
    )
    start.wait()
    for n in range(ops):
        if time.perf_counter() > deadline:
            return
        op = write_ops[n % len(write_ops)]
        began = time.perf_counter()
        if op == "writer":
            assert buffered is not None
            ext = f"w{w}-{n}"
            buffered.add(f"writer {w} op {n} buffered", embedding=_vectors(w * 100_003 + n, 1)[0],
                         metadata={"writer": w, "n": n}, external_id=ext)  # fmt: skip
            report.record(op, time.perf_counter() - began, [ext], pending=True)
            continue
        if op == "add":
            ext = f"w{w}-{n}"
            repo.add(f"writer {w} op {n}", embedding=_vectors(w * 100_003 + n, 1)[0],
                     metadata={"writer": w, "n": n}, external_id=ext)  # fmt: skip
            ids = [ext]
        else:
            ids = [f"w{w}-{n}-{j}" for j in range(BULK_ROWS)]
            repo.bulk_add(
                [f"writer {w} op {n} row {j}" for j in range(BULK_ROWS)],
                embeddings=_vectors(w * 100_003 + n, BULK_ROWS),
                metadata=[{"writer": w, "n": n} for _ in range(BULK_ROWS)],
                external_ids=ids,
            )
        report.record(op, time.perf_counter() - began, ids)


def _reader(
    engine: Engine, collection: str, r: int, ops: int, deadline: float, report: LoadReport,
    start: threading.Barrier,
) -> None:  # fmt: skip
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection=collection, embedding_model="load"
    )
    queries = _vectors(10_000_000 + r, ops)
    start.wait()
    for n in range(ops):
        if time.perf_counter() > deadline:
            return
        spec: dict[str, Any] = (
            {"writer": n % WRITER_BUCKETS}
            if n % 2 == 0
            else {"n": {"$gte": n % 5}, "writer": {"$ne": r}}
        )
        began = time.perf_counter()
        hits = repo.nearest(queries[n], k=5, filter=spec)
        report.record("nearest", time.perf_counter() - began)
        for hit in hits:
            meta = hit.document.metadata_
            if n % 2 == 0 and meta.get("writer") != n % WRITER_BUCKETS:
                raise AssertionError(f"filter violated: {meta}")


def run_load(
    engine: Engine,
    collection: str,
    *,
    writers: int = 8,
    readers: int = 8,
    ops: int = 20,
    duration_s: float = 60.0,
    write_ops: tuple[str, ...] = WRITE_OPS,
) -> LoadReport:
    """Run the workload; returns the report (errors are collected, not raised)."""
    report = LoadReport()
    buffered: vs.BufferedWriter | None = None
    if writers and "writer" in write_ops:
        buffered = vs.DocumentRepository.standalone(
            engine, collection=collection, embedding_model="load"
        ).writer(max_rows=BUFFER_ROWS, max_delay=BUFFER_DELAY_S)
    start = threading.Barrier(writers + readers + 1)
    deadline = time.perf_counter() + duration_s

    def guarded(fn: Callable[..., None], *args: Any) -> Callable[[], None]:
        def body() -> None:
            try:
                fn(*args)
            except BaseException as exc:  # collected for the caller's assertion
                with report.lock:
                    report.errors.append(exc)
                start.abort()

        return body

    threads = [
        threading.Thread(target=guarded(_writer, engine, collection, w, ops, deadline, report,
                                        start, write_ops, buffered), name=f"writer-{w}")
        for w in range(writers)
    ] + [
        threading.Thread(target=guarded(_reader, engine, collection, r, ops, deadline, report,
                                        start), name=f"reader-{r}")
        for r in range(readers)
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait()
    for thread in threads:
        thread.join()
    if buffered is not None:
        try:
            buffered.close()  # the last flush; raises WriteError if any flush failed
        except BaseException as exc:  # collected for the caller's assertion
            report.errors.append(exc)
        else:
            report.acked.update(report.buffered)
            report.rows_written += len(report.buffered)
            if buffered.inserted != len(report.buffered):
                report.errors.append(AssertionError(
                    f"the writer inserted {buffered.inserted} of {len(report.buffered)} records"
                ))  # fmt: skip
        report.flushes = buffered.flushes
    report.elapsed_s = time.perf_counter() - began
    return report
