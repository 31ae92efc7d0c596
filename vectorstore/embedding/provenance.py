"""Which backend and precision produced a collection's vectors (model provenance).

A collection records the model's name (``embedding_model``) and, since
revision 0009, the :class:`Provenance` of the embedder that first wrote into
it (``embedding_backend``, a small JSON object).  Two provenances may write
into one collection when they are the same backend and precision, or when
both were *admitted* by the quality gate (their vectors are within cosine
0.99 of torch fp32 and keep 99 % of its top-10 neighbours, so they are the
same model for search).  A backend that did not pass the gate mixes with
nothing but itself, like another model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["AUTO_PENDING", "REFERENCE", "Provenance", "compatible"]


@dataclass(frozen=True)
class Provenance:
    """The backend and precision an embedder's vectors come from.

    Attributes:
        backend: ``"torch"``, ``"onnxruntime"``, ``"openvino"``.
        precision: ``"fp32"``, ``"fp16"``, ``"bf16"`` or ``"int8"``.
        admitted: the vectors are the reference's (torch fp32 itself, or a
            backend that passed the quality gate against it).
    """

    backend: str
    precision: str
    admitted: bool = True

    @property
    def label(self) -> str:
        """``backend/precision``, e.g. ``"onnxruntime/int8"``."""
        return f"{self.backend}/{self.precision}"

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision, "admitted": self.admitted}

    @classmethod
    def from_json(cls, value: Any) -> Provenance | None:
        """The provenance a collection recorded, or None (none recorded, or unreadable)."""
        if not isinstance(value, dict):
            return None
        backend, precision = value.get("backend"), value.get("precision")
        if not isinstance(backend, str) or not isinstance(precision, str):
            return None
        return cls(backend, precision, bool(value.get("admitted", False)))

    def __str__(self) -> str:
        return self.label if self.admitted else f"{self.label} (not admitted by the quality gate)"


#: The reference every backend is gated against: sentence-transformers on torch, fp32.
REFERENCE = Provenance("torch", "fp32", True)


#: What a ``backend="auto"`` embedder claims before it has chosen: some admitted backend.
AUTO_PENDING = Provenance("auto", "any", True)


def compatible(recorded: Provenance | None, new: Provenance | None) -> bool:
    """Whether vectors of ``new`` may join a collection that recorded ``recorded``.

    Unknown on either side (a collection from before provenance was recorded,
    an embedder that does not tell) is not refused: only the model name is
    checked then.
    """
    if recorded is None or new is None:
        return True
    if (recorded.backend, recorded.precision) == (new.backend, new.precision):
        return True
    return recorded.admitted and new.admitted
