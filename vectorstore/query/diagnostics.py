"""Recall and plans you can see: measure recall@k, explain what a nearest call ran.

Design decision: diagnostics run the *same* plan ``nearest`` would (same
strategy choice, same statement, same SET LOCAL settings), so what they report
is what users get, not a lookalike query.

* :func:`measure_recall` runs sample queries exactly (ground truth) and through
  the index at each ``ef_search`` / ``probes`` value, and reports recall@k and
  p50/p95 latency per setting, so users can pick their settings from numbers.
* :func:`explain` runs ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` on a nearest
  call and reports whether an ANN index was used, how many rows the filter
  removed, and the settings in force during the query.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, literal, select

from vectorstore._target import Target
from vectorstore.errors import ValidationError
from vectorstore.schema.catalog import read_catalog

from .options import HNSW_MAX_EF, SearchOptions, Strategy, positive_int
from .plan import plan_search
from .run import run
from .settings import settings_scope
from .statement import VECTOR_PARAM, Explain, statement_for

__all__ = ["ExplainReport", "RecallPoint", "RecallReport", "explain", "measure_recall"]

_SHOWN_SETTINGS = (
    "hnsw.ef_search", "hnsw.iterative_scan", "hnsw.max_scan_tuples",
    "ivfflat.probes", "ivfflat.iterative_scan",
)  # fmt: skip


# -- explain -------------------------------------------------------------------------
@dataclass(frozen=True)
class ExplainReport:
    """What one nearest call did, from PostgreSQL's own plan.

    Attributes:
        strategy: the strategy nearest chose (and why, in ``reason``).
        used_ann_index: an HNSW/IVFFlat index scan appears in the plan.
        index_names: indexes scanned (ANN and others).
        rows_removed_by_filter: rows read and discarded by filter conditions.
        rows_returned: rows the query returned.
        settings: the pgvector settings in force during the query.
        execution_ms: PostgreSQL's execution time.
        plan: the raw JSON plan.
    """

    strategy: str
    reason: str
    used_ann_index: bool
    index_names: list[str]
    rows_removed_by_filter: int
    rows_returned: int
    settings: dict[str, str]
    execution_ms: float
    plan: Any = field(repr=False)

    def __str__(self) -> str:
        lines = [
            f"strategy: {self.strategy} ({self.reason})",
            f"ANN index used: {'yes' if self.used_ann_index else 'no'}"
            + (f" ({', '.join(self.index_names)})" if self.index_names else ""),
            f"rows removed by filter: {self.rows_removed_by_filter}",
            f"rows returned: {self.rows_returned}",
            f"execution: {self.execution_ms:.2f} ms",
            "settings: " + ", ".join(f"{k}={v}" for k, v in self.settings.items()),
        ]
        return "\n".join(lines)


def _walk(node: dict[str, Any]) -> Iterable[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _walk(child)


def explain(target: Target[Any], vector: Any, opts: SearchOptions) -> ExplainReport:
    """EXPLAIN ANALYZE the statement nearest would run for ``vector`` and ``opts``."""
    sessions = target.sessions
    with sessions.read("explain") as session:
        conn = session.connection()
        plan = plan_search(target, vector, opts, conn=conn)
        assert plan is not None
        ann = {ix.name for ix in read_catalog(conn, target.table).indexes}
        stmt = statement_for(target, plan.options, plan.strategy, False)
        with settings_scope(session, plan.settings, owned=sessions.owns_reads):
            shown = session.execute(
                select(*(func.current_setting(literal(n), literal(True)) for n in _SHOWN_SETTINGS))
            ).one()
            raw = session.execute(Explain(stmt, analyze=True), {VECTOR_PARAM: vector}).scalar_one()
    top = raw[0]
    names: list[str] = []
    removed = 0
    for node in _walk(top["Plan"]):
        if "Index Name" in node and node["Index Name"] not in names:
            names.append(node["Index Name"])
        removed += int(node.get("Rows Removed by Filter", 0))
        removed += int(node.get("Rows Removed by Index Recheck", 0))
    return ExplainReport(
        strategy=plan.strategy, reason=plan.reason,
        used_ann_index=any(n in ann for n in names), index_names=names,
        rows_removed_by_filter=removed, rows_returned=int(top["Plan"].get("Actual Rows", 0)),
        settings={n: v for n, v in zip(_SHOWN_SETTINGS, shown, strict=True) if v is not None},
        execution_ms=float(top.get("Execution Time", 0.0)), plan=raw,
    )  # fmt: skip


# -- recall --------------------------------------------------------------------------
@dataclass(frozen=True)
class RecallPoint:
    """Recall and latency of one setting over the sample queries."""

    label: str
    recall: float
    p50_ms: float
    p95_ms: float
    min_returned: int
    strategies: dict[str, int]


@dataclass(frozen=True)
class RecallReport:
    """Recall@k of each setting against exact search, with latencies."""

    k: int
    queries: int
    exact_p50_ms: float
    points: list[RecallPoint]

    def to_markdown(self) -> str:
        lines = [
            f"recall@{self.k} over {self.queries} queries (exact p50 {self.exact_p50_ms:.2f} ms)",
            "",
            "| setting | recall | p50 ms | p95 ms | min rows | strategies |",
            "|---|---|---|---|---|---|",
        ]
        for p in self.points:
            strategies = ", ".join(f"{k}:{v}" for k, v in sorted(p.strategies.items()))
            lines.append(f"| {p.label} | {p.recall:.3f} | {p.p50_ms:.2f} | {p.p95_ms:.2f} | "
                         f"{p.min_returned} | {strategies} |")  # fmt: skip
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """Draw recall@k against p50 latency per setting, the default marked, to ``path``.

        Needs matplotlib (``pip install 'vectorstore[plot]'``); see
        :func:`vectorstore.query.recall_plot.plot_recall`.  Returns the path written.

        Raises:
            MissingDependencyError: matplotlib is not installed.
        """
        from .recall_plot import plot_recall

        return plot_recall(self, path, title=title)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values`` by linear interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def measure_recall(
    target: Target[Any],
    vectors: Sequence[Any],
    base: SearchOptions,
    *,
    ef_search: Sequence[int] = (40, 100, 200),
    probes: Sequence[int] = (),
    strategy: Strategy = "index",
) -> RecallReport:
    """Recall@k and latency of the index at each setting, against exact search.

    Args:
        vectors: validated sample query vectors (the repository embeds texts once).
        base: the options every query runs with (k, metric, filter, precision, ...).
        ef_search: HNSW ``ef_search`` values to try.
        probes: IVFFlat ``probes`` values to try.
        strategy: the strategy to measure (``"index"``, ``"iterative"`` or ``"auto"``).
    """
    if not vectors:
        raise ValidationError("measure_recall needs at least one sample query")
    k = base.k
    exact_ids: list[list[int]] = []
    exact_ms: list[float] = []
    for vector in vectors:
        started = time.perf_counter()
        result = run(target, vector, replace(base, strategy="exact", precision="vector"))
        exact_ms.append((time.perf_counter() - started) * 1000)
        exact_ids.append([hit.document.id for hit in result])
    settings = [("ef_search", v) for v in ef_search] + [("probes", v) for v in probes]
    points = []
    for name, value in settings:
        checked = positive_int(name, value)
        if name == "ef_search" and checked > HNSW_MAX_EF:
            raise ValidationError(f"ef_search must be at most {HNSW_MAX_EF}, got {checked}")
        opts = (replace(base, strategy=strategy, ef_search=checked) if name == "ef_search"
                else replace(base, strategy=strategy, probes=checked))  # fmt: skip
        recalls, times, returned = [], [], []
        strategies: dict[str, int] = {}
        for vector, truth in zip(vectors, exact_ids, strict=True):
            started = time.perf_counter()
            result = run(target, vector, opts)
            times.append((time.perf_counter() - started) * 1000)
            got = {hit.document.id for hit in result}
            recalls.append(len(got & set(truth)) / len(truth) if truth else 1.0)
            returned.append(len(result))
            strategies[result.strategy] = strategies.get(result.strategy, 0) + 1
        points.append(RecallPoint(
            label=f"{name}={value}", recall=statistics.fmean(recalls),
            p50_ms=percentile(times, 0.5), p95_ms=percentile(times, 0.95),
            min_returned=min(returned), strategies=strategies,
        ))  # fmt: skip
    return RecallReport(k=k, queries=len(vectors), exact_p50_ms=percentile(exact_ms, 0.5),
                        points=points)  # fmt: skip
