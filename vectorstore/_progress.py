"""Progress shown to a person: a total and an ETA, named phases, readable units.

One display per long call (``ingest`` today), drawn with tqdm on a terminal
and silent elsewhere unless asked for.  What it promises:

* **A total whenever one can be known cheaply**: a parquet file's row count
  from its metadata, a CSV / JSONL file's line count (one fast pass over the
  bytes, no parsing; an estimate when quoted fields hold line breaks, and said
  to be one), ``len()`` of a sized input.  Without a total the bar still shows
  rows and a rate.  A path is never measured with ``len()`` (that was the
  length of the path string).
* **Phases by name**: the description says what the pipeline is waiting for
  (``embedding``, ``writing``), so a slow step is visible as such.
* **Readable numbers**: whole rows (never ``7.00/7.00``), a rate in rows per
  second, and :func:`duration` for summaries (``2 min 13 s``).

Third-party bars (transformers' "Loading weights") are switched off where a
model loads (:mod:`vectorstore.embedders`), so they never share a line with
this one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["Progress", "count_lines", "duration", "rows"]

# Files up to this size are line-counted for a total (about a second on a slow disk).
_COUNT_LINES_UP_TO = 4 << 30


def count_lines(path: str | Path, *, header: bool) -> int | None:
    """Data lines of a text file (a CSV's header is not one); None for a file too big to count.

    Counts newline bytes in 1 MiB blocks (no decoding, no parsing), plus a last
    line without a newline.  Blank lines and quoted CSV fields with line
    breaks make this an over-estimate, never an under-estimate.
    """
    file = Path(path)
    try:
        if file.stat().st_size > _COUNT_LINES_UP_TO:
            return None
        lines = 0
        last = b"\n"
        with file.open("rb") as handle:
            while block := handle.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
        if last != b"\n":
            lines += 1
    except OSError:
        return None
    if header and lines:
        lines -= 1
    return max(lines, 0)


def rows(n: int) -> str:
    """``1234567`` -> ``"1,234,567"``."""
    return f"{n:,}"


def duration(seconds: float) -> str:
    """``0.42`` -> ``"0.4 s"``, ``75`` -> ``"1 min 15 s"``, ``4000`` -> ``"1 h 6 min"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class Progress:
    """A tqdm bar with a total (or an estimate of one), an ETA and a phase in its description.

    Args:
        desc: what runs (``"ingest"``).
        total: the rows expected, or None when unknown.
        estimated: the total is an estimate (the bar's total is corrected at the end).
        enabled: True shows it, False hides it, None shows it only on a terminal.
        unit: what is counted.
    """

    def __init__(
        self,
        desc: str,
        *,
        total: int | None,
        estimated: bool = False,
        enabled: bool | None = None,
        unit: str = "rows",
    ) -> None:
        from tqdm.auto import tqdm

        self.desc = desc
        self.estimated = estimated
        self.phase_name: str | None = None
        self._bar: Any = tqdm(
            total=total,
            desc=desc,
            unit=f" {unit}",
            disable=None if enabled is None else not enabled,
            dynamic_ncols=True,
            leave=True,
        )

    @property
    def total(self) -> int | None:
        total = self._bar.total
        return None if total is None else int(total)

    @property
    def done(self) -> int:
        return int(self._bar.n)

    def phase(self, name: str) -> None:
        """Name what the work waits for now (``"embedding"``, ``"writing"``)."""
        if name != self.phase_name:
            self.phase_name = name
            self._bar.set_description_str(f"{self.desc} [{name}]", refresh=True)

    def update(self, n: int) -> None:
        if n:
            self._bar.update(n)

    def note(self, **values: Any) -> None:
        """Extra figures after the bar (``embedded=1200``)."""
        self._bar.set_postfix(values, refresh=False)

    def close(self) -> None:
        """Finish the bar; an estimated total becomes the real count."""
        if self._bar.total is not None and self._bar.n != self._bar.total and self.estimated:
            self._bar.total = self._bar.n
            self._bar.refresh()
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
