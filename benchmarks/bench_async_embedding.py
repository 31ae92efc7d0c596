"""Does a micro-batcher raise embedding throughput of concurrent async calls?  Measured only.

The issue asked for a batcher that gathers the texts of concurrent
``add``/``nearest`` calls for a few milliseconds and embeds them in one model
call, kept only if it raises throughput with the real model on CPU.  This
script holds that batcher (:class:`MicroBatcher`) and measures it against the
library's path (each call's texts embedded in the worker pool, up to
``vectorstore._async.WORKERS`` model calls at once): ``--coroutines``
coroutines on one loop each embed single query texts (realistic lengths),
through SQLAlchemy's greenlet bridge exactly as the repository does.

    python benchmarks/bench_async_embedding.py [--texts 512] [--coroutines 64] [--repeats 2]

Writes ``benchmarks/results/async_embedding_tables.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vectorstore as vs  # noqa: E402
from vectorstore._async import WORKERS, greenlet_spawn, run_in_worker  # noqa: E402
from vectorstore.aio.embedding import OffLoopEmbedder  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
FloatMatrix = np.ndarray[Any, np.dtype[np.float32]]


@dataclass
class _Gathering:
    """Texts of concurrent calls waiting for one model call, and their futures."""

    texts: list[str] = field(default_factory=list)
    waiters: list[tuple[int, int, asyncio.Future[FloatMatrix]]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class MicroBatcher:
    """An embedder that gathers the texts of concurrent async calls into one model call.


    The first call opens a window of ``window`` seconds; calls arriving in it
    join, and the window closes early once ``max_texts`` are gathered.  Then
    one ``embed`` of all the texts runs in a worker thread and each caller gets
    its own rows.  A model call costs a fixed overhead (tokenizer, framework
    dispatch) plus a per-text part, so many small calls batched into one
    spend the overhead once; whether that pays on a given model and machine
    is measured in ``benchmarks/bench_async.py`` (``docs/async.md``).
    """

    def __init__(self, inner: vs.Embedder, *, window: float = 0.002, max_texts: int = 64) -> None:
        if not window > 0:
            raise ValueError(f"window must be positive, got {window!r}")
        self.inner = inner
        self.window = window
        self.max_texts = max_texts
        self._open: dict[asyncio.AbstractEventLoop, _Gathering] = {}
        self.model_calls = 0

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """A direct model call (sync callers; worker threads)."""
        return self.inner.embed(texts)

    async def embed_async(self, texts: Sequence[str]) -> FloatMatrix:
        """Join the open gathering on this loop (or open one); the rows of ``texts``."""
        loop = asyncio.get_running_loop()
        gathering = self._open.get(loop)
        if gathering is None:
            gathering = self._open[loop] = _Gathering()
            gathering.timer = loop.call_later(self.window, self._close, loop, gathering)
        start = len(gathering.texts)
        gathering.texts.extend(texts)
        future: asyncio.Future[FloatMatrix] = loop.create_future()
        gathering.waiters.append((start, len(gathering.texts), future))
        if len(gathering.texts) >= self.max_texts:
            self._close(loop, gathering)
        return await future

    def _close(self, loop: asyncio.AbstractEventLoop, gathering: _Gathering) -> None:
        if self._open.get(loop) is gathering:
            del self._open[loop]
        if gathering.timer is not None:
            gathering.timer.cancel()
            gathering.timer = None
        self.model_calls += 1
        done = asyncio.ensure_future(run_in_worker(self.inner.embed, gathering.texts))
        done.add_done_callback(lambda f: self._deliver(f, gathering))

    @staticmethod
    def _deliver(done: asyncio.Future[FloatMatrix], gathering: _Gathering) -> None:
        error = None if done.cancelled() else done.exception()
        for start, end, future in gathering.waiters:
            if future.done():  # the caller was cancelled meanwhile
                continue
            if done.cancelled():
                future.cancel()
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(done.result()[start:end])


class _Batched:
    """What the repository's embedder wrapper would do with a batcher: the bridge awaits it."""

    def __init__(self, batcher: MicroBatcher) -> None:
        self.batcher = batcher

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        from vectorstore._async import await_

        found: FloatMatrix = await_(self.batcher.embed_async(list(texts)))
        return found


def query_texts(n: int) -> list[str]:
    """Query-length texts (5-25 words) drawn from the bundled standard-library corpus."""
    from vectorstore._stdlib_corpus import extract_corpus

    words = " ".join(doc.text for doc in extract_corpus(300)[1]).split()
    rng = random.Random(0)
    out = []
    for _ in range(n):
        start = rng.randrange(len(words) - 30)
        out.append(" ".join(words[start : start + rng.randint(5, 25)]))
    return out


async def throughput(embed: Any, texts: list[str], coroutines: int) -> float:
    parts = [texts[i::coroutines] for i in range(coroutines)]

    async def one(part: list[str]) -> None:
        for t in part:
            await greenlet_spawn(embed, [t])

    started = time.perf_counter()
    await asyncio.gather(*(one(p) for p in parts))
    return len(texts) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--coroutines", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    model = vs.SentenceTransformerEmbedder(device="cpu")
    model.embed(["warm up the model"])
    texts = query_texts(args.texts)
    methods = {
        f"worker pool (shipped; {WORKERS} threads), one call per text":
            lambda: OffLoopEmbedder(model).embed,
        "micro-batcher, 2 ms window, <= 64 texts": lambda: _Batched(MicroBatcher(model)).embed,
        "micro-batcher, 5 ms window, <= 64 texts":
            lambda: _Batched(MicroBatcher(model, window=0.005)).embed,
    }  # fmt: skip
    rates: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(args.repeats):
        for name, make in methods.items():
            rate = asyncio.run(throughput(make(), texts, args.coroutines))
            rates[name].append(rate)
            print(f"  {name:55s} {rate:8.1f} texts/s", flush=True)
    base = statistics.median(next(iter(rates.values())))
    lines = [
        f"# Embedding throughput, {args.coroutines} concurrent coroutines, {args.texts} query "
        f"texts, all-MiniLM-L6-v2 on CPU (median of {args.repeats})",
        "",
        "| method | texts/s | x worker pool |",
        "|---|---|---|",
    ]
    for name, values in rates.items():
        med = statistics.median(values)
        lines.append(f"| {name} | {med:.1f} | {med / base:.2f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "async_embedding_tables.md").write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
