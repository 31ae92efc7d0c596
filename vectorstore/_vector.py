"""A float32 vector: validation, pgvector's text form, and the query bind type.

The shared vocabulary of both wings: the write path validates every embedding
with :func:`validate_matrix` before a byte is sent, and the query path turns a
query into a validated float32 vector with :func:`as_query_vector` and binds
it as :class:`QueryVector`.  Nothing here does I/O.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from pgvector.sqlalchemy import Vector
from sqlalchemy import ColumnElement, bindparam

from .errors import DimensionMismatchError, ValidationError

__all__ = [
    "FloatMatrix",
    "QueryVector",
    "as_query_vector",
    "query_param",
    "validate_matrix",
    "validate_vector",
    "vector_literal",
]

FloatMatrix = npt.NDArray[np.float32]
FloatVector = npt.NDArray[np.float32]
_TEMPLATES: dict[int, str] = {}


def validate_matrix(values: Any, dimension: int, *, first_row: int = 0) -> FloatMatrix:
    """Coerce ``values`` to a C-contiguous float32 ``(n, dimension)`` matrix.

    Integer and float64 input is converted; ragged, non-numeric, wrong-width and
    non-finite input (after conversion, so float64 overflow is caught) is refused.
    """
    if isinstance(values, np.ndarray):
        array = values
    else:
        try:
            array = np.asarray(values)
        except ValueError as exc:
            raise ValidationError(f"embeddings are ragged or malformed: {exc}") from exc
    if array.dtype == object:
        try:
            array = np.asarray(array.tolist(), dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise ValidationError(
                "embeddings are ragged or not numeric (an object array that is not "
                "a rectangle of numbers)"
            ) from exc
    if array.dtype.kind not in "fiu":
        raise ValidationError(f"embeddings must be numeric, got dtype {array.dtype}")
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, dimension)
    if array.ndim != 2:
        raise ValidationError(
            f"embeddings must be 2-D (rows, {dimension}), got shape {array.shape}"
        )
    if array.shape[1] != dimension:
        raise DimensionMismatchError(
            f"embeddings have dimension {array.shape[1]}, the column expects {dimension}",
            row=first_row if array.shape[0] else None,
        )
    with np.errstate(over="ignore", invalid="ignore"):
        matrix = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise ValidationError(
            "embedding contains NaN or infinity (or a value outside float32's range)",
            row=first_row + bad,
        )
    return matrix


def validate_vector(value: Any, dimension: int, *, row: int | None = None) -> FloatMatrix:
    """One vector -> a ``(1, dimension)`` float32 matrix, with the same checks."""
    if isinstance(value, str) or not hasattr(value, "__len__"):
        raise ValidationError(
            f"an embedding must be a sequence of numbers, got {type(value).__name__}", row=row
        )
    array = value if isinstance(value, np.ndarray) else None
    if array is None:
        try:
            array = np.asarray(value)
        except ValueError as exc:
            raise ValidationError(f"embedding is malformed: {exc}", row=row) from exc
    if array.ndim != 1:
        raise ValidationError(f"an embedding must be 1-D, got shape {array.shape}", row=row)
    if array.shape[0] != dimension:
        raise DimensionMismatchError(
            f"embedding has dimension {array.shape[0]}, the column expects {dimension}", row=row
        )
    try:
        return validate_matrix(array.reshape(1, -1), dimension, first_row=row or 0)
    except ValidationError as exc:
        raise type(exc)(exc.reason, row=row) from None


def as_query_vector(query: Any, dimension: int) -> FloatVector:
    """A query vector as a validated 1-D float32 array of ``dimension`` values."""
    if isinstance(query, np.ndarray) and query.dtype.kind == "f" and query.ndim == 1:
        # The common case: a float vector of the right size.  A float64 value
        # beyond float32's range becomes inf here and takes validate_vector's error.
        vector = query.astype(np.float32, copy=False)
        if vector.shape[0] == dimension and bool(np.isfinite(vector).all()):
            return vector
    return np.asarray(validate_vector(query, dimension)[0], dtype=np.float32)


def vector_literal(vector: Any) -> str:
    """pgvector's text form of a float32 vector, formatted in one C-level ``%``.

    Nine significant digits round-trip every float32 exactly (``%.9g``).
    """
    values = np.asarray(vector, dtype=np.float32).ravel()
    n = values.shape[0]
    template = _TEMPLATES.get(n)
    if template is None:
        template = _TEMPLATES.setdefault(n, "[" + ",".join(["%.9g"] * n) + "]")
    return template % tuple(values.tolist())


class QueryVector(Vector):
    """pgvector's ``vector`` type for query parameters, with a faster text form.

    pgvector's own bind processor formats each component in a Python loop
    (~150 us for 384 floats, a tenth of a whole indexed query); one ``%``
    with a per-dimension template of ``%.9g`` fields does it in C (~50 us).
    Nine significant digits round-trip every float32 exactly.
    """

    cache_ok = True

    def bind_processor(self, dialect: Any) -> Any:
        def process(value: Any) -> str | None:
            if value is None or isinstance(value, str):
                return value
            return vector_literal(value)

        return process


def query_param(vector: Any, dimension: int, name: str | None = None) -> Any:
    """A bound query vector (``name``: a fixed name, for statements reused across calls)."""
    if isinstance(vector, ColumnElement):
        return vector
    if name is not None:
        return bindparam(name, type_=QueryVector(dimension))
    return bindparam(None, vector, type_=QueryVector(dimension))
