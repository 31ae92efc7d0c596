"""Distance metrics: their names, pgvector operators, operator classes and scores.

One table of what a metric means, shared by the query wing (which operator a
query orders by, how a distance becomes a score), the schema (which operator
class an index is built with, which metric an index found in the catalog
serves) and the repository (validating ``metric=``).  Nothing here does I/O.
"""

from __future__ import annotations

import math
from typing import Literal, cast

from .errors import ValidationError

__all__ = [
    "METRICS",
    "PRECISIONS",
    "Metric",
    "Precision",
    "comparator",
    "max_distance_for_score",
    "metric_of_opclass",
    "normalize_metric",
    "opclass",
    "precision_of_opclass",
    "score_of",
    "short_name",
]

Metric = Literal["cosine", "l2", "inner_product", "l1"]
#: How an index (and a query using it) stores the vectors: full float32,
#: half precision, or sign bits compared by Hamming distance.
Precision = Literal["vector", "halfvec", "binary"]
METRICS: tuple[Metric, ...] = ("cosine", "l2", "inner_product", "l1")
PRECISIONS: tuple[Precision, ...] = ("vector", "halfvec", "binary")

_ALIASES = {"ip": "inner_product", "dot": "inner_product", "euclidean": "l2",
            "manhattan": "l1", "taxicab": "l1"}  # fmt: skip
#: pgvector's SQLAlchemy comparator method per metric (``<=>``, ``<->``, ``<#>``, ``<+>``).
_COMPARATOR = {"cosine": "cosine_distance", "l2": "l2_distance",
               "inner_product": "max_inner_product", "l1": "l1_distance"}  # fmt: skip
_SHORT = {"cosine": "cos", "l2": "l2", "inner_product": "ip", "l1": "l1"}
_OPCLASS = {
    ("vector", "cosine"): "vector_cosine_ops", ("vector", "l2"): "vector_l2_ops",
    ("vector", "inner_product"): "vector_ip_ops", ("vector", "l1"): "vector_l1_ops",
    ("halfvec", "cosine"): "halfvec_cosine_ops", ("halfvec", "l2"): "halfvec_l2_ops",
    ("halfvec", "inner_product"): "halfvec_ip_ops", ("halfvec", "l1"): "halfvec_l1_ops",
}  # fmt: skip
_METRIC_OF_OPCLASS = {ops: metric for (_, metric), ops in _OPCLASS.items()}
#: A binary-quantized index compares sign bits; the re-ranking metric is the query's.
BINARY_OPCLASS = "bit_hamming_ops"


def normalize_metric(metric: object) -> Metric:
    """The canonical metric name; raises ValidationError for an unknown one."""
    name = _ALIASES.get(metric, metric) if isinstance(metric, str) else metric
    if name not in METRICS:
        raise ValidationError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    return name


def comparator(metric: Metric) -> str:
    """The name of pgvector's SQLAlchemy comparator method for ``metric``."""
    return _COMPARATOR[metric]


def short_name(metric: Metric) -> str:
    """The short form used in index names (``cos``, ``l2``, ``ip``, ``l1``)."""
    return _SHORT[metric]


def opclass(precision: Precision, metric: Metric) -> str:
    """The operator class an index of ``precision`` is built with for ``metric``."""
    if precision == "binary":
        return BINARY_OPCLASS
    return _OPCLASS[(precision, metric)]


def metric_of_opclass(name: str) -> Metric | None:
    """The metric an operator class serves (None: binary or not pgvector's)."""
    found = _METRIC_OF_OPCLASS.get(name)
    return None if found is None else cast(Metric, found)


def precision_of_opclass(name: str) -> Precision:
    """The precision of an index built with operator class ``name``."""
    if name.startswith("bit_"):
        return "binary"
    if name.startswith("halfvec_"):
        return "halfvec"
    return "vector"


def score_of(metric: str, distance: float) -> float:
    """Similarity score of a distance: higher is more similar (see SearchResult)."""
    if metric == "cosine":
        return 1.0 - distance
    if metric == "inner_product":
        return -distance
    return 1.0 / (1.0 + distance)


def max_distance_for_score(metric: str, min_score: float) -> float:
    """The largest distance whose score is still at least ``min_score``."""
    if metric == "cosine":
        return 1.0 - min_score
    if metric == "inner_product":
        return -min_score
    return math.inf if min_score <= 0 else 1.0 / min_score - 1.0
