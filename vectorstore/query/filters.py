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

Index use: metadata equality and ``$in`` compile to JSONB containment
(``metadata @> '{"k": v}'``), which the GIN index serves; for a scalar ``v``
containment is exact equality (an array value ``[v]`` does not match, as
jsonb lets an array contain a bare scalar only at the top level).
``$exists`` on a top-level key compiles to ``metadata ? 'k'``, which the
``jsonb_path_ops`` GIN index does not serve (it hashes values with their
paths; existence is rarely selective, and the planner then scans or ranks
by the index instead).  Range operators on metadata guard on ``jsonb_typeof`` so that a
string never compares with a number (and no cast can fail mid-query).
``$ne`` and ``$nin`` match documents that lack the key (as in MongoDB).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, bindparam, false, func, not_, or_, true
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from vectorstore.errors import FilterError

__all__ = ["COLUMN_FIELDS", "OPERATORS", "FilterLike", "compile_filter", "plain_equalities"]

#: Document columns a dictionary filter may name directly.
COLUMN_FIELDS = ("id", "external_id", "text", "created_at")
_FIELD_OPERATORS = (
    "$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$between",
    "$like", "$ilike", "$exists", "$contains",
)  # fmt: skip
_LOGICAL = ("$and", "$or", "$not")
#: Every operator the dictionary language knows.
OPERATORS = _FIELD_OPERATORS + _LOGICAL
_MAX_DEPTH = 32

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
    if spec is None:
        return None
    if isinstance(spec, ColumnElement):
        return spec
    if isinstance(spec, Mapping):
        return _Compiler(model).node(spec, "filter", 0)
    if isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
        parts = [compile_filter(item, model) for item in spec]
        kept = [p for p in parts if p is not None]
        return and_(*kept) if kept else None
    raise FilterError(
        f"a filter must be a dict, a SQLAlchemy expression or a list of them, "
        f"got {type(spec).__name__}"
    )


def plain_equalities(spec: Any) -> dict[str, Any] | None:
    """The containment document of a filter made only of top-level metadata equalities.

    ``{"tenant": "acme", "year": 2024}`` (the most common filter: a tenant, a
    category) compiles to the one condition ``metadata @> '{"tenant": "acme",
    "year": 2024}'``: for scalars, containment of the whole object is the AND
    of the equalities, and one GIN condition.  Returns None for any other
    shape (operators, nested or dotted keys, document columns, lists or
    objects as values); those compile key by key.
    """
    if type(spec) is not dict or not spec:
        return None
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
            out[key] = _json_value(item, f"{where}.{key}")
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
    # created_at: ISO strings (dates and datetimes were turned into ISO by _scalar).
    if not isinstance(value, str):
        raise FilterError(f"{where}: 'created_at' is compared with dates or datetimes")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise FilterError(f"{where}: {value!r} is not an ISO date or datetime") from None
    return value


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


class _Compiler:
    def __init__(self, model: Any) -> None:
        self.model = model
        self.meta = model.metadata_

    # -- structure -----------------------------------------------------------
    def node(self, spec: Any, where: str, depth: int) -> ColumnElement[bool]:
        if depth > _MAX_DEPTH:
            raise FilterError(f"{where}: filter nested deeper than {_MAX_DEPTH} levels")
        if not isinstance(spec, Mapping):
            raise FilterError(f"{where}: expected a filter object, got {type(spec).__name__}")
        if not spec:
            return true()
        doc = plain_equalities(spec)
        if doc is not None:
            contained: ColumnElement[bool] = self.meta.contains(bindparam(None, doc, type_=JSONB))
            return contained
        parts = []
        for key, value in spec.items():
            if not isinstance(key, str) or not key:
                raise FilterError(f"{where}: filter keys must be non-empty strings, got {key!r}")
            if key.startswith("$"):
                parts.append(self.logical(key, value, f"{where}.{key}", depth))
            else:
                parts.append(self.field(key, value, f"{where}.{key}"))
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
                self.operator(key, op, operand, f"{where}.{op}") for op, operand in value.items()
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
            values = [
                _column_value(key, _scalar(v, f"{where}[{i}]"), f"{where}[{i}]")
                for i, v in enumerate(self.listing(operand, where))
            ]
            if any(v is None for v in values):
                raise FilterError(f"{where}: {op} cannot hold null; use $exists")
            if op == "$in":
                return col.in_(values) if values else false()
            return or_(col.is_(None), col.not_in(values)) if values else true()
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
            eq = self.meta_eq(path, element, value)
            return eq if op == "$eq" else not_(eq)
        if op in ("$in", "$nin"):
            values = [
                _json_value(v, f"{where}[{i}]") for i, v in enumerate(self.listing(operand, where))
            ]
            if not values:
                return false() if op == "$in" else true()
            any_eq = or_(*(self.meta_eq(path, element, v) for v in values))
            return any_eq if op == "$in" else not_(any_eq)
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

    def path(self, path: tuple[str, ...], *, as_text: bool = False) -> Any:
        """``metadata -> 'k'`` or, nested, ``metadata #> ARRAY[...]`` with a bound text[].

        SQLAlchemy's own JSON path type renders the path as an unquoted array
        literal, which breaks on keys containing ``{ } , "``; a bound ARRAY is
        sent as a proper array whatever the keys hold.
        """
        if len(path) == 1:
            return self.meta[path[0]].astext if as_text else self.meta[path[0]]
        keys = bindparam(None, list(path), type_=ARRAY(Text))
        if as_text:
            return self.meta.op("#>>", return_type=Text)(keys)
        return self.meta.op("#>", return_type=JSONB)(keys)

    def meta_eq(self, path: tuple[str, ...], element: Any, value: Any) -> Any:
        if isinstance(value, list | dict):
            # Containment would also match a longer array or a larger object.
            return element == bindparam(None, value, type_=JSONB)
        # Containment of {"k": scalar} is exact equality: jsonb lets an array
        # contain a bare scalar only at the top level, and the needle here is
        # always an object, so {"k": [v]} does not match {"k": v}.  One
        # condition the GIN index answers, no recheck, and no second
        # condition to skew the planner's row estimate.
        return self.meta.contains(bindparam(None, _nest(path, value), type_=JSONB))

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
