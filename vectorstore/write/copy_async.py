"""Binary COPY through an async driver (asyncpg, psycopg 3 async), from inside the greenlet bridge.

Under :mod:`vectorstore.aio` the sync write path runs in SQLAlchemy's greenlet
bridge, and the DB-API connection it holds is SQLAlchemy's adapter around an
asyncpg or psycopg ``AsyncConnection``.  :func:`vectorstore.write.copy.write_copy`
hands such a connection here.  The stream is the same one, built by the same
encoder (:func:`~vectorstore.write.copy.encoded_stream`); only the sending
differs:

* **asyncpg**: ``Connection.copy_to_table(..., format="binary", source=...)``
  with an async iterator of the encoded chunks (the table, schema and columns
  given unquoted: asyncpg quotes them);
* **psycopg 3**: ``AsyncCursor.copy(sql)`` with ``AsyncLibpqWriter(flush_threshold=0)``,
  as the sync path does.

The driver coroutine is awaited with SQLAlchemy's ``await_``: the greenlet
waits, the event loop runs on.  The chunks (embedding of texts without a
vector, then encoding) are produced in the library's worker threads, one
chunk ahead of the one being sent, so the model and the encoder never run on
the loop and building the stream still overlaps sending it.

asyncpg's adapter opens its transaction lazily, on the first statement it
runs itself; a COPY sent on the driver connection first would run outside it.
So if the adapter has not begun the transaction yet, a ``SELECT 1`` through
it begins it (one round trip, only when COPY is the transaction's first
statement).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from vectorstore._async import await_, worker

__all__ = ["CopyInto", "write_copy_async"]

_END: Any = object()


@dataclass(frozen=True)
class CopyInto:
    """The COPY's table, unquoted, for drivers that build the statement themselves (asyncpg)."""

    table: str
    schema: str | None
    columns: Sequence[str]


class _Chunks:
    """An async iterator over ``chunks``, each produced in a worker thread, one ahead.

    ``error`` keeps what producing raised (a ValidationError naming a row, an
    embedder's failure): the driver reports a failed source its own way, and
    the caller wants the original.  The worker's own future is tracked (not
    the loop's wrapper of it, which a cancellation marks done at once) so the
    source is closed only once no worker is inside it.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._next: Future[bytes] | None = None
        self.error: BaseException | None = None

    def _produce(self) -> bytes:
        try:
            return next(self._chunks, _END)
        except BaseException as exc:
            self.error = exc
            raise

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._next is None:
            self._next = worker().submit(self._produce)
        chunk = await asyncio.wrap_future(self._next)
        if chunk is _END:
            self._next = None
            raise StopAsyncIteration
        # The next chunk is built while this one is sent.
        self._next = worker().submit(self._produce)
        return chunk

    def close(self) -> None:
        """Stop producing: close the source once no worker is inside it."""
        pending, self._next = self._next, None
        if pending is None:
            self._close_source()
        else:
            pending.add_done_callback(lambda _: self._close_source())

    def _close_source(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


async def _copy_asyncpg(connection: Any, into: CopyInto, source: _Chunks) -> None:
    await connection.copy_to_table(
        into.table,
        schema_name=into.schema,
        columns=list(into.columns),
        source=source,
        format="binary",
    )


async def _copy_psycopg(connection: Any, sql: str, source: _Chunks) -> None:
    from psycopg.copy import AsyncLibpqWriter

    async with connection.cursor() as cursor:
        # flush_threshold=0: each chunk reaches the server before the next is awaited.
        writer = AsyncLibpqWriter(cursor, flush_threshold=0)
        async with cursor.copy(sql, writer=writer) as copy:
            async for chunk in source:
                await copy.write(chunk)


def write_copy_async(
    adapted: Any, sql: str, chunks: Iterator[bytes], into: CopyInto | None
) -> None:
    """Send ``chunks`` through COPY on SQLAlchemy's adapted async connection ``adapted``."""
    driver = adapted.driver_connection
    module = type(driver).__module__
    source = _Chunks(chunks)
    try:
        if module.startswith("asyncpg"):
            if into is None:
                raise TypeError("a COPY through asyncpg needs its table (CopyInto)")
            if not adapted.autocommit and not driver.is_in_transaction():
                cursor = adapted.cursor()
                cursor.execute("SELECT 1")  # begins the adapter's transaction (see above)
                cursor.close()
            await_(_copy_asyncpg(driver, into, source))
        elif module.startswith("psycopg"):
            await_(_copy_psycopg(driver, sql, source))
        else:
            raise TypeError(f"async COPY needs asyncpg or psycopg 3, got a {module} connection")
    except Exception as exc:
        if source.error is not None and source.error is not exc:
            raise source.error from None
        raise
    finally:
        source.close()
