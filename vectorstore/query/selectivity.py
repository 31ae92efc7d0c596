"""A cached per-collection sample of metadata: how many rows will a filter keep?

Why: ``nearest`` must choose between an exact ranking of the filtered rows and
an iterative ANN scan, and the choice turns on the filter's size.
PostgreSQL keeps no statistics inside a ``jsonb`` column, so its estimate for
``metadata @> '{"k": v}'`` is a fixed guess (measured: a 50% filter estimated
at a few dozen rows), and a count capped at the threshold costs as much as the
query itself when the filter is broad.  Instead each collection keeps a random
sample of its rows' metadata (``TABLESAMPLE BERNOULLI``, about
:data:`SAMPLE_ROWS` rows, refreshed after :data:`SAMPLE_TTL_S`), and a
dictionary filter over metadata keys is evaluated on the sample in Python:
no round trip per query.

The sample also holds the sampled rows' ids and embeddings, so with the query
vector in hand it tells *where* the matching rows are: which sampled rows
match (:meth:`MetadataSample.matches`, a boolean mask remembered per filter)
and how far they are from the query (:mod:`.cost` turns that into the local
share an iterative index scan will meet, and the sampled matching rows
nearest the query into witnesses that prove a scan missed rows).

The evaluation is an *estimate*, never a result: it mirrors the filter
language's equality, ``$in``/``$nin``, ``$ne``, ``$exists``, range operators
and ``$and``/``$or``/``$not``, on metadata keys and on the columns ``id``,
``external_id`` and ``created_at`` (sampled with the metadata: a time range
on ``created_at`` is the commonest filter that follows topic drift); any
other shape (``text``, ``$like``, ``$contains``, SQLAlchemy expressions) is
"unknown" and planning falls back to the planner and a bounded count.  A
wrong estimate costs time, not rows: an ANN scan that comes back short is
re-run exactly.

Size: a filter beyond the compiler's limits (see
:func:`~vectorstore.query.filters.check_limits`) is "unknown" before any of
it is evaluated, and an evaluation stays linear in the filter: a ``$in`` list is
hashed once per scan, not compared value by value on every sampled row, and
a filter is remembered by a digest of its JSON text, not by the text.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from vectorstore.errors import FilterError

from .filters import COLUMN_FIELDS, check_limits

#: The columns sampled with the metadata, so that filters on them are judged too.
SAMPLED_COLUMNS = ("id", "external_id", "created_at")

__all__ = [
    "SAMPLED_COLUMNS",
    "SAMPLE_ROWS",
    "SAMPLE_TTL_S",
    "MetadataSample",
    "cached_sample",
    "metadata_sample",
]

#: Sampled rows per collection: a 1% filter shows ~20 hits, enough to tell
#: "hundreds" from "tens of thousands" (the choice only has to be right by an
#: order of magnitude; near the crossover both strategies cost about the same).
SAMPLE_ROWS = 2000
#: Sampled rows a filter outside the counted shapes is evaluated on (once per
#: distinct filter, then remembered).
SCAN_ROWS = 500
#: How long a sample is trusted (a bulk load changes the collection's size).
SAMPLE_TTL_S = 300.0
_MISSING = object()
_RANGE = ("$lt", "$lte", "$gt", "$gte")
_NUMPY_RANGE = {"$lt": np.less, "$lte": np.less_equal, "$gt": np.greater,
                "$gte": np.greater_equal}  # fmt: skip


@dataclass(frozen=True)
class MetadataSample:
    """Rows in the collection when sampled, and the sampled rows' metadata.

    Estimates cost microseconds: equality and ``$in`` on one key read a
    per-key count of values (built on first use); other shapes are evaluated
    on :data:`SCAN_ROWS` sampled rows once (about a millisecond) and
    remembered by the filter's JSON text.
    """

    rows: int
    metadata: tuple[Any, ...]
    taken_at: float = field(default_factory=time.monotonic)
    #: The sampled rows' ids and embeddings (float32, one row each), aligned
    #: with ``metadata``; empty when the sample was built without them.
    ids: tuple[int, ...] = ()
    vectors: Any = None
    #: The sampled rows' ``external_id`` and ``created_at`` (as POSIX seconds,
    #: None where null), aligned with ``metadata``; empty when not sampled.
    external_ids: tuple[str | None, ...] = ()
    created: tuple[float | None, ...] = ()
    _values: dict[str, dict[Any, int]] = field(default_factory=dict, repr=False, compare=False)
    _memo: dict[bytes, int | None] = field(default_factory=dict, repr=False, compare=False)
    _masks: dict[bytes, Any] = field(default_factory=dict, repr=False, compare=False)
    _value_masks: dict[tuple[str, frozenset[Any]], Any] = field(
        default_factory=dict, repr=False, compare=False
    )
    _derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def unit_vectors(self) -> Any:
        """The sampled embeddings scaled to unit length (computed once)."""
        found = self._derived.get("unit")
        if found is None:
            norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            found = self._derived["unit"] = (self.vectors / np.maximum(norms, 1e-30)).astype(
                np.float32
            )
        return found

    def squared_norms(self) -> Any:
        """The sampled embeddings' squared lengths (computed once)."""
        found = self._derived.get("squared")
        if found is None:
            found = self._derived["squared"] = np.einsum("ij,ij->i", self.vectors, self.vectors)
        return found

    def estimate(self, spec: Any) -> int | None:
        """Estimated rows kept by the dictionary filter ``spec``; None when unknown.

        None also for a malformed filter, and for one beyond the filter
        language's size or depth limits (checked first, without recursion):
        planning then compiles it, and the compiler says what is wrong.
        """
        if spec is None:
            return self.rows
        try:
            check_limits(spec)
        except FilterError:
            return None
        if not self.metadata:
            return 0 if self.rows == 0 else None
        try:
            spec = _normalized(spec)
            if spec is _UNKNOWN or (spec is not None and _names_columns(spec)
                                    and not self._has_columns()):  # fmt: skip
                return None
            return self._estimate(spec)
        except (RecursionError, TypeError, ValueError):
            return None  # a malformed filter: the compiler will say what is wrong

    def _has_columns(self) -> bool:
        n = len(self.metadata)
        return len(self.ids) == n and len(self.external_ids) == n and len(self.created) == n

    def _range_mask(self, spec: Any) -> Any:
        """The mask of one sampled column's range, by numpy; None for any other filter.

        ``{"created_at": {"$gte": a, "$lt": b}}`` (bounds normalized to
        seconds) or the same on ``id``: a time range whose bounds move with
        every call ("the last 7 days") would otherwise be evaluated row by
        row in Python on every call (~1-2 us a row), as nothing repeats.
        """
        if not isinstance(spec, Mapping) or len(spec) != 1 or not self._has_columns():
            return None
        ((key, value),) = spec.items()
        if key not in ("created_at", "id") or not isinstance(value, Mapping) or not value:
            return None
        values = self._derived.get("column:" + key)
        if values is None:
            raw = self.created if key == "created_at" else self.ids
            values = np.array([np.nan if v is None else float(v) for v in raw])
            self._derived["column:" + key] = values
        mask = ~np.isnan(values)
        for op, bound in value.items():
            bounds = bound if op == "$between" else (bound,)
            if op not in (*_RANGE, "$between") or not isinstance(bounds, list | tuple):
                return None
            if len(bounds) != (2 if op == "$between" else 1) or not all(map(_is_number, bounds)):
                return None
            with np.errstate(invalid="ignore"):
                if op == "$between":
                    mask &= (values >= bounds[0]) & (values <= bounds[1])
                else:
                    mask &= _NUMPY_RANGE[op](values, bounds[0])
        mask.flags.writeable = False
        return mask

    def _columns(self, i: int) -> dict[str, Any] | None:
        """Sampled row ``i``'s column values, as the sample evaluates them (None: not sampled)."""
        if not self._has_columns():
            return None
        return {"id": self.ids[i], "external_id": self.external_ids[i],
                "created_at": self.created[i]}  # fmt: skip

    def matches(self, spec: Any) -> Any:
        """Which sampled rows the dictionary filter ``spec`` keeps: a boolean array, or None.

        None where :meth:`estimate` is None (shapes the sample cannot judge).
        Evaluated on every sampled row once per distinct filter (about 1-2 us
        a row), then remembered by the filter's digest.
        """
        n = len(self.metadata)
        if spec is None:
            return np.ones(n, dtype=bool)
        if self.estimate(spec) is None:
            return None
        spec = _normalized(spec)  # known by now: the estimate normalized it too
        ranged = self._range_mask(spec)
        if ranged is not None:
            return ranged
        equal = _equality(spec)
        if equal is not None:  # the commonest filter: rows by value, no evaluation per row
            field_name, values = equal[0], frozenset(equal[1])
            remembered = self._value_masks.get((field_name, values))
            if remembered is None:
                rows = self._rows_by_value(field_name)
                out = np.zeros(n, dtype=bool)
                for c in values:
                    out[rows.get(c, _NO_ROWS)] = True
                out.flags.writeable = False  # shared by every call with this filter
                if len(self._value_masks) >= _MEMO_MAX:
                    self._value_masks.clear()
                remembered = self._value_masks[(field_name, values)] = out
            return remembered
        try:
            dumped = json.dumps(spec, sort_keys=True)
        except (TypeError, ValueError):
            return None
        key = hashlib.blake2b(dumped.encode(), digest_size=16).digest()
        found = self._masks.get(key)
        if found is None:
            sets: _Sets = {}
            out = np.zeros(n, dtype=bool)
            try:
                for i, meta in enumerate(self.metadata):
                    row = _Row(meta if isinstance(meta, Mapping) else {}, self._columns(i))
                    verdict = _matches(spec, row, sets)
                    if verdict is None:
                        return None
                    out[i] = verdict
            except (RecursionError, TypeError, ValueError):
                return None
            out.flags.writeable = False  # shared by every call with this filter
            if len(self._masks) >= _MEMO_MAX:
                self._masks.clear()
            found = self._masks[key] = out
        return found

    def _rows_by_value(self, key: str) -> dict[Any, Any]:
        """Sampled row positions (integer arrays) by canonical value of top-level ``key``.

        Built once per key; arrays, so that indexing a mask by them costs no
        conversion per call.
        """
        found = self._derived.get("rows:" + key)
        if found is None:
            lists: dict[Any, list[int]] = {}
            for i, meta in enumerate(self.metadata):
                if isinstance(meta, Mapping) and key in meta:
                    c = _canonical(meta[key])
                    if c is not None:
                        lists.setdefault(c, []).append(i)
            found = {c: np.asarray(rows, dtype=np.intp) for c, rows in lists.items()}
            self._derived["rows:" + key] = found
        return found

    def _estimate(self, spec: Any) -> int | None:
        ranged = self._range_mask(spec)
        if ranged is not None:
            return math.ceil(self.rows * int(ranged.sum()) / len(self.metadata))
        hits = self._counted(spec)
        if hits is None:
            try:
                dumped = json.dumps(spec, sort_keys=True)
            except (TypeError, ValueError):
                return None  # not a plain dictionary filter (e.g. an expression)
            # A digest, not the text: a filter of 100,000 values is a megabyte.
            key = hashlib.blake2b(dumped.encode(), digest_size=16).digest()
            if key in self._memo:
                return self._memo[key]
            found = self._scan(spec)
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[key] = found
            return found
        return math.ceil(self.rows * hits / len(self.metadata))

    def _scan(self, spec: Any) -> int | None:
        # SCAN_ROWS of the sample, evaluating a filter in Python costs ~1-2 us a
        # row and the choice needs an order of magnitude.  Spread through it,
        # not the first ones: a sample comes in the heap's order (BERNOULLI
        # keeps it, a whole small collection is read in it), so the first
        # rows are the oldest, and a range on a time or a counter would be
        # judged by them alone (measured: `$lt` half of 2,000 ordered rows was
        # estimated at all 2,000).
        step = max(1, math.ceil(len(self.metadata) / SCAN_ROWS))
        picked = range(0, len(self.metadata), step)
        hits = 0
        sets: _Sets = {}
        for i in picked:
            meta = self.metadata[i]
            row = _Row(meta if isinstance(meta, Mapping) else {}, self._columns(i))
            verdict = _matches(spec, row, sets)
            if verdict is None:
                return None
            hits += verdict
        return math.ceil(self.rows * hits / len(picked))

    def _counted(self, spec: Any) -> int | None:
        """Sampled rows matching ``{key: v}``, ``{key: {"$eq": v}}`` or ``{key: {"$in": [..]}}``."""
        found = _equality(spec)
        if found is None:
            return None
        key, canon = found
        counts = self._values.get(key)
        if counts is None:
            counts = {}
            for meta in self.metadata:
                if isinstance(meta, Mapping) and key in meta:
                    c = _canonical(meta[key])
                    if c is not None:
                        counts[c] = counts.get(c, 0) + 1
            self._values[key] = counts
        return sum(counts.get(c, 0) for c in set(canon))


