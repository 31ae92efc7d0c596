"""A warning, once, where a filter no index serves makes nearest read a whole large collection.

The exact ranking of a filter is cheap when an index finds its rows; when
none does (a range on a metadata key without a btree, a condition on a
column without one, ``$ne``, a pattern), it reads every row of the
collection, every query: 100,000 rows cost ~100 ms on the benchmark
machine, where a btree on the key made the same query 2-10 ms
(docs/filtered-search.md, the time-range section).  The planner prices
that read (:func:`~.filters.index_served`); this module tells the user, as
an :class:`~vectorstore.errors.UnindexedFilterWarning` naming what to
index, once per process for each collection and set of unserved fields.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

from vectorstore.errors import UnindexedFilterWarning

from .filters import COLUMN_FIELDS, unserved_fields

__all__ = ["FULL_READ_WARN_ROWS", "warn_full_read"]

#: Collections smaller than this are read whole without a warning (~20 ms at
#: the benchmark machine's ~1 us a row).
FULL_READ_WARN_ROWS = 20_000
_RANGES = frozenset({"$lt", "$lte", "$gt", "$gte", "$between"})
#: What has been warned about: (table, collection, fields).  Bounded: past
#: this many, nothing new is warned about (a process with that many
#: unindexed filter shapes has been told).
_WARNED: set[tuple[str, int, tuple[str, ...]]] = set()
_WARNED_MAX = 1024


def warn_full_read(
    table: str,
    collection_id: int,
    rows: int,
    spec: Any,
    declared: frozenset[str],
    keyed: frozenset[str],
    columns: frozenset[str],
) -> None:
    """Warn (once) that ranking ``spec`` exactly read all ``rows`` rows of the collection.

    Args:
        declared: the model's ``indexed_metadata_keys``.
        keyed: those of them whose btree exists (from the catalog).
        columns: the columns a btree leads with (from the catalog).
    """
    if rows < FULL_READ_WARN_ROWS:
        return
    fields = unserved_fields(spec, keyed, columns)
    if not fields:
        return
    key = (table, collection_id, tuple(sorted(fields)))
    if key in _WARNED or len(_WARNED) >= _WARNED_MAX:
        return
    _WARNED.add(key)
    shown = "; ".join(f"{name} {', '.join(ops)}" for name, ops in sorted(fields.items()))
    message = (
        f"nearest ranked collection {collection_id} of {table} exactly by reading all "
        f"~{rows:,} of its rows: no index serves the filter ({shown}). "
        + " ".join(_advice(fields, declared))
        + " (warned once per collection and fields; see ResultSet.reason and "
        "docs/filtered-search.md)"
    )
    warning = UnindexedFilterWarning(message, fields=fields, rows=rows)
    warnings.warn(warning, stacklevel=_caller_level())


def _caller_level() -> int:
    """The stack level of the first frame outside vectorstore: the app's nearest call.

    The planner is reached through several layers (the repository, the read
    retry, the raw or the SQLAlchemy path), so a fixed level would point
    inside the package.
    """
    level, frame = 1, sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("vectorstore"):
        level, frame = level + 1, frame.f_back  # type: ignore[assignment]
    return level


def _advice(fields: dict[str, tuple[str, ...]], declared: frozenset[str]) -> list[str]:
    """What would let an index serve each unserved field."""
    out = []
    for name, ops in sorted(fields.items()):
        ranged = bool(_RANGES.intersection(ops)) or "$eq" in ops or "$in" in ops
        if name.startswith("$"):
            out.append(f"No index finds what {name} keeps.")
        elif not ranged:
            out.append(f"No index serves {', '.join(ops)} on {name}.")
        elif name in COLUMN_FIELDS:
            out.append(
                f"A btree on (collection_id, {name}), created by a migration of the app, "
                f"serves {name}'s ranges."
            )
        elif name in declared:
            out.append(
                f"{name!r} is in indexed_metadata_keys but its btree does not exist on the "
                "server: create the model's indexes (the app's migration, or create_all)."
            )
        elif "." in name:
            out.append(f"No index serves ranges on the nested key {name}.")
        else:
            out.append(
                f"Declare indexed_metadata_keys = ({name!r},) on the document model and "
                "create its index: a btree on (collection_id, metadata -> key) serves its ranges."
            )
    return out
