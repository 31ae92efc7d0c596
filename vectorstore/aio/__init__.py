"""The async API: :class:`AsyncDocumentRepository` for asyncio apps (FastAPI, Litestar, ...).

One implementation: every call runs the sync core through SQLAlchemy's
greenlet bridge (see :mod:`vectorstore.aio.repository` and ``docs/async.md``).
Import the names from :mod:`vectorstore`.
"""

from __future__ import annotations

from .engine import ASYNC_DRIVERS, make_async_engine, normalize_async_url
from .repository import AsyncDocumentRepository, export_parquet_async, ingest_async
from .writer import AsyncBufferedWriter

__all__ = [
    "ASYNC_DRIVERS",
    "AsyncBufferedWriter",
    "AsyncDocumentRepository",
    "export_parquet_async",
    "ingest_async",
    "make_async_engine",
    "normalize_async_url",
]