_MEMO_MAX = 1024
#: No sampled row has the value (an empty index array; a list () would select every row).
_NO_ROWS = np.zeros(0, dtype=np.intp)


def _equality(spec: Any) -> tuple[str, list[Any]] | None:
    """``(key, canonical values)`` of ``{key: v}``, ``{key: {"$eq": v}}``, ``$in``."""
    if not isinstance(spec, Mapping) or len(spec) != 1:
        return None
    ((key, value),) = spec.items()
    if not isinstance(key, str) or key.startswith("$") or "." in key:
        return None
    if key in COLUMN_FIELDS or key == "metadata":
        return None
    if isinstance(value, Mapping):
        if len(value) != 1:
            return None
        ((op, operand),) = value.items()
        if op == "$eq":
            wanted = [operand]
        elif op == "$in" and isinstance(operand, list | tuple):
            wanted = list(operand)
        else:
            return None
    else:
        wanted = [value]
    canon = [_canonical(v) for v in wanted]
    if any(c is None for c in canon):
        return None
    return key, canon


def _canonical(value: Any) -> Any:
    """A hashable stand-in with JSON equality (1 == 1.0, true != 1); None if not a scalar."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        try:
            return ("n", float(value))
        except OverflowError:
            return None
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("z", None)
    return None


#: Per scan: a ``$in`` / ``$nin`` list (by id) -> its values hashed by JSON
#: equality, or None when one is not JSON (then compared one by one).
_Sets = dict[int, frozenset[Any] | None]


def _hashed(value: Any) -> Any:
    """A hashable stand-in of a JSON value with JSON equality (1 == 1.0, true != 1).

    Raises:
        TypeError: ``value`` is not JSON.
    """
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)  # Python compares and hashes 1 and 1.0 alike, exactly
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("z", None)
    if isinstance(value, list | tuple):
        return ("a", tuple(_hashed(v) for v in value))
    if isinstance(value, Mapping):
        return ("o", frozenset((k, _hashed(v)) for k, v in value.items()))
    raise TypeError(type(value).__name__)


def _value_set(operand: Any, sets: _Sets) -> frozenset[Any] | None:
    key = id(operand)  # the filter outlives the scan: its lists keep their ids
    if key not in sets:
        try:
            sets[key] = frozenset(_hashed(v) for v in operand)
        except TypeError:
            sets[key] = None
    return sets[key]


@dataclass(frozen=True)
class _Row:
    """One sampled row as a filter sees it: its metadata, and its sampled columns."""

    meta: Mapping[str, Any]
    columns: Mapping[str, Any] | None


def _matches(spec: Any, row: _Row, sets: _Sets) -> bool | None:
    if isinstance(spec, Mapping):
        return _all_known(_clause(key, value, row, sets) for key, value in spec.items())
    if isinstance(spec, Sequence) and not isinstance(spec, str | bytes) and spec:
        return _all_known(_matches(item, row, sets) for item in spec)
    return None  # a SQLAlchemy expression, or a shape the compiler will reject


def _all_known(verdicts: Iterable[bool | None]) -> bool | None:
    """AND of three-valued verdicts: None (the sample cannot judge) if any is None."""
    result = True
    for verdict in verdicts:
        if verdict is None:
            return None
        result = result and verdict
    return result


def _clause(key: Any, value: Any, row: _Row, sets: _Sets) -> bool | None:
    if not isinstance(key, str):
        return None
    if key in ("$and", "$or"):
        if not isinstance(value, list | tuple) or not value:
            return None
        parts = [_matches(item, row, sets) for item in value]
        if any(p is None for p in parts):
            return None
        return all(parts) if key == "$and" else any(parts)
    if key == "$not":
        inner = _matches(value, row, sets)
        return None if inner is None else not inner
    if key in SAMPLED_COLUMNS and row.columns is not None:
        return _column_clause(row.columns[key], value, sets)
    if key.startswith("$") or key in COLUMN_FIELDS or key == "metadata":
        return None
    element: Any = row.meta
    for part in key.split("."):
        element = element.get(part, _MISSING) if isinstance(element, Mapping) else _MISSING
    if not isinstance(value, Mapping) or not any(str(k).startswith("$") for k in value):
        return element is not _MISSING and _json_equal(element, value)
    return _all_known(_operator(op, operand, element, sets) for op, operand in value.items())


def _column_clause(element: Any, value: Any, sets: _Sets) -> bool | None:
    """A column's condition on one sampled row (operands normalized by :func:`_normalized`).

    SQL NULL never equals nor falls in a range; ``$ne`` / ``$nin`` keep it (the
    compiler writes ``IS DISTINCT FROM``), ``$exists: false`` keeps only it.
    """
    present = _MISSING if element is None else element
    if not isinstance(value, Mapping) or not any(str(k).startswith("$") for k in value):
        value = {"$eq": value}
    verdicts = []
    for op, operand in value.items():
        if op in ("$eq", "$ne") and operand is None:  # compiled to IS [NOT] NULL
            verdicts.append((element is None) == (op == "$eq"))
        elif op in ("$like", "$ilike"):
            return None
        else:
            verdicts.append(_operator(op, operand, present, sets))
    return _all_known(verdicts)


#: A filter the sample cannot normalize (an unparseable created_at bound).
_UNKNOWN: Any = object()


def _names_columns(spec: Any) -> bool:
    """Whether the (normalized) filter names a sampled column anywhere."""
    if isinstance(spec, Mapping):
        for key, value in spec.items():
            if key in SAMPLED_COLUMNS:
                return True
            if key in ("$and", "$or", "$not") and _names_columns(value):
                return True
        return False
    if isinstance(spec, list | tuple):
        return any(_names_columns(part) for part in spec)
    return False


def _normalized(spec: Any) -> Any:
    """``spec`` with operands as the sample compares them; the same object when none change.

    ``created_at`` bounds (ISO strings, datetimes, dates) become POSIX seconds
    (a bound without a time zone is taken as UTC: an estimate), and an
    integer ``external_id`` its text.  :data:`_UNKNOWN` when a ``created_at``
    bound cannot be read.
    """
    if isinstance(spec, list | tuple):
        parts = [_normalized(part) for part in spec]
        if any(p is _UNKNOWN for p in parts):
            return _UNKNOWN
        return spec if all(p is q for p, q in zip(parts, spec, strict=True)) else parts
    if not isinstance(spec, Mapping):
        return spec
    out: dict[Any, Any] = {}
    changed = False
    for key, value in spec.items():
        if key in ("$and", "$or", "$not"):
            new = _normalized(value)
        elif key in ("created_at", "external_id"):
            new = _operands(value, _instant if key == "created_at" else _external_id)
        else:
            new = value
        if new is _UNKNOWN:
            return _UNKNOWN
        changed = changed or new is not value
        out[key] = new
    return out if changed else spec


def _operands(value: Any, convert: Any) -> Any:
    """A field's value or operator mapping with every operand converted (same object if none)."""
    if isinstance(value, Mapping) and value and all(str(k).startswith("$") for k in value):
        items = {op: _convert_operand(operand, convert) for op, operand in value.items()}
        if any(v is _UNKNOWN for v in items.values()):
            return _UNKNOWN
        same = all(items[op] is operand for op, operand in value.items())
        return value if same else items
    return _convert_operand(value, convert)


