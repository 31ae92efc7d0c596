"""A thread-safe buffered writer for event streams.

``add`` is the low-latency path for one row; a stream of events (a web
handler, a queue consumer) wants many small writes to become few COPYs.
:class:`BufferedWriter` collects validated records and flushes them through
``bulk_add`` (binary COPY) when ``max_rows`` are buffered or the oldest record
has waited ``max_delay`` seconds, and on exit.

Design decisions:

* Each flush is its own transaction on its own connection (a target whose
  Sessions own their transactions, on the same engine), committed when the
  flush ends: a stream
  has no enclosing transaction to join, and a background flush must not touch
  a Session that belongs to another thread.
* Records are validated in ``add``, so a bad record is refused to the caller
  that sent it and never poisons a batch of other callers' records.
* Flushes are serialised and each takes the buffer in order, so records are
  written in the order they were added.
* A failed flush writes nothing of its batch (one COPY, one transaction); the
  batch's records are handed back in :class:`~vectorstore.WriteError` as
  ``unwritten`` (in order) so the caller can retry them.  A background flush
  that fails keeps its records until the next ``add``, ``flush`` or ``close``,
  which raises the error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any

import numpy as np

from vectorstore._target import Target
from vectorstore.errors import ValidationError, WriteError
from vectorstore.results import BulkResult

from .batch import DEFAULT_CHUNK_ROWS, Record, batches_from_records, checked_record
from .load import ConflictPolicy, bulk_add, check_policy

__all__ = ["BufferedWriter"]


class BufferedWriter:
    """Buffers records and writes them with COPY by row count or age; thread-safe.

    Create it with :meth:`DocumentRepository.writer`::

        with repo.writer(max_rows=500, max_delay=0.5) as w:
            w.add("an event", metadata={"user": 7})

    Args:
        target: the collection, model and embedder; its Sessions must own their
            transactions (the repository hands in a standalone one).
        max_rows: flush when this many records are buffered.
        max_delay: flush when the oldest buffered record is this old (seconds);
            None flushes only by row count, ``flush()`` and exit.
        on_conflict: the conflict policy of every flush (see ``bulk_add``).
    """

    def __init__(
        self,
        target: Target[Any],
        *,
        max_rows: int = 1000,
        max_delay: float | None = 1.0,
        on_conflict: ConflictPolicy = "error",
    ) -> None:
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows <= 0:
            raise ValidationError(f"max_rows must be a positive integer, got {max_rows!r}")
        if max_delay is not None and not max_delay > 0:
            raise ValidationError(f"max_delay must be positive or None, got {max_delay!r}")
        if not target.sessions.owns_transactions:
            raise ValueError("a BufferedWriter's target must own its transactions")
        self._target = target
        self._dimension = target.dimension
        self.max_rows = max_rows
        self.max_delay = max_delay
        self.on_conflict = check_policy(on_conflict)
        self._buffer: list[Record] = []
        self._oldest: float | None = None
        self._failed: list[Record] = []
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._flushing = False
        self._flush_lock = threading.Lock()
        self._closed = False
        self.inserted = self.skipped = self.updated = self.flushes = 0
        self._timer: threading.Thread | None = None
        if max_delay is not None:
            self._timer = threading.Thread(
                target=self._run_timer, name="vectorstore-writer", daemon=True
            )
            self._timer.start()

    # -- public API ----------------------------------------------------------------
    def add(
        self,
        text: str | Record,
        *,
        embedding: Sequence[float] | np.ndarray[Any, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        external_id: str | None = None,
    ) -> None:
        """Buffer one record (validated now); may flush in the calling thread.

        Raises:
            ValidationError: the record is invalid; nothing was buffered.
            WriteError: a flush failed; ``unwritten`` holds its records.
        """
        record = checked_record(text, embedding, metadata, external_id, self._dimension)
        self._raise_background_errors()
        with self._lock:
            if self._closed:
                raise WriteError("the writer is closed", unwritten=[record])
            self._buffer.append(record)
            if self._oldest is None:
                self._oldest = time.monotonic()
                self._wake.notify()
            full = len(self._buffer) >= self.max_rows
        if full:
            self._flush(raise_errors=True)

    def flush(self) -> BulkResult:
        """Write everything buffered now; returns what this flush did."""
        self._raise_background_errors()
        return self._flush(raise_errors=True)

    def close(self, *, raise_errors: bool = True) -> None:
        """Flush what is left and stop the timer thread (idempotent).

        Raises:
            WriteError: some records could not be written (with ``raise_errors``;
                otherwise they stay available from :meth:`unwritten`).
        """
        with self._lock:
            already = self._closed
            self._closed = True
            self._wake.notify_all()
        if self._timer is not None:
            self._timer.join()
        if not already:
            self._flush(raise_errors=False)
        if raise_errors:
            self._raise_background_errors()

    def wait_until_flushed(self, timeout: float | None = None) -> bool:
        """Block until nothing is buffered and no flush is running; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._buffer or self._flushing:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    @property
    def pending(self) -> int:
        """Records buffered and not yet written."""
        with self._lock:
            return len(self._buffer)

    def __enter__(self) -> BufferedWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # With an exception in the body, that exception wins; see unwritten().
        self.close(raise_errors=exc_type is None)

    def unwritten(self) -> list[Record]:
        """Records whose flush failed and that were not yet reported by an exception."""
        with self._lock:
            return list(self._failed)

    # -- internals -----------------------------------------------------------------
    def _flush(self, *, raise_errors: bool) -> BulkResult:
        with self._flush_lock:
            with self._lock:
                records, self._buffer = self._buffer, []
                self._oldest = None
                self._flushing = bool(records)
            if not records:
                return BulkResult()
            try:
                return self._write(records, raise_errors=raise_errors)
            finally:
                with self._lock:
                    self._flushing = False
                    self._idle.notify_all()

    def _write(self, records: list[Record], *, raise_errors: bool) -> BulkResult:
        try:
            batches = batches_from_records(records, self._dimension, chunk_rows=DEFAULT_CHUNK_ROWS)
            result, collection = bulk_add(self._target, batches, self.on_conflict)
            if self._target.collection is None and collection.alias is None:
                # The first flush created the collection: later flushes need not look
                # (through an alias each flush resolves it again: schema.aliases).
                self._target = replace(self._target, collection=collection)
        except Exception as exc:
            if raise_errors:
                with self._lock:
                    unwritten, self._failed = [*self._failed, *records], []
                    self._errors.clear()
                raise WriteError(
                    f"{len(unwritten)} buffered records were not written: {exc}",
                    unwritten=unwritten,
                ) from exc
            with self._lock:
                self._failed.extend(records)
                self._errors.append(exc)
            return BulkResult()
        with self._lock:
            self.inserted += result.inserted
            self.skipped += result.skipped
            self.updated += result.updated
            self.flushes += 1
        return result

    def _raise_background_errors(self) -> None:
        with self._lock:
            if not self._errors:
                return
            errors, self._errors = self._errors, []
            unwritten, self._failed = self._failed, []
        raise WriteError(
            f"{len(unwritten)} buffered records were not written: {errors[-1]}",
            unwritten=unwritten,
        ) from errors[-1]

    def _run_timer(self) -> None:
        assert self.max_delay is not None
        while True:
            with self._lock:
                while not self._closed:
                    if self._oldest is None:
                        self._wake.wait()
                        continue
                    remaining = self._oldest + self.max_delay - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(remaining)
                if self._closed:
                    return
            self._flush(raise_errors=False)
