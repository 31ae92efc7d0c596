"""pgvector's settings for one query, applied for that query only (``set_config(..., true)``).

Names and values come from this package (numbers it formatted, fixed
keywords) and are checked again when rendered, so the one ``SELECT
set_config(...)`` statement carries no user text and costs one round trip.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy.orm import Session

from vectorstore.errors import ValidationError

from .options import (
    DEFAULT_EF_SEARCH,
    DEFAULT_FILTERED_EF_SEARCH,
    DEFAULT_PROBES,
    HNSW_MAX_EF,
    SearchOptions,
    candidates,
)

__all__ = ["FALLBACK_EF", "search_settings", "settings_scope", "settings_sql"]

#: ef_search of a widened scan standing in for an iterative one (pgvector < 0.8).
FALLBACK_EF = 1000

_SETTING_VALUE = re.compile(r"^[a-z0-9_]{1,32}$")
_SETTING_NAME = re.compile(r"^((hnsw|ivfflat)\.[a-z_]{1,32}|enable_sort)$")


def settings_sql(settings: Mapping[str, str]) -> str:
    """One ``SELECT set_config(..., true), ...`` for all ``settings`` (one round trip).

    Names and values come from this module (numbers it formatted, fixed
    keywords) and are checked again here, so rendering them is safe; a fixed
    text per combination also keeps the driver's and the server's work small.
    """
    return _settings_sql(tuple(settings.items()))


@lru_cache(maxsize=256)
def _settings_sql(items: tuple[tuple[str, str], ...]) -> str:
    parts = []
    for name, value in items:
        if not _SETTING_NAME.match(name) or not _SETTING_VALUE.match(value):
            raise ValidationError(f"refusing setting {name!r} = {value!r}")
        parts.append(f"set_config('{name}', '{value}', true)")
    return "SELECT " + ", ".join(parts)


@contextmanager
def settings_scope(session: Session, settings: Mapping[str, str], *, owned: bool) -> Iterator[None]:
    """Apply ``settings`` for the duration of the block only.

    ``owned``: the transaction ends with the call (standalone repository), so
    transaction-local settings are enough.  Otherwise the block runs in a
    SAVEPOINT that is rolled back at the end, restoring the caller's settings
    (reads need not persist).
    """
    if not settings:
        yield
        return
    sql = settings_sql(settings)
    if owned:
        session.connection().exec_driver_sql(sql)
        yield
        return
    nested = session.begin_nested()
    try:
        session.connection().exec_driver_sql(sql)
        yield
    finally:
        if nested.is_active:
            nested.rollback()


def search_settings(
    opts: SearchOptions, strategy: str, iterative_supported: bool
) -> dict[str, str]:
    """The pgvector and planner settings a query of ``strategy`` runs under."""
    if strategy == "exact":
        return {}
    wanted = opts.k + opts.offset
    if opts.precision == "binary" or opts.rerank:
        wanted = candidates(opts)
    filtered = opts.filter is not None or opts.join is not None
    widened = filtered and strategy == "iterative"
    default = DEFAULT_FILTERED_EF_SEARCH if widened else DEFAULT_EF_SEARCH
    ef = max(opts.ef_search or default, min(wanted, HNSW_MAX_EF))
    probes = opts.probes or DEFAULT_PROBES
    out = {"hnsw.ef_search": str(ef), "ivfflat.probes": str(probes)}
    if filtered or strategy == "iterative":
        # The strategy is decided: an ANN scan.  With a filter the planner may
        # still prefer "filter, then sort" (its JSONB estimates are fixed guesses
        # that run low; measured: a 10% filter estimated at 51 rows, ranked
        # exactly in 50 ms instead of a 3 ms index scan), and a collection's
        # scan through a table-wide index at a wide ef_search is priced above
        # a sort of its rows.  Sorting is what the index scan avoids, so
        # disabling it pins the plan to the index.
        out["enable_sort"] = "off"
    if strategy == "iterative":
        if iterative_supported:
            out.update({
                "hnsw.iterative_scan": "relaxed_order",
                "hnsw.max_scan_tuples": str(opts.max_scan_tuples),
                "ivfflat.iterative_scan": "relaxed_order",
            })  # fmt: skip
        else:
            out["hnsw.ef_search"] = str(FALLBACK_EF)
    return out
