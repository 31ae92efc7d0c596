"""The dictionary filter language, compiled to bound SQLAlchemy expressions.

Design decision: a filter is *compiled*, never formatted.  Every user value ends
up in a bind parameter (or a JSONB bind), so a value that looks like SQL
(``"' OR 1=1 --"``) is only ever data.  The compiler validates the whole filter
before any SQL exists: an unknown operator, a wrong operand type or a malformed
shape raises :class:`~vectorstore.FilterError` naming the offending path.

Fields: a key naming a document column (``id``, ``external_id``, ``text``,
``created_at``) filters that column; any other key is a metadata key (a dotted
key such as ``"a.b"`` is a nested path).  The key ``metadata`` itself takes
``$contains`` with an object (``metadata @> {...}``).

Operators (the vocabulary of other vector stores)::

    {"k": v}                  equality ($eq)          {"k": {"$ne": v}}
    {"k": {"$lt": v}}  $lte  $gt  $gte                {"k": {"$between": [lo, hi]}}
    {"k": {"$in": [..]}}  $nin                        {"k": {"$like": "a%"}}  $ilike
    {"k": {"$exists": true}}                          {"k": {"$contains": v}}
    {"$and": [f, ...]}  {"$or": [f, ...]}  {"$not": f}

Index use: metadata equality compiles to JSONB containment
(``metadata @> '{"k": v}'``), which the GIN index serves; for a scalar ``v``
containment is exact equality (an array value ``[v]`` does not match, as
jsonb lets an array contain a bare scalar only at the top level).
``$exists`` on a top-level key compiles to ``metadata ? 'k'``, which the
``jsonb_path_ops`` GIN index does not serve (it hashes values with their
paths; existence is rarely selective, and the planner then scans or ranks
by the index instead).  Range operators on metadata guard on ``jsonb_typeof`` so that a
string never compares with a number (and no cast can fail mid-query).
``$ne`` and ``$nin`` match documents that lack the key (as in MongoDB).

``$in`` and ``$nin`` over a metadata key compile to ONE expression with ONE
bound parameter, whatever the list's length.  They compiled to one
containment per value, ORed: a parameter per value, and a plan that could
test every containment on every row (a seq scan, ~100 s per call at 16,000
values on 100,000 rows; see ``benchmarks/results/filter_in_tables.md``):

* a scalar ``$in`` of at most :data:`INDEXED_IN_MAX` values:
  ``metadata @> ANY(CAST(:docs AS jsonb[]))``, one containment document per
  value: the GIN index serves it (a bitmap scan with one index search per
  value) and it means exactly what ``{"k": v}`` means;
* longer scalar lists and every ``$nin``: ``(metadata -> 'k' IN (SELECT
  jsonb_array_elements(:values))) IS TRUE``, a hashed subplan: one hash probe
  per row, built once per query.  jsonb equality is JSON equality
  (``1 = 1.0``, ``true <> 1``, ``"1" <> 1``, ``[1] <> 1``) and ``->`` with
  a text key only descends objects, as containment does; ``IS TRUE`` makes a
  missing key "not in" (so ``$nin`` keeps it);
* lists and objects inside ``$in``: the same hashed form over the element
  ``{"k": [...]}`` equality compares (exact jsonb equality, as ``$eq``).

Why these, measured with EXPLAIN ANALYZE on 100,000 rows whose ``n`` mixes
ints, strings, floats, bools and one-element arrays (``$in`` values of mixed
types; ms of execution, warm)::

    values                       10                1,000              100,000
    @> ANY(jsonb[])          0.04 GIN bitmap   33-46 GIN bitmap   > 120 s (cancelled)
    @@ jsonpath or-chain     0.03 GIN bitmap   50 GIN bitmap      > 120 s (68 s at 10,000)
    -> = ANY(jsonb[])        60-81 seq scan    58 seq scan        296 seq scan, hashed
    -> IN (SELECT ...)       66 seq scan       68 seq scan        123 seq scan, hashed
    OR of @> (the old form)  0.06 BitmapOr     92 BitmapOr        not run

Containment and jsonpath are the only forms the GIN index serves, and both
recheck every fetched row against the whole list (jsonb_path_ops is lossy),
so their cost is rows x values: a 100-value list whose values match 97% of
the rows took 580 ms against 128 ms for the hashed form, 6.8 s at 1,000
values; selective 100-value lists took 0.7-12 ms against ~90 ms.  Hence
containment up to :data:`INDEXED_IN_MAX` values, hashing above.
``= ANY(jsonb[])`` is hashed only when its array is a constant: under a
generic plan (psycopg 3 prepares a statement run five times) it compared
linearly (28 s at 10,000 values); the subplan is hashed either way.  A
jsonpath would also need every key and string escaped for jsonpath's own
grammar; one array document (``metadata -> 'k' <@ :doc``, guarded against
arrays) is searched linearly per row (463 ms at 1,000 values); and the old
OR, planned as a seq scan before the table was vacuumed, took 7 s at 1,000.

Limits: a filter is checked before anything is compiled, without recursion,
and refused with a :class:`~vectorstore.FilterError` naming the limit when
it holds more than :data:`MAX_FILTER_VALUES` values,
:data:`MAX_FILTER_NODES` fields and operators, values nested deeper than
:data:`MAX_VALUE_DEPTH`, operators deeper than :data:`MAX_FILTER_DEPTH`, or
a dotted key of more than :data:`MAX_PATH_PARTS` parts.  Keys and paths in
messages have control characters escaped (one printable line).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Text,
    all_,
    and_,
    any_,
    bindparam,
    cast,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from vectorstore.errors import FilterError
from vectorstore.metadata_keys import indexed_keys, key_element

__all__ = [
    "COLUMN_FIELDS",
    "INDEXED_IN_MAX",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_NODES",
    "MAX_FILTER_VALUES",
    "MAX_PATH_PARTS",
    "MAX_VALUE_DEPTH",
    "OPERATORS",
    "FilterLike",
    "check_limits",
    "compile_filter",
    "compile_metadata_filter",
    "index_served",
    "metadata_conjuncts",
    "plain_equalities",
    "unserved_fields",
]

#: Document columns a dictionary filter may name directly.
COLUMN_FIELDS = ("id", "external_id", "text", "created_at")
_FIELD_OPERATORS = (
    "$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$between",
    "$like", "$ilike", "$exists", "$contains",
)  # fmt: skip
_LOGICAL = ("$and", "$or", "$not")
#: Every operator the dictionary language knows.
OPERATORS = _FIELD_OPERATORS + _LOGICAL

#: Nesting of ``$and`` / ``$or`` / ``$not`` (and of lists of filters).
MAX_FILTER_DEPTH = 32
#: Field names (a dotted one: one per part), operators and ``$and`` / ``$or``
#: items in one filter, all levels together.  Each compiles to at most five
#: bound parameters, and psycopg 3 sends at most 65,535 per statement.
MAX_FILTER_NODES = 10_000
#: Values in one filter, all operands together: each scalar, list and object
#: counts one, except the list that ``$in``, ``$nin`` or ``$between`` takes
#: (only its items count).  ``$in`` of 100,000 values compiles in tens of ms.
MAX_FILTER_VALUES = 100_000
#: Nesting of lists and objects inside one operand (``[1]`` is one level): the
#: depth stored metadata may have (``MAX_METADATA_DEPTH``), so any stored value
#: can be matched, and far from a recursion limit in every reader.
MAX_VALUE_DEPTH = 64
#: Parts of a dotted metadata key (``"a.b.c"`` has three); deeper paths cannot
#: exist in stored metadata.
MAX_PATH_PARTS = 64
#: Scalar ``$in`` lists up to this long compile to containment the GIN index
#: serves; longer ones to one hashed lookup (see the module docstring).
INDEXED_IN_MAX = 100

FilterLike = Mapping[str, Any] | ColumnElement[bool] | Sequence[Any] | None


def compile_filter(spec: Any, model: Any) -> ColumnElement[bool] | None:
    """Compile ``spec`` into a boolean SQL expression over ``model``'s columns.

    Args:
        spec: None, a dictionary filter, a SQLAlchemy boolean expression on any
            mapped column, or a list mixing both (combined with AND).
        model: the mapped document class.

    Returns:
        The expression, or None for "no filter".

    Raises:
        FilterError: the filter is malformed; nothing was sent to the database.
    """
    check_limits(spec)
    return _compile(spec, model)


def _compile(spec: Any, model: Any) -> ColumnElement[bool] | None:
    if spec is None:
        return None
    if isinstance(spec, ColumnElement):
        return spec
    if isinstance(spec, Mapping):
        return _Compiler(model).node(spec, "filter", 0)
    if isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
        parts = [_compile(item, model) for item in spec]
        kept = [p for p in parts if p is not None]
        return and_(*kept) if kept else None
    raise FilterError(
        f"a filter must be a dict, a SQLAlchemy expression or a list of them, "
        f"got {type(spec).__name__}"
    )


def index_served(spec: Any, keyed: frozenset[str], columns: frozenset[str]) -> bool:
    """Whether an index narrows the rows dictionary filter ``spec`` keeps (else all are read).

    What the inline layout's indexes serve, as :class:`_Compiler` writes the
    conditions: the GIN index on ``metadata`` (``jsonb_path_ops``) a scalar
    equality, a scalar ``$in`` of at most :data:`INDEXED_IN_MAX` values and
    ``$contains``; an indexed key's btree (``keyed``: the keys declared in
    ``indexed_metadata_keys`` whose btree exists) its equalities and ranges; a
    btree leading with a column (``columns``, read from the catalog: ``id``,
    ``external_id``, an app's own index on ``created_at``) that column's
    equalities, ``$in`` and ranges.  A conjunction (or a list of filters) is
    served when one of its parts is, a disjunction when all are.  A range,
    ``$ne``, ``$nin``, ``$exists`` or a pattern on a key without a btree is
    not, nor is any condition on a column without one: ranked exactly, such a
    filter reads every row of the collection.  SQLAlchemy expressions count
    as served (what they compile to is the app's to know).
    """
    return not unserved_fields(spec, keyed, columns)


def unserved_fields(
    spec: Any, keyed: frozenset[str], columns: frozenset[str], depth: int = 0
) -> dict[str, tuple[str, ...]]:
    """The fields (and their operators) of the parts of ``spec`` that no index serves.

    Empty when an index narrows the filter (see :func:`index_served`); else,
    for a warning that names what to index, each unserved field with its
    operators.  A filter nested beyond :data:`MAX_FILTER_DEPTH` counts as
    served here: the compiler refuses it with a FilterError.
    """
    found: dict[str, tuple[str, ...]] = {}
    if depth > MAX_FILTER_DEPTH:
        return found
    if isinstance(spec, list | tuple):
        parts = [unserved_fields(part, keyed, columns, depth + 1) for part in spec]
        if parts and not all(parts):
            return {}
        for part in parts:
            found.update(part)
        return found
    if not isinstance(spec, Mapping):
        return {}
    for key, value in spec.items():
        if key in ("$and", "$or") and isinstance(value, list | tuple):
            parts = [unserved_fields(part, keyed, columns, depth + 1) for part in value]
            if (key == "$and" and not all(parts)) or (key == "$or" and not any(parts)):
                return {}
            for part in parts:
                found.update(part)
        elif not isinstance(key, str) or key.startswith("$"):
            found[str(key)] = (str(key),)  # $not and the like: what they keep no index finds
        elif key == "metadata":
            return {}
        else:
            ops = _operators(value)
            if _field_served(key, ops, keyed, columns):
                return {}
            found[key] = tuple(ops)
    return found


def _operators(value: Any) -> dict[str, Any]:
    """A field's conditions as ``{operator: operand}`` (a bare value is ``$eq``)."""
    if (
        isinstance(value, Mapping)
        and value
        and all(isinstance(k, str) and k.startswith("$") for k in value)
    ):
        return dict(value)
    return {"$eq": value}


_RANGES = ("$lt", "$lte", "$gt", "$gte", "$between")


def _field_served(
    key: str, ops: Mapping[str, Any], keyed: frozenset[str], columns: frozenset[str]
) -> bool:
    if key in COLUMN_FIELDS:  # a btree on the column, or nothing
        return key in columns and any(op in ("$eq", "$in", *_RANGES) for op in ops)
    own = key in keyed  # a top-level key with a btree of its own
    for op, operand in ops.items():
        scalar = not isinstance(operand, list | dict | tuple | set | frozenset | Mapping)
        if op == "$eq" and scalar:
            return True
        if op == "$in" and isinstance(operand, list | tuple | set | frozenset):
            values = list(operand)
            flat = all(not isinstance(v, list | dict | Mapping) for v in values)
            if flat and len(values) <= INDEXED_IN_MAX:
                return True
        if op == "$contains":
            return True
        if own and op in _RANGES:
            return True
    return False


def plain_equalities(spec: Any) -> dict[str, Any] | None:
    """The containment document of a filter made only of top-level metadata equalities.

    ``{"tenant": "acme", "year": 2024}`` (the most common filter: a tenant, a
    category) compiles to the one condition ``metadata @> '{"tenant": "acme",
    "year": 2024}'``: for scalars, containment of the whole object is the AND
    of the equalities, and one GIN condition.  Returns None for any other
    shape (operators, nested or dotted keys, document columns, lists or
    objects as values); those compile key by key.
    """
    if type(spec) is not dict or not spec or len(spec) > MAX_FILTER_NODES:
        return None  # too many keys: the compiler refuses it, naming the limit
    doc = {}
    for key, value in spec.items():
        if (
            type(key) is not str
            or not key
            or key[0] == "$"
            or "." in key
            or "\x00" in key
            or not _encodable(key)
            or key in COLUMN_FIELDS
            or key == "metadata"
            or isinstance(value, Mapping | list | tuple)
        ):
            return None
        try:
            doc[key] = _scalar(value, f"filter.{key}")
        except FilterError:
            return None  # the full compiler raises it, with the same message
    return doc


def _scalar(value: Any, where: str) -> Any:
    """A JSON scalar (str, int, float, bool, None); dates become ISO strings."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterError(f"{where}: NaN and infinity cannot be compared")
        return value
    if isinstance(value, str):
        return _checked_string(value, where, "a string")
    raise FilterError(
        f"{where}: expected a string, number, boolean or null, got {type(value).__name__}"
    )


def _checked_string(value: str, where: str, what: str) -> str:
    """``value`` if PostgreSQL can store it as text: no NUL, valid Unicode (no lone surrogate)."""
    if "\x00" in value:
        raise FilterError(f"{where}: {what} containing NUL cannot be stored or compared")
    if not _encodable(value):
        raise FilterError(f"{where}: {what} that is not valid Unicode (a lone surrogate)")
    return value


def _json_value(value: Any, where: str) -> Any:
    """Any JSON value (scalars, lists, objects), validated recursively."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise FilterError(f"{where}: object keys must be strings, got {key!r}")
            _checked_string(key, where, "an object key")
            out[key] = _json_value(item, _child(where, key))
        return out
    if isinstance(value, list | tuple):
        return [_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return _scalar(value, where)


def _ordered(value: Any, where: str) -> Any:
    """An operand of a range comparison: a number or a string (dates as ISO)."""
    checked = _scalar(value, where)
    if checked is None or isinstance(checked, bool):
        raise FilterError(f"{where}: range comparisons need a number or a string, got {value!r}")
    return checked


_TEXT_COLUMNS = ("external_id", "text")
_BIGINT = 2**63


def _column_value(key: str, value: Any, where: str) -> Any:
    """Check a (scalar-checked) operand against the column's type, before any SQL exists."""
    if value is None:
        return None
    if key == "id":
        if isinstance(value, bool) or not isinstance(value, int) or not -_BIGINT <= value < _BIGINT:
            raise FilterError(f"{where}: 'id' is compared with integers, got {value!r}")
        return value
    if key in _TEXT_COLUMNS:
        if isinstance(value, int) and not isinstance(value, bool) and key == "external_id":
            return str(value)  # integer external ids are stored as text
        if not isinstance(value, str):
            raise FilterError(f"{where}: {key!r} is compared with strings, got {value!r}")
        if not _encodable(value):
            raise FilterError(f"{where}: {key!r} operand is not valid Unicode")
        return value
    # created_at: ISO strings (dates and datetimes were turned into ISO by _scalar),
    # bound as datetimes: psycopg 3 binds a string as varchar, which PostgreSQL
    # does not compare with a timestamptz (psycopg2 sent it as an untyped literal).
    if not isinstance(value, str):
        raise FilterError(f"{where}: 'created_at' is compared with dates or datetimes")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise FilterError(f"{where}: {value!r} is not an ISO date or datetime") from None


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    for key in reversed(path[1:]):
        value = {key: value}
    return {path[0]: value}


def _json_values(items: list[Any], where: str) -> list[Any]:
    """The items of a ``$in`` / ``$nin`` list, each checked as :func:`_json_value` does.

    The common scalars are checked inline: a path string per value was most
    of the cost of checking 100,000 of them.
    """
    out = []
    for i, value in enumerate(items):
        kind = type(value)
        if (
            kind is int
            or kind is bool
            or value is None
            or (kind is str and value.isascii() and "\x00" not in value)
            or (kind is float and math.isfinite(value))
        ):
            out.append(value)
        else:
            out.append(_json_value(value, f"{where}[{i}]"))
    return out


def _one_of(element: Any, values: Any, *, unnest: bool = False) -> ColumnElement[bool]:
    """``(element IN (SELECT <each of values>)) IS TRUE``: one hashed lookup per row.

    PostgreSQL hashes an uncorrelated ``IN (SELECT ...)`` once per query
    whether ``values`` is a constant or a generic plan's parameter (``=
    ANY(:array)`` is hashed only for a constant).  ``IS TRUE`` keeps it a
    subplan (a bare ``IN`` may become a semi-join, which would take the
    ranking's plan apart) and makes it false, never NULL, for a missing key.
    ``values``: a jsonb array, or with ``unnest`` a SQL array.
    """
    each = func.unnest(values) if unnest else func.jsonb_array_elements(values)
    found: ColumnElement[bool] = element.in_(select(each)).is_(true())
    return found


# -- limits -------------------------------------------------------------------------
_SHOWN_KEY = 64
_CONTAINERS = (Mapping, list, tuple)
_HOLDERS = ("$in", "$nin", "$between")
_SETS = (list, tuple, set, frozenset)


def _shown(key: str) -> str:
    """``key`` for a message: unprintable characters escaped, a long key cut short."""
    if not key.isprintable():
        key = "".join(
            c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in key
        )
    return key if len(key) <= _SHOWN_KEY else key[: _SHOWN_KEY - 1] + "…"


def _child(where: str, key: str) -> str:
    return f"{where}.{_shown(key)}"


def _too_deep(where: str) -> str:
    return f"{where}: filter nested deeper than {MAX_FILTER_DEPTH} levels (MAX_FILTER_DEPTH)"


class _Budget:
    """What is left of the size limits while one filter is walked."""

    def __init__(self) -> None:
        self.nodes_left = MAX_FILTER_NODES
        self.values_left = MAX_FILTER_VALUES

    def nodes(self, count: int, where: str) -> None:
        self.nodes_left -= count
        if self.nodes_left < 0:
            raise FilterError(
                f"{where}: a filter holds at most {MAX_FILTER_NODES} fields, operators "
                "and $and/$or items (MAX_FILTER_NODES)"
            )

    def values(self, count: int, where: str) -> None:
        self.values_left -= count
        if self.values_left < 0:
            raise FilterError(
                f"{where}: a filter holds at most {MAX_FILTER_VALUES} values (MAX_FILTER_VALUES)"
            )


_FLAT_SCALARS = (str, int, float, bool, type(None))
_FLAT_MAX_KEYS = 64


def _small_and_flat(spec: Any) -> bool:
    """A dict of at most 64 string keys with scalar values: within every limit by construction."""
    return (
        type(spec) is dict
        and len(spec) <= _FLAT_MAX_KEYS
        and all(type(v) in _FLAT_SCALARS for v in spec.values())
        and all(type(k) is str and k.count(".") < MAX_PATH_PARTS for k in spec)
    )


def check_limits(spec: Any) -> None:
    """Refuse a filter beyond a size or depth limit, before anything is compiled.

    Iterative (safe on any depth) and linear in the filter's size.  It looks
    at the filter's shape only: anything else malformed is the compiler's to
    name.  With it passed, the compiler's recursion is bounded by
    :data:`MAX_FILTER_DEPTH` and :data:`MAX_VALUE_DEPTH`.

    Raises:
        FilterError: the filter exceeds :data:`MAX_FILTER_NODES`,
            :data:`MAX_FILTER_VALUES`, :data:`MAX_FILTER_DEPTH`,
            :data:`MAX_VALUE_DEPTH` or :data:`MAX_PATH_PARTS` (named in the message).
    """
    if _small_and_flat(spec):
        return  # the commonest filter (a few top-level equalities), checked per call
    budget = _Budget()
    filters: list[tuple[Mapping[Any, Any], str, int]] = []
    lists: list[tuple[Any, int]] = [(spec, 0)]
    while lists:  # a list of filters (or of lists of them) is their AND
        node, level = lists.pop()
        if isinstance(node, Mapping):
            filters.append((node, "filter", 0))
        elif isinstance(node, Sequence) and not isinstance(node, str | bytes):
            if level >= MAX_FILTER_DEPTH:
                raise FilterError(_too_deep("filter"))
            budget.nodes(len(node), "filter")
            lists.extend((item, level + 1) for item in node)
    while filters:
        node, where, depth = filters.pop()
        if depth > MAX_FILTER_DEPTH:
            raise FilterError(_too_deep(where))
        budget.nodes(len(node), where)
        for key, value in node.items():
            if not isinstance(key, str):
                continue
            here = _child(where, key)
            if key in ("$and", "$or") and isinstance(value, list | tuple):
                budget.nodes(len(value), here)
                for i, item in enumerate(value):
                    if isinstance(item, Mapping):
                        filters.append((item, f"{here}[{i}]", depth + 1))
            elif key == "$not" and isinstance(value, Mapping):
                filters.append((value, here, depth + 1))
            elif not key.startswith("$"):
                _check_field(key, value, here, budget)


def _check_field(key: str, value: Any, where: str, budget: _Budget) -> None:
    if key not in COLUMN_FIELDS and key != "metadata":
        dots = key.count(".")
        if dots >= MAX_PATH_PARTS:
            raise FilterError(
                f"{where}: a metadata path has at most {MAX_PATH_PARTS} parts (MAX_PATH_PARTS)"
            )
        budget.nodes(dots, where)  # each further part binds a key of its own
    if (
        isinstance(value, Mapping)
        and value
        and all(isinstance(k, str) and k.startswith("$") for k in value)
    ):
        budget.nodes(len(value), where)
        for op, operand in value.items():
            holder = op in _HOLDERS and isinstance(operand, _SETS)
            _check_value(operand, _child(where, op), budget, holder=holder)
    else:
        _check_value(value, where, budget, holder=False)


def _check_value(value: Any, where: str, budget: _Budget, *, holder: bool) -> None:
    """Count an operand's values and bound its nesting (``holder``: a list of operands)."""
    items = value if holder else (value,)
    budget.values(len(items), where)
    stack = [(item, 1) for item in items if isinstance(item, _CONTAINERS)]
    while stack:
        node, level = stack.pop()
        if level > MAX_VALUE_DEPTH:
            raise FilterError(
                f"{where}: a value nested deeper than {MAX_VALUE_DEPTH} levels (MAX_VALUE_DEPTH)"
            )
        children = node.values() if isinstance(node, Mapping) else node
        budget.values(len(children), where)
        stack.extend((child, level + 1) for child in children if isinstance(child, _CONTAINERS))


def metadata_conjuncts(spec: Any) -> dict[str, Any] | list[Any] | None:
    """The part of ``spec`` that reads only metadata, as a filter of its own; None if none.

    A dictionary filter is an AND of its keys: the keys that name metadata
    (and ``$and`` / ``$or`` / ``$not`` whose every field does) are kept, the
    document columns left out; a list is an AND of its items.  A SQLAlchemy
    expression cannot be split (None).  ``spec`` AND the rest is ``spec``,
    so the kept part is implied by the whole: a superset of its matches.
    Call on a filter :func:`compile_filter` has checked.
    """
    if isinstance(spec, Mapping):
        kept = {k: v for k, v in spec.items() if isinstance(k, str) and _metadata_only(k, v)}
        return kept or None
    if isinstance(spec, Sequence) and not isinstance(spec, str | bytes):
        parts = [p for p in (metadata_conjuncts(item) for item in spec) if p is not None]
        return parts or None
    return None


def _metadata_only(key: str, value: Any) -> bool:
    stack = [(key, value)]
    while stack:
        key, value = stack.pop()
        if key in ("$and", "$or"):
            if not isinstance(value, list | tuple) or not all(
                isinstance(v, Mapping) for v in value
            ):
                return False
            stack.extend(item for v in value for item in v.items())
        elif key == "$not":
            if not isinstance(value, Mapping):
                return False
            stack.extend(value.items())
        elif not key or key.startswith("$") or key in COLUMN_FIELDS:
            return False
    return True


def compile_metadata_filter(spec: Any, model: Any, column: Any) -> ColumnElement[bool] | None:
    """:func:`compile_filter` of a metadata-only ``spec`` against another jsonb ``column``.

    The ``metadata_index = "table"`` layout compiles a filter's metadata
    conjuncts (:func:`metadata_conjuncts`) against its shadow table's column,
    which the shadow's GIN index serves.
    """
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        return _Compiler(model, column).node(spec, "filter", 0)
    parts = [compile_metadata_filter(item, model, column) for item in spec]
    kept = [p for p in parts if p is not None]
    return and_(*kept) if kept else None


class _Compiler:
    def __init__(self, model: Any, meta: Any = None) -> None:
        self.model = model
        self.meta = model.metadata_ if meta is None else meta
        # Keys with a btree of their own (vectorstore.metadata_keys), on the model's own column.
        self.keyed = indexed_keys(model) if meta is None else frozenset()

    # -- structure -----------------------------------------------------------
    def node(self, spec: Any, where: str, depth: int) -> ColumnElement[bool]:
        if depth > MAX_FILTER_DEPTH:
            raise FilterError(_too_deep(where))
        if not isinstance(spec, Mapping):
            raise FilterError(f"{where}: expected a filter object, got {type(spec).__name__}")
        if not spec:
            return true()
        doc = plain_equalities(spec)
        if doc is not None:
            keyed = [self.keyed_eq(k, v) for k, v in doc.items() if k in self.keyed]
            rest = {k: v for k, v in doc.items() if k not in self.keyed} if keyed else doc
            if rest:
                keyed.append(self.meta.contains(bindparam(None, rest, type_=JSONB)))
            return keyed[0] if len(keyed) == 1 else and_(*keyed)
        parts = []
        for key, value in spec.items():
            if not isinstance(key, str) or not key:
                raise FilterError(f"{where}: filter keys must be non-empty strings, got {key!r}")
            if key.startswith("$"):
                parts.append(self.logical(key, value, _child(where, key), depth))
            else:
                parts.append(self.field(key, value, _child(where, key)))
        return parts[0] if len(parts) == 1 else and_(*parts)

    def logical(self, op: str, value: Any, where: str, depth: int) -> ColumnElement[bool]:
        if op == "$not":
            # SQL's NOT of an unknown (a comparison with a missing key is NULL) is
            # still unknown, which would drop those rows; a filter means "not
            # matched", so treat unknown as false before negating.
            inner = self.node(value, where, depth + 1)
            return not_(func.coalesce(inner, false()))
        if op in ("$and", "$or"):
            if not isinstance(value, list | tuple) or not value:
                raise FilterError(f"{where}: {op} takes a non-empty list of filters")
            subs = [self.node(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
            return and_(*subs) if op == "$and" else or_(*subs)
        if op in _FIELD_OPERATORS:
            raise FilterError(
                f"{where}: {op} must be applied to a field, e.g. {{'k': {{{op!r}: ...}}}}"
            )
        raise FilterError(f"{where}: unknown operator {op!r}; known: {', '.join(OPERATORS)}")

    def field(self, key: str, value: Any, where: str) -> ColumnElement[bool]:
        if "\x00" in key:
            raise FilterError(f"{where}: field names cannot contain NUL")
        if not _encodable(key):
            raise FilterError(f"{where}: a field name that is not valid Unicode (a lone surrogate)")
        if (
            isinstance(value, Mapping)
            and value
            and all(isinstance(k, str) and k.startswith("$") for k in value)
        ):
            ops = [
                self.operator(key, op, operand, _child(where, op)) for op, operand in value.items()
            ]
            return ops[0] if len(ops) == 1 else and_(*ops)
        if isinstance(value, Mapping) and any(
            isinstance(k, str) and k.startswith("$") for k in value
        ):
            raise FilterError(f"{where}: mixes operators and plain keys; use one or the other")
        eq: ColumnElement[bool] = self.operator(key, "$eq", value, where)
        return eq

    # -- operators -----------------------------------------------------------
    def operator(self, key: str, op: str, operand: Any, where: str) -> Any:
        if op not in _FIELD_OPERATORS:
            raise FilterError(f"{where}: unknown operator {op!r}; known: {', '.join(OPERATORS)}")
        if key == "metadata":
            if op != "$contains" or not isinstance(operand, Mapping):
                raise FilterError(f"{where}: the 'metadata' field takes {{'$contains': {{...}}}}")
            return self.meta.contains(bindparam(None, _json_value(operand, where), type_=JSONB))
        if key in COLUMN_FIELDS:
            return self.column_op(getattr(self.model, key), key, op, operand, where)
        path = tuple(key.split("."))
        if any(not part for part in path):
            raise FilterError(f"{where}: {key!r} is not a valid metadata path")
        return self.meta_op(path, op, operand, where)

    def column_op(self, col: Any, key: str, op: str, operand: Any, where: str) -> Any:
        if op == "$eq":
            value = _column_value(key, _scalar(operand, where), where)
            return col.is_(None) if value is None else col == value
        if op == "$ne":
            value = _column_value(key, _scalar(operand, where), where)
            return col.is_not(None) if value is None else col.is_distinct_from(value)
        if op in ("$lt", "$lte", "$gt", "$gte"):
            value = _column_value(key, _ordered(operand, where), where)
            return {"$lt": col < value, "$lte": col <= value, "$gt": col > value,
                    "$gte": col >= value}[op]  # fmt: skip
        if op == "$between":
            lo, hi = self.bounds(operand, where)
            return col.between(_column_value(key, lo, where), _column_value(key, hi, where))
        if op in ("$in", "$nin"):
            values = []
            for i, v in enumerate(self.listing(operand, where)):
                at = f"{where}[{i}]"
                values.append(_column_value(key, _scalar(v, at), at))
            if any(v is None for v in values):
                raise FilterError(f"{where}: {op} cannot hold null; use $exists")
            if not values:
                return false() if op == "$in" else true()
            # One array parameter, not SQLAlchemy's IN with one per value (psycopg 3
            # sends at most 65,535): ``= ANY`` is what PostgreSQL makes of an IN
            # list (a btree index serves it); long lists are hashed instead.
            array = cast(bindparam(None, values, type_=ARRAY(col.type)), ARRAY(col.type))
            if len(values) > INDEXED_IN_MAX:
                found = _one_of(col, array, unnest=True)
                return found if op == "$in" else not_(found)
            if op == "$in":
                return col == any_(array)
            return or_(col.is_(None), col != all_(array))
        if op in ("$like", "$ilike"):
            if key not in _TEXT_COLUMNS:
                raise FilterError(f"{where}: {op} applies to text, not to the column {key!r}")
            pattern = self.pattern(operand, where)
            return col.like(pattern) if op == "$like" else col.ilike(pattern)
        if op == "$exists":
            return col.is_not(None) if self.flag(operand, where) else col.is_(None)
        raise FilterError(f"{where}: {op} applies to metadata keys, not to the column {key!r}")

    def meta_op(self, path: tuple[str, ...], op: str, operand: Any, where: str) -> Any:
        element = self.path(path)
        if op in ("$eq", "$ne"):
            value = _json_value(operand, where)
            if self.is_keyed(path) and not isinstance(value, list | dict):
                # IS DISTINCT FROM keeps the documents that lack the key, as $ne does.
                bound = bindparam(None, value, type_=JSONB)
                return self.keyed_eq(path[0], value) if op == "$eq" else (
                    element.is_distinct_from(bound))  # fmt: skip
            eq = self.meta_eq(path, element, value)
            return eq if op == "$eq" else not_(eq)
        if op in ("$in", "$nin"):
            values = _json_values(self.listing(operand, where), where)
            if not values:
                return false() if op == "$in" else true()
            found = self.meta_in(path, element, values, indexed=op == "$in")
            return found if op == "$in" else not_(found)
        if op in ("$lt", "$lte", "$gt", "$gte"):
            return self.meta_cmp(element, op, _ordered(operand, where))
        if op == "$between":
            lo, hi = self.bounds(operand, where)
            return and_(self.meta_cmp(element, "$gte", lo), self.meta_cmp(element, "$lte", hi))
        if op in ("$like", "$ilike"):
            pattern = self.pattern(operand, where)
            text = self.path(path, as_text=True)
            guard = func.jsonb_typeof(element) == "string"
            return and_(guard, text.like(pattern) if op == "$like" else text.ilike(pattern))
        if op == "$exists":
            present = self.meta.has_key(path[0]) if len(path) == 1 else element.is_not(None)
            return present if self.flag(operand, where) else not_(present)
        # $contains: array containment (a list: all of them; a scalar: that element),
        # or object containment for an object operand.
        value = _json_value(operand, where)
        needle = value if isinstance(value, list | dict) else [value]
        return self.meta.contains(bindparam(None, _nest(path, needle), type_=JSONB))

    def is_keyed(self, path: tuple[str, ...]) -> bool:
        """Whether ``path`` is one top-level key with an index of its own."""
        return len(path) == 1 and path[0] in self.keyed

    def keyed_eq(self, key: str, value: Any) -> ColumnElement[bool]:
        """``metadata -> 'key' = value::jsonb``: the scalar equality the key's btree serves."""
        eq: ColumnElement[bool] = key_element(self.meta, key) == bindparam(None, value, type_=JSONB)
        return eq

    def path(self, path: tuple[str, ...], *, as_text: bool = False) -> Any:
        """``metadata -> 'k'`` or, nested, ``metadata #> ARRAY[...]`` with a bound text[].

        SQLAlchemy's own JSON path type renders the path as an unquoted array
        literal, which breaks on keys containing ``{ } , "``; a bound ARRAY is
        sent as a proper array whatever the keys hold.  An indexed key
        (:mod:`vectorstore.metadata_keys`) is written as the literal its
        index is on, so that comparisons of it can use the index.
        """
        if self.is_keyed(path) and not as_text:
            return key_element(self.meta, path[0])
        if len(path) == 1:
            return self.meta[path[0]].astext if as_text else self.meta[path[0]]
        keys = bindparam(None, list(path), type_=ARRAY(Text))
        if as_text:
            return self.meta.op("#>>", return_type=Text)(keys)
        return self.meta.op("#>", return_type=JSONB)(keys)

    def meta_eq(self, path: tuple[str, ...], element: Any, value: Any) -> Any:
        if isinstance(value, list | dict):
            # Containment would also match a longer array or a larger object.
            # IS NOT DISTINCT FROM is never NULL, so that ``$ne`` and ``$not``
            # keep the documents that lack the key, as they do for scalars.
            return element.is_not_distinct_from(bindparam(None, value, type_=JSONB))
        # Containment of {"k": scalar} is exact equality: jsonb lets an array
        # contain a bare scalar only at the top level, and the needle here is
        # always an object, so {"k": [v]} does not match {"k": v}.  One
        # condition the GIN index answers, no recheck, and no second
        # condition to skew the planner's row estimate.
        return self.meta.contains(bindparam(None, _nest(path, value), type_=JSONB))

    def meta_in(self, path: tuple[str, ...], element: Any, values: list[Any], *,
                indexed: bool) -> Any:  # fmt: skip
        """The values' ``$eq`` ORed, as one expression per kind of value (see the docstring).

        Scalars mean containment of ``{"k": v}``; lists and objects mean
        jsonb equality of ``element`` (as in :meth:`meta_eq`).  Never NULL
        when ``indexed`` is false (``$nin``), so that its negation keeps
        documents lacking the key; an indexed key's ``$in`` is NULL for them
        (``$not`` treats NULL as not matched).
        """
        scalars = [v for v in values if not isinstance(v, list | dict)]
        others = [v for v in values if isinstance(v, list | dict)]
        parts = []
        if scalars and indexed and len(scalars) <= INDEXED_IN_MAX and self.is_keyed(path):
            # The key's btree: one index search per value; NULL (not false) for
            # a missing key, so only the positive $in takes this form.
            array = cast(bindparam(None, scalars, type_=ARRAY(JSONB)), ARRAY(JSONB))
            parts.append(element == any_(array))
        elif scalars and indexed and len(scalars) <= INDEXED_IN_MAX:
            docs = cast(bindparam(None, [_nest(path, v) for v in scalars], type_=ARRAY(JSONB)),
                        ARRAY(JSONB))  # fmt: skip
            parts.append(self.meta.op("@>", return_type=Boolean)(any_(docs)))
        elif scalars:
            # ``->`` with a text key descends objects only, as containment does
            # (``#>`` would also index arrays: ``"a.0"`` would match ``{"a": [v]}``).
            descended = self.meta
            for part in path:
                descended = descended.op("->", return_type=JSONB)(bindparam(None, part, type_=Text))
            parts.append(_one_of(descended, bindparam(None, scalars, type_=JSONB)))
        if others:
            parts.append(_one_of(element, bindparam(None, others, type_=JSONB)))
        return parts[0] if len(parts) == 1 else or_(*parts)

    def meta_cmp(self, element: Any, op: str, value: Any) -> Any:
        kind = "number" if isinstance(value, int | float) else "string"
        bound = bindparam(None, value, type_=JSONB)
        compare = {"$lt": element < bound, "$lte": element <= bound, "$gt": element > bound,
                   "$gte": element >= bound}[op]  # fmt: skip
        return and_(func.jsonb_typeof(element) == kind, compare)

    # -- operand checks ------------------------------------------------------
    @staticmethod
    def listing(operand: Any, where: str) -> list[Any]:
        if not isinstance(operand, list | tuple | set | frozenset):
            raise FilterError(f"{where}: expected a list of values, got {type(operand).__name__}")
        return list(operand)

    @staticmethod
    def bounds(operand: Any, where: str) -> tuple[Any, Any]:
        if not isinstance(operand, list | tuple) or len(operand) != 2:
            raise FilterError(f"{where}: $between takes [low, high]")
        lo, hi = _ordered(operand[0], where), _ordered(operand[1], where)
        if isinstance(lo, str) != isinstance(hi, str):
            raise FilterError(f"{where}: $between bounds must both be numbers or both strings")
        return lo, hi

    @staticmethod
    def pattern(operand: Any, where: str) -> str:
        if not isinstance(operand, str) or "\x00" in operand:
            raise FilterError(f"{where}: a LIKE pattern must be a string without NUL")
        return _checked_string(operand, where, "a LIKE pattern")

    @staticmethod
    def flag(operand: Any, where: str) -> bool:
        if not isinstance(operand, bool):
            raise FilterError(f"{where}: $exists takes true or false, got {operand!r}")
        return operand
