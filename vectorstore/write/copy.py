"""Binary COPY: the encoder and the psycopg2 / psycopg 3 writers (async ones: :mod:`.copy_async`).

The stream is PostgreSQL's binary COPY format (manual: "COPY", section "Binary
Format"): an 11-byte signature, two int32 words, then one tuple per row (int16
field count, and per field an int32 byte length or -1 for NULL followed by the
field's binary representation), then an int16 -1 trailer.  All integers are
big-endian.  Field representations used here:

* ``int4``: 4 bytes; ``text``: the UTF-8 bytes; ``bytea``: the raw bytes;
* ``jsonb``: a version byte (1) followed by the JSON text;
* ``vector`` (pgvector): int16 dimension, int16 unused (0), then ``dim``
  big-endian float32 values.

Every fixed-width part of a row (field count, lengths, the collection id, the
hash, the whole vector) is built for all rows of a batch at once with numpy
structured arrays; only the variable-length text, metadata and external id are
per-row byte strings, interleaved with ``bytes.join`` (a C loop).  Encoding
runs in a producer thread while the caller's thread feeds the driver, so
building the stream overlaps sending it.

psycopg2 loses the server's reason when a connection dies mid-COPY (see
:func:`_psycopg2_printed_errors`); :func:`write_copy` recovers it.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import numpy as np
from sqlalchemy.engine import AdaptedConnection

from vectorstore._prefetch import Prefetch

from .batch import Batch
from .copy_async import CopyInto, write_copy_async

__all__ = [
    "COPY_COLUMNS",
    "SIGNATURE",
    "CopyInto",
    "copy_sql",
    "decode_vectors",
    "encode_batch",
    "encoded_stream",
    "write_copy",
]

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
COPY_COLUMNS = ("collection_id", "content_hash", "embedding", "external_id", "text", "metadata")
_HASH_BYTES = 32
# Chunks handed to psycopg2's read(): 1 MiB keeps Python call overhead negligible
# against the socket writes without holding much memory.
_READ_SIZE = 1 << 20
# Encoded batches waiting to be sent: two keep the sender busy while the encoder
# works on the next one; more would only hold memory.
_QUEUE_DEPTH = 2

# Column order is ours to choose: every fixed-width field comes first so that,
# per row, the field count, the collection id, the hash, the whole vector and the
# external id's length word form one numpy record (one slice per row).  Only the
# variable-length external id, text and metadata (with their length words) are
# per-row pieces.
# Length words of texts and metadata come from lookup tables of ready-made
# bytes objects (a C-level ``map``), 20x cheaper per row than slicing a buffer;
# lengths beyond the table (rare: texts over 8 KiB) are packed one by one.
_LUT_SIZE = 8192
_LEN4 = [i.to_bytes(4, "big") for i in range(_LUT_SIZE)]
# jsonb's field length counts the version byte (1) that follows the length word.
_META_HEAD = [(i + 1).to_bytes(4, "big") + b"\x01" for i in range(_LUT_SIZE)]


def _fixed_dtype(dim: int) -> np.dtype[Any]:
    return np.dtype(
        [
            ("fields", ">i2"),
            ("len_cid", ">i4"),
            ("cid", ">i4"),
            ("len_hash", ">i4"),
            ("hash", f"S{_HASH_BYTES}"),
            ("len_vec", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("values", ">f4", (dim,)),
            ("len_ext", ">i4"),
        ]
    )


def _rows(blob: bytes, n: int) -> Iterator[bytes]:
    """``n`` equal-width row slices of ``blob`` (``map`` over slices: the loop stays in C)."""
    width = len(blob) // n
    return map(
        blob.__getitem__,
        map(slice, range(0, n * width, width), range(width, (n + 1) * width, width)),
    )


def _length_words(pieces: list[bytes], table: list[bytes], extra: bytes = b"") -> list[bytes]:
    lengths = list(map(len, pieces))
    if lengths and max(lengths) < _LUT_SIZE:
        return list(map(table.__getitem__, lengths))
    return [
        table[n] if n < _LUT_SIZE else (n + len(extra)).to_bytes(4, "big") + extra for n in lengths
    ]


def encode_batch(batch: Batch, collection_id: int) -> bytes:
    """The binary COPY tuples (no signature, no trailer) of every row of ``batch``."""
    n = len(batch)
    if n == 0:
        return b""
    if batch.needs_embedding:  # pragma: no cover - guarded by callers
        raise ValueError("batch has rows without embeddings")
    ext_bytes = [b"" if e is None else e.encode("utf-8") for e in batch.external_ids]
    dim = batch.embeddings.shape[1]

    fixed = np.empty(n, dtype=_fixed_dtype(dim))
    fixed["fields"] = len(COPY_COLUMNS)
    fixed["len_cid"] = 4
    fixed["cid"] = collection_id
    fixed["len_hash"] = _HASH_BYTES
    fixed["hash"] = batch.hashes
    fixed["len_vec"] = 4 + 4 * dim
    fixed["dim"] = dim
    fixed["unused"] = 0
    fixed["values"] = batch.embeddings  # float32 -> big-endian float32, one numpy pass
    ext_len = np.fromiter(map(len, ext_bytes), dtype=np.int32, count=n)
    ext_len[[i for i, e in enumerate(batch.external_ids) if e is None]] = -1
    fixed["len_ext"] = ext_len

    blob = fixed.tobytes()
    del fixed  # only the bytes are needed from here: a vector-sized buffer less at the peak
    parts = zip(
        _rows(blob, n),
        ext_bytes,
        _length_words(batch.text_bytes, _LEN4),
        batch.text_bytes,
        _length_words(batch.metadata_json, _META_HEAD, b"\x01"),
        batch.metadata_json,
        strict=True,
    )
    return b"".join(itertools.chain.from_iterable(parts))


def encoded_stream(batches: Iterable[Batch], collection_id: int) -> Iterator[bytes]:
    """Signature, one encoded chunk per batch, trailer."""
    yield SIGNATURE
    for batch in batches:
        if len(batch):
            yield encode_batch(batch, collection_id)
    yield TRAILER


class _Reader:
    """A file-like ``read(size)`` over an iterator of byte chunks (for psycopg2)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        while not self._buffer:
            try:
                self._buffer = memoryview(next(self._chunks))
            except StopIteration:
                return b""
        if size < 0 or size >= len(self._buffer):
            out, self._buffer = bytes(self._buffer), memoryview(b"")
            return out
        out = bytes(self._buffer[:size])
        self._buffer = self._buffer[size:]
        return out

    readline = read


