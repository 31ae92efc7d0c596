"""An async buffered writer: many small ``await w.add(...)`` become few COPYs.

The async twin of :class:`~vectorstore.BufferedWriter`, with its semantics:
records are validated in ``add`` (a bad one is refused to the task that sent
it), flushed through ``bulk_add`` (binary COPY, one transaction on a
connection of its own) when ``max_rows`` are buffered, when the oldest has
waited ``max_delay`` seconds, and on exit; a failed flush writes nothing of
its batch and hands the records back in :class:`~vectorstore.WriteError`.

What differs is where the waiting happens: the age timer is a
``loop.call_later`` on the caller's event loop (no thread), a flush is a
task on that loop, and an ``asyncio.Lock`` serialises flushes, so many tasks
may ``add`` concurrently and records are written in the order they were
added.  A background flush's error is raised by the next ``add``, ``flush``
or the exit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from vectorstore.errors import ValidationError, WriteError
from vectorstore.results import BulkResult
from vectorstore.write.batch import Record, checked_record
from vectorstore.write.load import ConflictPolicy, check_policy

if TYPE_CHECKING:
    import numpy as np

__all__ = ["AsyncBufferedWriter"]


class _Loads(Protocol):
    """What the writer needs of its repository (an :class:`AsyncDocumentRepository`)."""

    @property
    def owns_transactions(self) -> bool: ...

    @property
    def dimension(self) -> int: ...

    async def bulk_add(self, data: Any, **options: Any) -> BulkResult: ...


class AsyncBufferedWriter:
    """Buffers records and writes them with COPY by row count or age; safe for many tasks.

    Create it with :meth:`AsyncDocumentRepository.writer`::

        async with repo.writer(max_rows=500, max_delay=0.5) as w:
            await w.add("an event", metadata={"user": 7})
    """

    def __init__(
        self,
        repository: _Loads,
        *,
        max_rows: int = 1000,
        max_delay: float | None = 1.0,
        on_conflict: ConflictPolicy = "error",
    ) -> None:
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows <= 0:
            raise ValidationError(f"max_rows must be a positive integer, got {max_rows!r}")
        if max_delay is not None and not max_delay > 0:
            raise ValidationError(f"max_delay must be positive or None, got {max_delay!r}")
        if not repository.owns_transactions:
            raise ValueError("an AsyncBufferedWriter's repository must own its transactions")
        self._repo = repository
        self._dimension = repository.dimension
        self.max_rows = max_rows
        self.max_delay = max_delay
        self.on_conflict = check_policy(on_conflict)
        self._buffer: list[Record] = []
        self._failed: list[Record] = []
        self._errors: list[BaseException] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.inserted = self.skipped = self.updated = self.flushes = 0

    # -- public API ----------------------------------------------------------------
    async def add(
        self,
        text: str | Record,
        *,
        embedding: Sequence[float] | np.ndarray[Any, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        external_id: str | None = None,
    ) -> None:
        """Buffer one record (validated now); flushes when ``max_rows`` are buffered.

        Raises:
            ValidationError: the record is invalid; nothing was buffered.
            WriteError: a flush failed; ``unwritten`` holds its records.
        """
        record = checked_record(text, embedding, metadata, external_id, self._dimension)
        self._raise_background_errors()
        if self._closed:
            raise WriteError("the writer is closed", unwritten=[record])
        self._buffer.append(record)
        if len(self._buffer) == 1 and self.max_delay is not None and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.max_delay, self._on_timer)
        if len(self._buffer) >= self.max_rows:
            await self._flush(raise_errors=True)

    async def flush(self) -> BulkResult:
        """Write everything buffered now; returns what this flush did."""
        self._raise_background_errors()
        return await self._flush(raise_errors=True)

    async def close(self, *, raise_errors: bool = True) -> None:
        """Flush what is left and wait for background flushes (idempotent)."""
        already, self._closed = self._closed, True
        self._cancel_timer()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if not already:
            await self._flush(raise_errors=False)
        if raise_errors:
            self._raise_background_errors()

    @property
    def pending(self) -> int:
        """Records buffered and not yet written."""
        return len(self._buffer)

    def unwritten(self) -> list[Record]:
        """Records whose flush failed and that were not yet reported by an exception."""
        return list(self._failed)

    async def __aenter__(self) -> AsyncBufferedWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # With an exception in the body, that exception wins; see unwritten().
        await self.close(raise_errors=exc_type is None)

    # -- internals -----------------------------------------------------------------
    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed or not self._buffer:
            return
        task = asyncio.get_running_loop().create_task(self._flush(raise_errors=False))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _flush(self, *, raise_errors: bool) -> BulkResult:
        async with self._lock:
            records, self._buffer = self._buffer, []
            self._cancel_timer()
            if not records:
                return BulkResult()
            return await self._write(records, raise_errors=raise_errors)

    async def _write(self, records: list[Record], *, raise_errors: bool) -> BulkResult:
        try:
            result = await self._repo.bulk_add(records, on_conflict=self.on_conflict)
        except Exception as exc:
            if raise_errors:
                unwritten, self._failed = [*self._failed, *records], []
                self._errors.clear()
                raise WriteError(
                    f"{len(unwritten)} buffered records were not written: {exc}",
                    unwritten=unwritten,
                ) from exc
            self._failed.extend(records)
            self._errors.append(exc)
            return BulkResult()
        except BaseException:
            # Cancelled mid-flush: the COPY's transaction rolled back; keep the records.
            self._buffer[:0] = records
            raise
        self.inserted += result.inserted
        self.skipped += result.skipped
        self.updated += result.updated
        self.flushes += 1
        return result

    def _raise_background_errors(self) -> None:
        if not self._errors:
            return
        errors, self._errors = self._errors, []
        unwritten, self._failed = self._failed, []
        raise WriteError(
            f"{len(unwritten)} buffered records were not written: {errors[-1]}",
            unwritten=unwritten,
        ) from errors[-1]