def _convert_operand(operand: Any, convert: Any) -> Any:
    if isinstance(operand, list | tuple):
        parts = [convert(v) for v in operand]
        if any(p is _UNKNOWN for p in parts):
            return _UNKNOWN
        return operand if all(p is q for p, q in zip(parts, operand, strict=True)) else parts
    return convert(operand)


def _instant(value: Any) -> Any:
    """A created_at bound as POSIX seconds (None stays None; unreadable: _UNKNOWN)."""
    if value is None or isinstance(value, bool):
        return _UNKNOWN if isinstance(value, bool) else None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return _UNKNOWN
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        return _UNKNOWN
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def _external_id(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # integer external ids are stored as text
    return value


def _operator(op: str, operand: Any, element: Any, sets: _Sets) -> bool | None:
    present = element is not _MISSING
    if op == "$eq":
        return present and _json_equal(element, operand)
    if op == "$ne":
        return not (present and _json_equal(element, operand))
    if op in ("$in", "$nin") and isinstance(operand, list | tuple | set | frozenset):
        wanted = _value_set(operand, sets) if present else None
        if not present:
            found = False
        elif wanted is not None:
            found = _hashed(element) in wanted
        else:
            found = any(_json_equal(element, v) for v in operand)
        return found if op == "$in" else not found
    if op == "$exists" and isinstance(operand, bool):
        return present == operand
    if op in _RANGE:
        return present and _compare(element, op, operand)
    if op == "$between" and isinstance(operand, list | tuple) and len(operand) == 2:
        return (
            present
            and _compare(element, "$gte", operand[0])
            and _compare(element, "$lte", operand[1])
        )
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _compare(element: Any, op: str, bound: Any) -> bool:
    same = (_is_number(element) and _is_number(bound)) or (
        isinstance(element, str) and isinstance(bound, str)
    )
    if not same:
        return False
    if op == "$lt":
        return bool(element < bound)
    if op == "$lte":
        return bool(element <= bound)
    if op == "$gt":
        return bool(element > bound)
    return bool(element >= bound)


#: Samples per engine, by (table, collection id): shared by every repository of
#: the collection on that engine, also those an app creates per request.
_CACHE: weakref.WeakKeyDictionary[Engine, dict[tuple[str, int], MetadataSample]] = (
    weakref.WeakKeyDictionary()
)
_CACHE_MAX = 256


def metadata_sample(conn: Connection, table: str, collection_id: int) -> MetadataSample:
    """The collection's cached sample (two queries when taken; none while fresh).

    ``table`` is the quoted table name.
    """
    samples = _CACHE.get(conn.engine)
    if samples is None:
        samples = _CACHE.setdefault(conn.engine, {})
    key = (table, collection_id)
    sample = samples.get(key)
    if sample is not None and time.monotonic() - sample.taken_at <= SAMPLE_TTL_S:
        return sample
    rows = int(
        conn.execute(
            text(f"SELECT count(*) FROM {table} WHERE collection_id = :c"), {"c": collection_id}
        ).scalar_one()
    )
    # The embedding in pgvector's binary form (vector_send: int16 dim, int16
    # unused, dim big-endian float4): parsed without a float per value.
    columns = "id, metadata, vector_send(embedding), external_id, created_at"
    if rows <= SAMPLE_ROWS:
        stmt = f"SELECT {columns} FROM {table} WHERE collection_id = :c"
    else:
        percent = min(100.0, 100.0 * SAMPLE_ROWS / rows)
        stmt = (
            f"SELECT {columns} FROM {table} TABLESAMPLE BERNOULLI ({percent:.6f}) "
            "WHERE collection_id = :c"
        )
    found = conn.execute(text(stmt), {"c": collection_id}).all()
    metadata = tuple(row[1] for row in found)
    ids = tuple(int(row[0]) for row in found)
    vectors = _vectors(row[2] for row in found)
    sample = MetadataSample(
        rows=rows, metadata=metadata, ids=ids, vectors=vectors,
        external_ids=tuple(row[3] for row in found),
        created=tuple(None if row[4] is None else _posix(row[4]) for row in found),
    )  # fmt: skip
    if len(samples) >= _CACHE_MAX:
        samples.clear()
    samples[key] = sample
    return sample


def _posix(value: datetime) -> float:
    """A sampled ``created_at`` (timestamptz) as POSIX seconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def _vectors(sent: Iterable[Any]) -> Any:
    """A float32 matrix from vector_send values (None when there are none)."""
    parts = [np.frombuffer(bytes(b), dtype=">f4", offset=4) for b in sent]
    if not parts:
        return None
    return np.vstack(parts).astype(np.float32)


def cached_sample(engine: Engine, table: str, collection_id: int) -> MetadataSample | None:
    """The collection's sample if one is cached and fresh; None otherwise (no query)."""
    samples = _CACHE.get(engine)
    sample = None if samples is None else samples.get((table, collection_id))
    if sample is not None and time.monotonic() - sample.taken_at <= SAMPLE_TTL_S:
        return sample
    return None
