"""Run an iterator in a background thread, a bounded number of items ahead.

The write path overlaps Python work with the database: the COPY encoder builds
the next chunk while the driver sends the current one, and the ingest pipeline
reads and validates the next chunk of a file while the current one is copied.
Both use this one helper.  The queue is bounded so memory stays flat; an
exception raised by the source is handed to the consumer and re-raised there;
``close()`` stops the thread even when the consumer gave up early.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from ._async import blocking

__all__ = ["Prefetch"]

T = TypeVar("T")


class Prefetch(Generic[T]):
    """Iterate ``source`` in a thread named ``name``, at most ``depth`` items ahead."""

    _DONE = object()

    def __init__(self, source: Iterator[T], *, depth: int = 2, name: str = "vectorstore") -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _run(self, source: Iterator[T]) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer thread, re-raised there
            self._error = exc
        self._put(self._DONE)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        while True:
            # Inside the async bridge the wait runs in a worker; the loop runs on.
            item = blocking(self._get)
            if item is self._DONE:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def _get(self) -> Any:
        """The next item; the end once ``close()`` was called (a waiter is never stranded)."""
        while True:
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return self._DONE

    @property
    def error(self) -> BaseException | None:
        """The exception the source raised, if any."""
        return self._error

    def close(self) -> None:
        """Stop the thread (it may be blocked on a full queue) and wait for it."""
        self._stop.set()
        self._thread.join()
