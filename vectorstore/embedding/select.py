"""Build a backend, put it through the gate, and (``backend="auto"``) pick the fastest admitted.

The sample a decision is made on is the user's own texts: the first texts
the embedder is given (an ingest's first chunk) or ``gate_sample=``.  It is
split in two: every other text calibrates the int8 exports, the rest is the
held-out set the gate compares on, so no backend is judged on the texts it
was calibrated with.  The reference (torch fp32) embeds the held-out set
once; each candidate embeds it too and is admitted or refused
(:mod:`.gate`).  ``auto`` then times every admitted candidate (the
reference included) on the held-out texts, best of two rounds, and keeps
the fastest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vectorstore._optional import installed
from vectorstore.errors import EmbedderError

from .base import FloatMatrix
from .gate import GateReport, compare
from .provenance import Provenance
from .tokens import Tokens

__all__ = [
    "MIN_SAMPLE",
    "SAMPLE_SIZE",
    "Backend",
    "Choice",
    "Measurement",
    "build",
    "candidates",
    "choose",
    "split_sample",
]

#: Texts the decision uses at most (calibration + held-out).
SAMPLE_SIZE = 512
#: Held-out texts the gate needs at least (a top-10 agreement over fewer means little).
MIN_SAMPLE = 64


class Backend(Protocol):
    provenance: Provenance

    def embed(self, texts: Sequence[str]) -> FloatMatrix: ...


@dataclass(frozen=True)
class Measurement:
    """One candidate as ``auto`` saw it: the gate's report and its speed on the held-out texts."""

    label: str
    report: GateReport | None
    texts_per_s: float

    def __str__(self) -> str:
        gate = "reference" if self.report is None else str(self.report)
        return f"{self.label}: {self.texts_per_s:,.0f} texts/s ({gate})"


@dataclass
class Choice:
    """The backend an embedder runs, and how it was chosen."""

    backend: Backend
    report: GateReport | None = None
    measured: list[Measurement] = field(default_factory=list)
    reason: str = ""


def split_sample(texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """Up to :data:`SAMPLE_SIZE` distinct texts spread over ``texts``: (calibration, held-out)."""
    unique = list(dict.fromkeys(t for t in texts if isinstance(t, str) and t.strip()))
    if len(unique) > SAMPLE_SIZE:
        step = len(unique) / SAMPLE_SIZE
        unique = [unique[int(i * step)] for i in range(SAMPLE_SIZE)]
    return unique[0::2], unique[1::2]


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX).

    Without it torch emulates bf16 and is slower than fp32, so ``auto`` does
    not try it; with it (measured on an AVX512-BF16 CPU: about 2x fp32) it is
    a candidate like any other and goes through the gate.
    """
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def candidates(device: str) -> list[tuple[str, str]]:
    """The (backend, precision) pairs worth trying on ``device``, the reference first."""
    found = [("torch", "fp32")]
    if device.startswith("cuda"):
        return [*found, ("torch", "fp16"), ("torch", "bf16")]
    if device != "cpu":
        return found
    if cpu_has_bf16():
        found.append(("torch", "bf16"))
    if installed("onnxruntime") and installed("onnx"):
        found += [("onnxruntime", "fp32"), ("onnxruntime", "int8")]
    if installed("openvino") and installed("onnx"):
        found.append(("openvino", "fp32"))
        if installed("nncf"):
            found.append(("openvino", "int8"))
    return found


def build(
    backend: str,
    precision: str,
    *,
    model_dir: Path,
    calibration: Sequence[str],
    device: str,
    dimension: int,
    batch_size: int,
    cache: str | Path | None,
    threads: int | None = None,
) -> Backend:
    """A non-reference backend of ``model_dir``'s model (exports built or read from the cache)."""
    tokens = Tokens(model_dir)
    common: dict[str, Any] = {"precision": precision, "dimension": dimension,
                              "batch_size": batch_size}  # fmt: skip
    if backend == "torch":
        from .torch_backend import TorchHalf

        return TorchHalf(model_dir, tokens, device=device, **common)
    if device != "cpu":
        raise EmbedderError(f"the {backend} backend runs on the CPU only, not {device!r}")
    if backend == "onnxruntime":
        from .export import export_onnx, export_onnx_int8
        from .onnx_backend import OnnxRuntimeBackend

        path = (
            export_onnx(model_dir, cache)
            if precision == "fp32"
            else export_onnx_int8(model_dir, calibration, cache)
        )
        return OnnxRuntimeBackend(path, tokens, threads=threads, **common)
    if backend == "openvino":
        from .openvino_backend import OpenVINOBackend, export_openvino, export_openvino_int8

        path = (
            export_openvino(model_dir, cache)
            if precision == "fp32"
            else export_openvino_int8(model_dir, calibration, cache)
        )
        return OpenVINOBackend(path, tokens, threads=threads, **common)
    raise EmbedderError(f"unknown embedding backend {backend!r}")  # pragma: no cover


def _rate(backend: Backend, texts: Sequence[str]) -> float:
    best = float("inf")
    for _ in range(2):
        began = time.perf_counter()
        backend.embed(texts)
        best = min(best, time.perf_counter() - began)
    return len(texts) / best if best > 0 else float("inf")


def gated(backend: Backend, reference: FloatMatrix, held_out: Sequence[str]) -> GateReport:
    """The gate's report on ``backend``; an admitted backend's provenance says so."""
    report = compare(backend.provenance.label, reference, backend.embed(held_out))
    backend.provenance = Provenance(
        backend.provenance.backend, backend.provenance.precision, report.admitted
    )
    return report


def choose(
    reference: Backend,
    make: Callable[[str, str], Backend],
    pairs: Sequence[tuple[str, str]],
    held_out: Sequence[str],
) -> Choice:
    """The fastest of ``pairs`` that the gate admits (the reference when none is faster).

    A candidate that cannot be built (a missing package, a failed export) is
    left out with its error in the reason.
    """
    reference_vectors = reference.embed(held_out)  # warms the reference up, too
    measured = [Measurement("torch/fp32", None, _rate(reference, held_out))]
    best: tuple[float, Backend, GateReport | None] = (measured[0].texts_per_s, reference, None)
    notes: list[str] = []
    for backend_name, precision in pairs:
        if (backend_name, precision) == ("torch", "fp32"):
            continue
        try:
            candidate = make(backend_name, precision)
        except Exception as exc:  # a candidate that cannot be built is skipped, not fatal
            notes.append(f"{backend_name}/{precision} not built: {exc}")
            continue
        report = gated(candidate, reference_vectors, held_out)
        rate = _rate(candidate, held_out) if report.admitted else 0.0
        measured.append(Measurement(report.label, report, rate))
        if report.admitted and rate > best[0]:
            best = (rate, candidate, report)
    _, backend, chosen = best
    reason = f"fastest admitted on {len(held_out)} held-out texts: {backend.provenance.label}"
    if notes:
        reason += "; " + "; ".join(notes)
    return Choice(backend, chosen, measured, reason)
