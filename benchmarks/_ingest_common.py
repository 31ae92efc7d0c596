"""Shared pieces of the ingest benchmarks: a dedicated server, data, memory sampling."""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vectorstore as vs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DIM = vs.DEFAULT_DIMENSION
TABLE = "vectorstore_documents"
HNSW = "ix_vectorstore_documents_embedding_hnsw"
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    """Current resident set size of this process, MiB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * _PAGE / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process since it started, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssSampler:
    """Samples RSS in a thread; ``peak`` is the highest value seen while running."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.start_mb = 0.0

    def _run(self) -> None:
        began = time.perf_counter()
        while not self._stop.wait(self.interval):
            self.samples.append((time.perf_counter() - began, rss_mb()))

    def __enter__(self) -> RssSampler:
        self.start_mb = rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((self.samples[-1][0] if self.samples else 0.0, rss_mb()))

    @property
    def peak(self) -> float:
        return max([self.start_mb, *(mb for _, mb in self.samples)])


#: The kinds of texts the ingest benchmarks can load (``--texts``).
TEXT_KINDS = ("words", "docstrings", "template")
VOCABULARY_SIZE = 6000
WORDS_PER_TEXT = 40


def vocabulary(size: int = VOCABULARY_SIZE, seed: int = 7) -> list[str]:
    """``size`` distinct pronounceable words of 1-3 syllables (deterministic)."""
    rng = np.random.default_rng(seed)
    onsets = ["b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v",
              "w", "br", "ch", "cl", "dr", "gr", "pl", "sh", "st", "tr", "th"]  # fmt: skip
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
    codas = ["", "", "", "", "n", "r", "s", "t", "l", "nd"]
    words: dict[str, None] = {}
    while len(words) < size:
        syllables = int(rng.integers(1, 4))
        word = "".join(
            str(rng.choice(onsets)) + str(rng.choice(vowels)) + str(rng.choice(codas))
            for _ in range(syllables)
        )
        words.setdefault(word)
    return list(words)


def make_texts(n: int, kind: str = "words", seed: int = 0, offset: int = 0) -> list[str]:
    """``n`` texts of one kind.

    * ``words`` (default): 40 words drawn from a 6,000-word vocabulary with
      Zipf frequencies (rank r drawn with weight 1/r, as in real prose),
      about 250 characters: a review or a paragraph.
    * ``docstrings``: the stdlib docstrings corpus of the demo (real prose, up
      to 500 characters), cycled, each with its row number appended.
    * ``template``: the old 11-word template (few distinct lexemes).
    """
    ids = range(offset, offset + n)
    if kind == "template":
        return [f"document {i} about topic {i % 97} with a few more words" for i in ids]
    if kind == "docstrings":
        from vectorstore._stdlib_corpus import extract_corpus

        corpus = [doc.text for doc in extract_corpus()[1]]
        return [f"{corpus[i % len(corpus)]} ({i})" for i in ids]
    if kind != "words":
        raise ValueError(f"texts must be one of {TEXT_KINDS}, got {kind!r}")
    words = np.array(vocabulary())
    weights = 1.0 / np.arange(1, len(words) + 1)
    rng = np.random.default_rng(seed + offset + 1)
    drawn = rng.choice(len(words), size=(n, WORDS_PER_TEXT), p=weights / weights.sum())
    return [" ".join(words[row]) for row in drawn]


def make_rows(n: int, seed: int = 0, offset: int = 0, texts: str = "words") -> dict[str, Any]:
    """``n`` rows: 384-d float32 vectors, texts of one kind, 3-key metadata, ids."""
    rng = np.random.default_rng(seed + offset)
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = range(offset, offset + n)
    return {
        "texts": make_texts(n, texts, seed, offset),
        "metadata": [{"source": "bench", "i": i, "tag": f"t{i % 10}"} for i in ids],
        "external_ids": [f"doc-{i}" for i in ids],
        "embeddings": vectors,
    }


def start_server(data_dir: str | None) -> tuple[vs.EmbeddedServer, Any, bool]:
    """A dedicated embedded server (own folder), so the shared test server is untouched."""
    owned = data_dir is None
    folder = Path(data_dir or tempfile.mkdtemp(prefix="vs-bench-", dir="/tmp")) / "pgdata"
    os.chmod(folder.parent, 0o755)
    server = vs.EmbeddedServer(folder)
    url = server.start()
    vs.migrate(url)
    return server, url, owned
