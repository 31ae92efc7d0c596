"""The asyncio plumbing under the async API: SQLAlchemy's greenlet bridge and our worker threads.

The async API (:mod:`vectorstore.aio`) runs the one sync implementation
through SQLAlchemy's greenlet bridge: ``greenlet_spawn(fn)`` (what
``AsyncSession.run_sync`` calls) runs ``fn`` in a greenlet on the event
loop's own thread, and every driver call inside it (``await_``) suspends that
greenlet while the loop runs other tasks.  No thread runs an event loop but
the caller's.

What must not run on the loop is CPU work that takes milliseconds or more:
embedding a text with a model, encoding a COPY chunk, or a blocking wait on
another thread.  Those go to :func:`worker`, a small thread pool owned by
this module:

* **bounded:** ``WORKERS`` threads at most, named ``vectorstore-worker-N``,
  created on first use (importing vectorstore starts none) and kept for the
  life of the process, like asyncio's own default executor;
* **no event loop runs in them**: they run plain functions (the model, the
  COPY encoder), never a coroutine;
* work reaches them only from inside the bridge (:func:`in_bridge`), so sync
  callers never use them.

The write wing uses :func:`blocking` for its waits on other threads, so the
same sync code keeps the loop free when it runs inside the bridge and is
unchanged otherwise.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.concurrency import in_greenlet

try:  # SQLAlchemy 2.1 renamed await_only to await_
    from sqlalchemy.util import await_
except ImportError:  # pragma: no cover - SQLAlchemy 2.0
    from sqlalchemy.util import await_only as await_

__all__ = [
    "WORKERS",
    "WORKER_PREFIX",
    "await_",
    "blocking",
    "greenlet_spawn",
    "in_bridge",
    "run_in_worker",
    "wait_future",
    "worker",
]

T = TypeVar("T")

#: Threads of the worker pool.  Embedding is the big user: a model already
#: spreads one batch over the cores (torch's intra-op threads), so more
#: concurrent batches than this only contend; COPY encoders of concurrent
#: loads and blocking waits need a few more.
WORKERS = min(4, os.cpu_count() or 1) + 1
WORKER_PREFIX = "vectorstore-worker"

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def worker() -> ThreadPoolExecutor:
    """The library's worker pool (created on first use, ``WORKERS`` threads at most)."""
    global _pool
    pool = _pool
    if pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix=WORKER_PREFIX)
            pool = _pool
    return pool


def in_bridge() -> bool:
    """True in a greenlet of SQLAlchemy's bridge, on the thread of a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    try:
        return bool(in_greenlet())
    except ImportError:  # no greenlet installed: no bridge either
        return False


def run_in_worker(fn: Callable[..., T], *args: Any) -> Awaitable[T]:
    """``fn(*args)`` in a worker thread, as an awaitable of the running loop."""
    return asyncio.get_running_loop().run_in_executor(worker(), fn, *args)


def blocking(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, a call that may block: off the loop when inside the bridge.

    Outside the bridge (sync callers, worker threads) it is a plain call.
    """
    if in_bridge():
        return await_(run_in_worker(fn, *args))
    return fn(*args)


def wait_future(future: Future[T]) -> T:
    """``future.result()``; inside the bridge the greenlet waits and the loop runs on."""
    if in_bridge():
        return await_(asyncio.wrap_future(future))
    return future.result()