class _PrintedErrors(threading.local):
    """Per thread: the list collecting psycopg2 errors while a COPY runs (None otherwise)."""

    errors: list[BaseException] | None = None
    in_hook: bool = False


_printed = _PrintedErrors()
_hook_lock = threading.Lock()
_hook_users = 0
_previous_hook: Any = None


def _collecting_excepthook(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    errors = _printed.errors
    cause = value.__cause__
    if (
        errors is not None
        and isinstance(value, SystemError)
        and cause is not None
        and type(cause).__module__.startswith("psycopg2")
    ):
        errors.append(cause)
        return
    # Not ours: hand it on.  A hook installed after ours that calls ours back
    # must not recurse forever; the interpreter's own hook ends such a chain.
    previous = _previous_hook if not _printed.in_hook else None
    _printed.in_hook = True
    try:
        (previous or sys.__excepthook__)(kind, value, tb)
    finally:
        _printed.in_hook = False


@contextmanager
def _psycopg2_printed_errors() -> Iterator[list[BaseException]]:
    """Collect, instead of printing, the errors psycopg2 prints during a COPY.

    When the server ends a connection in the middle of ``copy_expert`` (an
    administrator's ``pg_terminate_backend``, a shutdown), libpq hands psycopg2
    two failed results: the server's FATAL message, then the broken socket.
    psycopg2 (2.9) raises the first and, still holding it, builds the second
    by calling the connection's decoder, which fails with ``SystemError:
    <function decode> returned a result with an exception set`` (chained to
    the first); psycopg2 reports that with ``PyErr_Print`` - to stderr, through
    ``sys.excepthook`` - and raises only the second ("invalid socket").  The
    server's reason and SQLSTATE would be lost and stderr polluted.

    While the block runs, a ``sys.excepthook`` wrapper collects those psycopg2
    errors (the cause of such a SystemError) for this thread; anything else,
    and other threads' errors, go to the previous hook unchanged.  The hook is
    installed while at least one COPY runs and removed after the last, unless
    someone replaced it meanwhile.  ``PyErr_Print`` also records what it
    printed in ``sys.last_*``; those are restored, since nothing was printed.
    """
    global _hook_users, _previous_hook
    last = {name: getattr(sys, name, _MISSING) for name in _SYS_LAST}
    collected: list[BaseException] = []
    with _hook_lock:
        if _hook_users == 0:
            _previous_hook = sys.excepthook
            sys.excepthook = _collecting_excepthook
        _hook_users += 1
    _printed.errors = collected
    try:
        yield collected
    finally:
        _printed.errors = None
        with _hook_lock:
            _hook_users -= 1
            if _hook_users == 0 and sys.excepthook is _collecting_excepthook:
                sys.excepthook = _previous_hook
        if collected:
            for name, value in last.items():
                if value is _MISSING:
                    if hasattr(sys, name):
                        delattr(sys, name)
                else:
                    setattr(sys, name, value)


_MISSING = object()
# What PyErr_Print records about the exception it printed (3.12 adds last_exc).
_SYS_LAST = ("last_type", "last_value", "last_traceback", "last_exc")


def copy_sql(table: str, columns: Sequence[str]) -> str:
    """``COPY <table> (<columns>) FROM STDIN (FORMAT BINARY)``; names already quoted."""
    return f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"


def write_copy(
    dbapi_connection: Any, sql: str, chunks: Iterator[bytes], into: CopyInto | None = None
) -> None:
    """Send ``chunks`` through COPY on a raw psycopg2 or psycopg 3 connection.

    SQLAlchemy's adapter of an async driver (the connection inside the greenlet
    bridge of :mod:`vectorstore.aio`) is handed to
    :func:`~vectorstore.write.copy_async.write_copy_async`; ``into`` names the
    table for asyncpg, which builds the statement itself.

    Encoding (the ``chunks`` iterator) runs in a producer thread; an exception
    raised while producing aborts the COPY and is re-raised here, so the
    statement fails as a whole.  When psycopg2 had to drop the server's own
    error for a later one (a connection ended mid-COPY, see
    :func:`_psycopg2_printed_errors`), the server's error is raised: it has the
    reason, the SQLSTATE and the COPY line.
    """
    if isinstance(dbapi_connection, AdaptedConnection):
        write_copy_async(dbapi_connection, sql, chunks, into)
        return
    producer: Prefetch[bytes] = Prefetch(
        chunks, depth=_QUEUE_DEPTH, name="vectorstore-copy-encoder"
    )
    try:
        module = type(dbapi_connection).__module__
        if module.startswith("psycopg2"):
            with _psycopg2_printed_errors() as dropped:
                try:
                    with dbapi_connection.cursor() as cursor:
                        cursor.copy_expert(sql, _Reader(iter(producer)), size=_READ_SIZE)
                except Exception:
                    if dropped and producer.error is None:
                        raise dropped[0] from None
                    raise
        elif module.startswith("psycopg"):
            from psycopg.copy import LibpqWriter

            # flush_threshold=0: each chunk is flushed to the server before the
            # next one is awaited.  psycopg's default keeps up to 1 MiB in libpq's
            # buffer, unsent while the producer is busy (e.g. embedding the next
            # chunk); psycopg2 holds back at most 8 KiB.
            with (
                dbapi_connection.cursor() as cursor,
                cursor.copy(sql, writer=LibpqWriter(cursor, flush_threshold=0)) as copy,
            ):
                for chunk in producer:
                    copy.write(chunk)
        else:
            raise TypeError(f"COPY needs psycopg2 or psycopg 3, got a {module} connection")
    except Exception as exc:
        # psycopg2 reports an exception raised by read() as QueryCanceled; the
        # caller wants the original (e.g. the ValidationError naming the row).
        if producer.error is not None and producer.error is not exc:
            raise producer.error from None
        raise
    finally:
        producer.close()


def decode_vectors(data: bytes) -> np.ndarray[Any, np.dtype[np.float32]]:
    """pgvector's binary representation -> float32 vector (used by tests and export)."""
    dim = int.from_bytes(data[:2], "big")
    return np.frombuffer(data, dtype=">f4", count=dim, offset=4).astype(np.float32)
