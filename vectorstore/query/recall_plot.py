"""A picture of a recall measurement: recall@k against p50 latency, one point per setting.

Drawn with matplotlib (the ``plot`` extra), imported only here and only when a
picture is asked for.  No pyplot and no global backend: a Figure with its own
Agg canvas, so plotting from a web app or a notebook changes nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from vectorstore._optional import require
from vectorstore.errors import ValidationError

from .options import DEFAULT_EF_SEARCH, DEFAULT_PROBES

__all__ = ["DEFAULT_LABELS", "plot_recall"]

#: The settings vectorstore uses when none is given; marked on the plot.
DEFAULT_LABELS = frozenset({f"ef_search={DEFAULT_EF_SEARCH}", f"probes={DEFAULT_PROBES}"})


class _Point(Protocol):
    @property
    def label(self) -> str: ...
    @property
    def recall(self) -> float: ...
    @property
    def p50_ms(self) -> float: ...


class _Report(Protocol):
    """What the picture reads of a :class:`~vectorstore.RecallReport`."""

    @property
    def points(self) -> Sequence[_Point]: ...
    @property
    def exact_p50_ms(self) -> float: ...
    @property
    def k(self) -> int: ...
    @property
    def queries(self) -> int: ...


def plot_recall(report: _Report, path: str | Path, *, title: str | None = None) -> Path:
    """Draw ``report`` as a PNG (or any format matplotlib knows by the suffix) at ``path``.

    One line per knob (``ef_search``, ``probes``) through its settings in the
    order measured, each point labelled with its value; the default setting
    is a larger, ringed marker; exact search is a dashed vertical line at its p50.

    Raises:
        MissingDependencyError: matplotlib is not installed (the ``plot`` extra).
        ValidationError: the report has no points, or the folder does not exist.
    """
    if not report.points:
        raise ValidationError("the recall report has no settings to plot")
    target = Path(path)
    if not target.parent.is_dir():
        raise ValidationError(f"cannot write the plot: no folder {str(target.parent)!r}")
    figure_mod = require("matplotlib.figure", extra="plot", feature="plotting recall")
    agg = require("matplotlib.backends.backend_agg", extra="plot", feature="plotting recall")

    figure = figure_mod.Figure(figsize=(6.4, 4.2), dpi=120)
    agg.FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    knobs: dict[str, list[tuple[float, float, str, bool]]] = {}
    for point in report.points:
        knob, _, value = point.label.partition("=")
        knobs.setdefault(knob, []).append(
            (point.p50_ms, point.recall, value, point.label in DEFAULT_LABELS)
        )
    for knob, points in knobs.items():
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        (line,) = axes.plot(xs, ys, marker="o", label=knob)
        for x, y, value, is_default in points:
            axes.annotate(value, (x, y), textcoords="offset points", xytext=(6, -12), fontsize=8)
            if is_default:
                axes.plot([x], [y], marker="o", markersize=13, markerfacecolor="none",
                          linestyle="none", markeredgecolor=line.get_color(), markeredgewidth=2,
                          label=f"{knob}={value}: vectorstore's default")  # fmt: skip
    axes.axvline(report.exact_p50_ms, linestyle="--", color="grey", linewidth=1,
                 label=f"exact search: recall 1.0 at {report.exact_p50_ms:.2f} ms")  # fmt: skip
    axes.set_xlabel("p50 latency per query (ms)")
    axes.set_ylabel(f"recall@{report.k}")
    lowest = min(p.recall for p in report.points)
    axes.set_ylim(max(0.0, lowest - 0.05), 1.005)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    axes.set_title(title or f"recall@{report.k} against latency, {report.queries} queries",
                   fontsize=10)  # fmt: skip
    figure.tight_layout()
    figure.savefig(target)
    return target
