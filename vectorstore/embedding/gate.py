"""The quality gate: a backend is the same model only if its vectors are the reference's.

On a held-out sample (by default texts of the corpus being ingested) the
candidate's vectors are compared with torch fp32's:

* every vector's cosine to its reference vector must be at least
  :data:`MIN_COSINE` (0.99: the *minimum*, not the mean, so no text is
  embedded badly), and
* the top-10 neighbours of each text among the sample must agree with the
  reference's on average at least :data:`MIN_AGREEMENT` (0.99): search
  returns the same documents.

Measured on this project's machine: dynamic int8 quantization reaches min
cosine 0.977 and 88 % top-10 agreement and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["MIN_AGREEMENT", "MIN_COSINE", "NEIGHBOURS", "GateReport", "compare", "topk_agreement"]

MIN_COSINE = 0.99
MIN_AGREEMENT = 0.99
NEIGHBOURS = 10

FloatMatrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class GateReport:
    """How a candidate's vectors compare with the reference's on a sample.

    Attributes:
        label: the candidate, ``backend/precision``.
        texts: the size of the held-out sample.
        min_cosine, mean_cosine: cosine of each vector to its reference vector.
        agreement: the mean fraction of each text's top-``k`` neighbours (in
            the sample, itself excluded) that the reference also ranks there.
        admitted: both figures meet their thresholds.
    """

    label: str
    texts: int
    min_cosine: float
    mean_cosine: float
    agreement: float
    admitted: bool

    def __str__(self) -> str:
        verdict = "admitted" if self.admitted else "refused"
        return (
            f"{self.label}: {verdict} on {self.texts} held-out texts (min cosine "
            f"{self.min_cosine:.4f}, mean {self.mean_cosine:.5f}, top-{NEIGHBOURS} "
            f"agreement {self.agreement:.3f}; needs >= {MIN_COSINE} and >= {MIN_AGREEMENT})"
        )


def _unit(matrix: FloatMatrix) -> npt.NDArray[np.float64]:
    m = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms == 0.0, 1.0, norms)


def topk_agreement(reference: FloatMatrix, candidate: FloatMatrix, k: int = NEIGHBOURS) -> float:
    """Mean overlap of each row's top-``k`` neighbours (itself excluded) under both embeddings."""
    n = len(reference)
    k = min(k, n - 1)
    if k <= 0:
        return 1.0
    ref, cand = _unit(reference), _unit(candidate)
    overlap = 0
    for start in range(0, n, 512):
        rows = slice(start, min(start + 512, n))
        idx = np.arange(rows.start, rows.stop)
        s_ref = ref[rows] @ ref.T
        s_cand = cand[rows] @ cand.T
        s_ref[np.arange(len(idx)), idx] = -np.inf
        s_cand[np.arange(len(idx)), idx] = -np.inf
        top_ref = np.argpartition(-s_ref, k - 1, axis=1)[:, :k]
        top_cand = np.argpartition(-s_cand, k - 1, axis=1)[:, :k]
        for a, b in zip(top_ref, top_cand, strict=True):
            overlap += len(set(a.tolist()) & set(b.tolist()))
    return overlap / (n * k)


def compare(
    label: str,
    reference: FloatMatrix,
    candidate: FloatMatrix,
    *,
    min_cosine: float = MIN_COSINE,
    min_agreement: float = MIN_AGREEMENT,
) -> GateReport:
    """The gate's verdict on ``candidate`` (rows aligned with ``reference``)."""
    if reference.shape != candidate.shape:
        return GateReport(label, len(reference), -1.0, -1.0, 0.0, False)
    if not np.all(np.isfinite(candidate)):
        return GateReport(label, len(reference), -1.0, -1.0, 0.0, False)
    cosines = np.sum(_unit(reference) * _unit(candidate), axis=1)
    agreement = topk_agreement(reference, candidate)
    low, mean = float(cosines.min()), float(cosines.mean())
    admitted = low >= min_cosine and agreement >= min_agreement
    return GateReport(label, len(reference), low, mean, agreement, admitted)
