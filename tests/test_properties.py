"""Property-based tests (hypothesis) of the two pure translators: the dictionary
filter compiler and the binary COPY encoder, both checked against the real
database.

* Filters: any valid filter (generated from the grammar) selects exactly the
  documents a small reference evaluator in Python selects; any other value
  passed as a filter is either a valid filter or raises ``FilterError`` - never
  a driver error or another exception.
* COPY: any batch of valid records written with ``bulk_add`` reads back
  identical (text, metadata, external id, float32 embedding bit for bit); any
  batch with invalid parts raises ``ValidationError`` and writes nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

import vectorstore as vs
from tests._dedicated import cloned_database

DIM = vs.DEFAULT_DIMENSION
Repo = vs.DocumentRepository[vs.Document]
MISSING = object()
# Examples per property and randomness come from the profile tests/conftest.py
# loads: "ci" (the default: derandomized, 150 examples, the same every run) or
# "explore" (HYPOTHESIS_PROFILE=explore, `make test-explore`: random, 2,000).
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def engine_(postgresql_noproc: Any) -> Iterator[Engine]:
    name = f"vectorstore_props_{os.getpid()}"
    with cloned_database(postgresql_noproc.template_dbname, name) as url:
        engine = vs.make_engine(url)
        yield engine
        engine.dispose()


# -- the filter compiler -----------------------------------------------------------------------
def _metadata(i: int) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if i % 7 != 0:
        meta["a"] = i % 5 if i % 11 else "1"  # mostly numbers, sometimes the string "1"
    if i % 3 != 0:
        meta["b"] = "xyz"[i % 3] if i % 10 else ["x"]  # sometimes an array
    if i % 4 != 0:
        meta["c"] = round((i * 0.37) % 1, 3)
    return meta


ROWS = 60


@pytest.fixture(scope="module")
def filter_repo(engine_: Engine) -> Repo:
    repo: Repo = vs.DocumentRepository.standalone(
        engine_, collection="filters", embedding_model="props"
    )
    vectors = np.random.default_rng(0).standard_normal((ROWS, DIM)).astype(np.float32)
    repo.bulk_add(
        [f"doc {i}" for i in range(ROWS)], embeddings=vectors,
        metadata=[_metadata(i) for i in range(ROWS)], external_ids=[str(i) for i in range(ROWS)],
    )  # fmt: skip
    return repo


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _eq(value: Any, operand: Any) -> bool:
    if value is MISSING:
        return False
    if _number(value) and _number(operand):
        return bool(value == operand)
    return type(value) is type(operand) and value == operand


def _field(value: Any, cond: Any) -> bool:
    if not (isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond)):
        return _eq(value, cond)
    results = []
    for op, operand in cond.items():
        if op == "$eq":
            results.append(_eq(value, operand))
        elif op == "$ne":
            results.append(not _eq(value, operand))
        elif op == "$in":
            results.append(any(_eq(value, o) for o in operand))
        elif op == "$nin":
            results.append(not any(_eq(value, o) for o in operand))
        elif op == "$exists":
            results.append((value is not MISSING) == operand)
        else:
            ok = _number(value) and _number(operand)
            compare = {"$lt": lambda x, y: x < y, "$lte": lambda x, y: x <= y,
                       "$gt": lambda x, y: x > y, "$gte": lambda x, y: x >= y}[op]  # fmt: skip
            results.append(bool(ok and compare(value, operand)))
    return all(results)


def reference(spec: dict[str, Any], meta: dict[str, Any]) -> bool:
    """What a filter means, in plain Python (MongoDB semantics for missing keys)."""
    for key, cond in spec.items():
        if key == "$and":
            ok = all(reference(s, meta) for s in cond)
        elif key == "$or":
            ok = any(reference(s, meta) for s in cond)
        elif key == "$not":
            ok = not reference(cond, meta)
        else:
            ok = _field(meta.get(key, MISSING), cond)
        if not ok:
            return False
    return True


_values = st.sampled_from([0, 1, 2, 3, 4, 1.0, 2.5, "1", "x", "y", "z", "w", ["x"], {"x": 1}])
_numbers = st.one_of(
    st.integers(-1, 6), st.floats(-1, 6, allow_nan=False).map(lambda f: round(f, 2))
)
_ops = st.one_of(
    _values,
    st.fixed_dictionaries({"$eq": _values}),
    st.fixed_dictionaries({"$ne": _values}),
    st.fixed_dictionaries({"$in": st.lists(_values, max_size=4)}),
    st.fixed_dictionaries({"$nin": st.lists(_values, max_size=4)}),
    st.fixed_dictionaries({"$exists": st.booleans()}),
    st.dictionaries(st.sampled_from(["$lt", "$lte", "$gt", "$gte"]), _numbers, min_size=1),
)
_leaf = st.dictionaries(st.sampled_from(["a", "b", "c"]), _ops, min_size=1, max_size=2)
valid_filters = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.fixed_dictionaries({"$and": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"$or": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"$not": inner}),
    ),
    max_leaves=6,
)


@SETTINGS
@given(spec=valid_filters)
def test_any_valid_filter_selects_what_it_means(filter_repo: Repo, spec: dict[str, Any]) -> None:
    hits = filter_repo.nearest(np.ones(DIM), k=ROWS, filter=spec, strategy="exact")
    got = {int(h.document.external_id or -1) for h in hits}
    expected = {i for i in range(ROWS) if reference(spec, _metadata(i))}
    assert got == expected


_keys = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["$and", "$or", "$not", "$in", "$eq", "$lt", "$exists", "$like", "$between",
                     "$contains", "a", "b", "text", "id", "created_at", "metadata", "a.b"]),
)  # fmt: skip
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
    st.binary(max_size=4), st.dates(),
)  # fmt: skip
garbage = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=8,
)


@SETTINGS
@given(spec=garbage)
def test_any_filter_value_is_valid_or_a_filter_error(filter_repo: Repo, spec: Any) -> None:
    # Either a valid filter, or FilterError (a ValidationError) - never anything else.
    with contextlib.suppress(vs.ValidationError):
        filter_repo.nearest(np.ones(DIM), k=3, filter=spec)


# -- the COPY encoder ----------------------------------------------------------------------
_counter = itertools.count()
# jsonb cannot store NUL and UTF-8 cannot hold a lone surrogate: both refused by design.
_no_nul = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53),
              st.floats(allow_nan=False, allow_infinity=False), st.text(_no_nul, max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(_no_nul, max_size=5), inner, max_size=3)),
    max_leaves=6,
)  # fmt: skip
_texts = st.text(min_size=1, max_size=40).filter(lambda t: t.strip() != "" and "\x00" not in t)


@st.composite
def vectors(draw: st.DrawFn) -> np.ndarray[Any, Any]:
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-30, 1e-3, 1.0, 1e3, 1e30]))
    return (np.random.default_rng(seed).standard_normal(DIM) * scale).astype(np.float32)


valid_records = st.lists(
    st.fixed_dictionaries(
        {"text": _texts, "embedding": vectors()},
        optional={
            "metadata": st.dictionaries(st.text(_no_nul, max_size=5), _json, max_size=3),
            "external_id": st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s),
        },
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda r: r.get("external_id", object()),
)


@SETTINGS
@given(records=valid_records)
def test_any_valid_batch_round_trips_through_copy(engine_: Engine, records: list[Any]) -> None:
    repo: Repo = vs.DocumentRepository.standalone(
        engine_, collection=f"copy-{next(_counter)}", embedding_model="props"
    )
    assert repo.bulk_add(records).inserted == len(records)
    with engine_.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT external_id, text, metadata, vector_send(embedding) FROM "
                "vectorstore_documents WHERE collection_id = :c ORDER BY id"
            ),
            {"c": repo.collection.id},
        ).all()
    assert len(rows) == len(records)
    for record, (ext, body, meta, blob) in zip(records, rows, strict=True):
        assert body == record["text"]
        assert ext == record.get("external_id")
        assert _same_json(meta, record.get("metadata", {}))
        stored = np.frombuffer(bytes(blob), dtype=">f4", offset=4).astype(np.float32)
        assert stored.tobytes() == record["embedding"].tobytes()


def _same_json(stored: Any, given: Any) -> bool:
    """Equal as JSON: a float written as 4.48e+16 may read back as the integer 44800...0."""
    if isinstance(given, float) and isinstance(stored, int | float):
        return float(stored) == given
    if isinstance(given, dict):
        return (
            isinstance(stored, dict)
            and stored.keys() == given.keys()
            and all(_same_json(stored[k], v) for k, v in given.items())
        )
    if isinstance(given, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(given)
            and all(_same_json(a, b) for a, b in zip(stored, given, strict=True))
        )
    return type(stored) is type(given) and bool(stored == given)


_any_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=20), st.none(), st.integers(),
    st.just(""), st.just("a\x00b"), st.just("\ud800"),
)  # fmt: skip
_any_meta = st.one_of(
    st.none(), garbage, st.dictionaries(st.text(st.characters(exclude_categories=())), garbage)
)


@st.composite
def any_vectors(draw: st.DrawFn) -> Any:
    base = draw(vectors())
    damage = draw(st.sampled_from(["none", "nan", "inf", "huge", "short", "long", "str", "list"]))
    if damage in ("nan", "inf", "huge"):
        base = base.astype(np.float64)
        base[draw(st.integers(0, DIM - 1))] = {"nan": math.nan, "inf": -math.inf, "huge": 1e40}[
            damage
        ]
    elif damage == "short":
        base = base[: draw(st.integers(0, DIM - 1))]
    elif damage == "long":
        base = np.concatenate([base, base[:3]])
    elif damage == "str":
        return "not a vector"
    elif damage == "list":
        return base.tolist()
    return base


@SETTINGS
@given(
    records=st.lists(
        st.fixed_dictionaries(
            {"text": _any_text, "embedding": any_vectors()},
            optional={"metadata": _any_meta, "external_id": st.one_of(_any_text, st.floats())},
        ),
        min_size=1,
        max_size=4,
    )
)
def test_any_batch_is_written_whole_or_refused_whole(engine_: Engine, records: list[Any]) -> None:
    repo: Repo = vs.DocumentRepository.standalone(
        engine_, collection=f"any-{next(_counter)}", embedding_model="props"
    )
    try:
        result = repo.bulk_add(records, on_conflict="update")
    except (vs.ValidationError, vs.ConflictError):
        assert repo.count() == 0
    else:
        # Every record was sent; those sharing an external id became one row (the last wins).
        ids = [r.get("external_id") for r in records]
        keyed = {e for e in ids if isinstance(e, str)}
        unkeyed = sum(1 for e in ids if not isinstance(e, str))
        assert result.rows == len(records)
        assert repo.count() == result.inserted == len(keyed) + unkeyed
