"""Filter size and depth: long ``$in`` lists stay exact and linear, limits are FilterErrors.

* ``$in`` / ``$nin`` of 10, 1,000 and 100,000 values keep exactly the rows a
  Python evaluation keeps, on the Session path and on a standalone
  repository's raw path (both drivers), with values of every JSON type;
* the short-list form is served by the metadata GIN index;
* more values, fields or nesting than the documented limits, a dotted key of
  10,000 parts, a value nested 10,000 levels: a one-line ``FilterError``
  naming the limit, never a RecursionError or a stall;
* keys holding control characters are escaped in messages;
* the CLI turns JSON too deep for Python's reader into ``error:`` (exit 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest
from sqlalchemy import URL, Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs
from tests.test_cli import assert_user_error
from tests.test_cli import run as run_cli
from vectorstore.query import raw as search_raw
from vectorstore.query.filters import (
    INDEXED_IN_MAX,
    MAX_FILTER_DEPTH,
    MAX_FILTER_NODES,
    MAX_FILTER_VALUES,
    MAX_PATH_PARTS,
    MAX_VALUE_DEPTH,
)
from vectorstore.query.selectivity import MetadataSample

DIM = vs.DEFAULT_DIMENSION
Repo = vs.DocumentRepository[vs.Document]
ROWS = 480
GIN = "ix_vectorstore_documents_metadata"
_MISSING = object()


# -- data and the reference evaluation -----------------------------------------------------
def _meta(i: int) -> dict[str, Any]:
    """Every JSON type under "n" (and "a.b" as an object or inside an array)."""
    kind = i % 8
    nested: Any = {"b": i} if i % 3 else [{"b": i}]
    if kind == 7:
        return {"a": nested}  # no "n" at all
    n: Any = {
        0: i,  # an int
        1: str(i),  # the same digits as a string: never equal to the number
        2: i + 0.5,  # a float
        3: [i],  # an array holding the number: never equal to it
        4: (i // 8) % 2 == 0,  # a bool: never equal to 1 or 0
        5: float(i),  # an integral float: equal to the int i
        6: None,  # JSON null
    }[kind]
    return {"n": n, "a": nested}


def _json_key(value: Any) -> Any:
    """JSON equality as a hashable key: 1 == 1.0, true != 1, "1" != 1, [1] != 1."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("z", None)
    return ("j", json.dumps(value, sort_keys=True))


def _at(meta: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, descending objects only (as the filter language does)."""
    value: Any = meta
    for part in path.split("."):
        value = value.get(part, _MISSING) if isinstance(value, Mapping) else _MISSING
    return value


def _expected(metas: list[dict[str, Any]], path: str, values: list[Any], op: str) -> set[int]:
    wanted = {_json_key(v) for v in values}
    found = set()
    for i, meta in enumerate(metas):
        value = _at(meta, path)
        hit = value is not _MISSING and _json_key(value) in wanted
        if hit == (op == "$in"):
            found.add(i)
    return found


def _values(size: int) -> list[Any]:
    """``size`` values of mixed types, a few matching rows, the rest matching none."""
    core: list[Any] = [
        0,  # the int row 0
        8.0,  # equal to the int row 8
        5,  # equal to the float 5.0
        "9",  # the string row 9
        10.5,  # the float row 10.5
        3,  # row 3 holds [3]: must not match
        11,  # row 11 holds [11]: must not match
        True,  # the bool rows
        None,  # the null rows
        "x",
    ]
    pad = [10**6 + k if k % 2 else f"pad {k}" for k in range(max(0, size - len(core)))]
    return (core + pad)[:size]


def _load(repo: Repo, metas: list[dict[str, Any]]) -> None:
    vectors = np.random.default_rng(0).standard_normal((len(metas), DIM)).astype(np.float32)
    repo.bulk_add(
        [f"doc {i}" for i in range(len(metas))], embeddings=vectors, metadata=metas,
        external_ids=[str(i) for i in range(len(metas))],
    )  # fmt: skip


def _kept(repo: Repo, spec: Any, k: int = ROWS) -> set[int]:
    hits = repo.nearest(np.ones(DIM, dtype=np.float32), k=k, filter=spec)
    return {int(h.document.external_id or -1) for h in hits}


@pytest.fixture
def standalone(any_driver_url: URL) -> Iterator[Repo]:
    engine = vs.make_engine(any_driver_url)
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="limits", embedding_model="x")
    _load(repo, [_meta(i) for i in range(ROWS)])
    yield repo
    engine.dispose()


# -- long $in lists: exact rows -------------------------------------------------------------
SIZES = [10, 1_000, MAX_FILTER_VALUES]


@pytest.mark.parametrize("size", SIZES)
def test_in_and_nin_keep_exactly_the_rows_on_the_session_path(repo: Repo, size: int) -> None:
    metas = [_meta(i) for i in range(ROWS)]
    _load(repo, metas)
    values = _values(size)
    for op in ("$in", "$nin"):
        assert _kept(repo, {"n": {op: values}}) == _expected(metas, "n", values, op), op
    nested = [*[v for v in values if not isinstance(v, bool)][: size - 1], 27]
    assert _kept(repo, {"a.b": {"$in": nested}}) == _expected(metas, "a.b", nested, "$in")


@pytest.mark.parametrize("size", SIZES)
def test_in_and_nin_keep_exactly_the_rows_on_the_raw_path(
    standalone: Repo, raw_calls: list[str], size: int
) -> None:
    metas = [_meta(i) for i in range(ROWS)]
    values = _values(size)
    for op in ("$in", "$nin"):
        expected = _expected(metas, "n", values, op)
        spec = {"n": {op: values}}
        first = _kept(standalone, spec)  # takes the samples and the catalog
        raw_calls.clear()
        again = _kept(standalone, spec)  # from caches: the raw DB-API path
        assert raw_calls, "the second call should take the raw path"
        assert first == again == expected, op


def test_the_raw_path_reuses_one_statement_per_form(standalone: Repo, raw_calls: list[str]) -> None:
    metas = [_meta(i) for i in range(ROWS)]
    _kept(standalone, {"n": {"$in": [1, 2]}})
    search_raw.clear_caches()
    raw_calls.clear()
    for size in (3, 7, INDEXED_IN_MAX):  # one statement: containment of one document array
        values = _values(size)
        assert _kept(standalone, {"n": {"$in": values}}) == _expected(metas, "n", values, "$in")
    for size in (INDEXED_IN_MAX + 1, 500):  # and one: a hashed lookup of one jsonb array
        values = _values(size)
        assert _kept(standalone, {"n": {"$in": values}}) == _expected(metas, "n", values, "$in")
    assert len(raw_calls) == 5
    compiled = search_raw.compiled_statements()
    assert len(compiled) == 2, compiled
    assert any("@> ANY" in sql for sql in compiled)
    assert any("jsonb_array_elements" in sql for sql in compiled)
    assert not [sql for sql in compiled if "pad " in sql]  # values stay parameters


# -- semantics of both forms ----------------------------------------------------------------
TRICKY: list[dict[str, Any]] = [
    {"n": [1]},  # 0
    {"n": 1},  # 1
    {"n": 1.0},  # 2
    {"n": "1"},  # 3
    {"n": True},  # 4
    {"n": [[1]]},  # 5
    {"n": {"x": 1}},  # 6
    {},  # 7: no "n"
    {"n": None},  # 8
    {"a": {"b": 1}},  # 9
    {"a": [{"b": 1}]},  # 10: "a.b" does not descend arrays
    {"a": {"b": [1]}},  # 11
    {"a": [1]},  # 12: "a.0" is a key, not an array index
]


@pytest.mark.parametrize(
    ("path", "op", "values", "expected"),
    [
        ("n", "$in", [1], {1, 2}),  # 1 == 1.0; not "1", true or [1]
        ("n", "$in", [1.0], {1, 2}),
        ("n", "$in", ["1"], {3}),
        ("n", "$in", [True], {4}),
        ("n", "$in", [None], {8}),  # JSON null, not a missing key
        ("n", "$in", [[1]], {0}),  # a list value is exact equality
        ("n", "$in", [[1], 1], {0, 1, 2}),
        ("n", "$in", [{"x": 1}], {6}),
        ("n", "$nin", [1], set(range(len(TRICKY))) - {1, 2}),  # keeps the rows without "n"
        ("n", "$nin", [[1], "1"], set(range(len(TRICKY))) - {0, 3}),
        ("a.b", "$in", [1], {9}),
        ("a.0", "$in", [1], set()),
        ("a.b", "$nin", [1], set(range(len(TRICKY))) - {9}),
    ],
)
def test_short_and_long_lists_mean_the_same(
    repo: Repo, path: str, op: str, values: list[Any], expected: set[int]
) -> None:
    _load(repo, TRICKY)
    assert _kept(repo, {path: {op: values}}) == expected
    padded = values + [10**6 + k for k in range(INDEXED_IN_MAX + 5)]  # the hashed form
    assert _kept(repo, {path: {op: padded}}) == expected


@pytest.mark.parametrize("size", [3, 2 * INDEXED_IN_MAX])
def test_column_in_binds_one_array_on_both_drivers(standalone: Repo, size: int) -> None:
    everything = set(range(ROWS))
    by_external = {
        int(h.document.external_id or -1): h.document.id
        for h in standalone.nearest(np.ones(DIM, dtype=np.float32), k=ROWS)
    }
    picked = list(range(0, ROWS, 7))[:size]
    cases: list[tuple[str, list[Any], set[int]]] = [
        ("external_id", ([str(i) for i in picked] + [f"none {k}" for k in range(size)])[:size],
         set(picked)),
        ("external_id", [int(i) for i in picked], set(picked)),  # integer ids are text
        ("id", [by_external[i] for i in picked] + [-k for k in range(1, size)], set(picked)),
        ("created_at", [f"1999-01-{1 + k % 28:02d}" for k in range(size)], set()),
    ]  # fmt: skip
    for column, values, expected in cases:
        assert _kept(standalone, {column: {"$in": values}}) == expected, column
        assert _kept(standalone, {column: {"$nin": values}}) == everything - expected, column


# -- the GIN index ---------------------------------------------------------------------------
def test_a_short_in_list_is_served_by_the_metadata_gin_index(engine: Engine) -> None:
    with engine.begin() as conn:  # an exact ranking needs no HNSW graph; building it is slow
        conn.execute(text("DROP INDEX ix_vectorstore_documents_embedding_hnsw"))
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="gin", embedding_model="x")
    rows = 10_000
    _load(repo, [{"n": i, "t": str(i % 97)} for i in range(rows)])
    with engine.begin() as conn:  # statistics, so that the planner knows the table is big
        conn.execute(text("ANALYZE vectorstore_documents"))
    spec = {"n": {"$in": [5, 500, "5000", 7.0, True]}}
    report = repo.explain(np.ones(DIM, dtype=np.float32), k=10, filter=spec, strategy="exact")
    assert GIN in report.index_names, report.plan
    assert report.rows_returned == 3  # 5, 500 and 7; "5000" is a string, true is no number
    with Session(engine) as session:
        definition = session.execute(
            text(f"SELECT pg_get_indexdef('{GIN}'::regclass)")
        ).scalar_one()
    assert "jsonb_path_ops" in definition


# -- limits ----------------------------------------------------------------------------------
def _deep_list(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _deep_dict(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


def _deep_logic(depth: int, op: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"n": 1}
    for _ in range(depth):
        spec = {op: spec} if op == "$not" else {op: [spec]}
    return spec


def _nested_lists(depth: int) -> Any:
    spec: Any = {"n": 1}
    for _ in range(depth):
        spec = [spec]
    return spec


TOO_BIG: list[tuple[str, Any, str]] = [
    ("in-values", {"n": {"$in": list(range(MAX_FILTER_VALUES + 1))}}, "MAX_FILTER_VALUES"),
    ("values-across-operands", {"a": {"$in": list(range(MAX_FILTER_VALUES // 2 + 1))},
                                "b": {"$nin": list(range(MAX_FILTER_VALUES // 2))}},
     "MAX_FILTER_VALUES"),
    ("one-huge-object", {"metadata": {"$contains": {str(i): i for i in range(MAX_FILTER_VALUES)}}},
     "MAX_FILTER_VALUES"),
    ("or-items", {"$or": [{"n": i} for i in range(MAX_FILTER_NODES)]}, "MAX_FILTER_NODES"),
    ("flat-keys", {f"k{i}": i for i in range(MAX_FILTER_NODES + 1)}, "MAX_FILTER_NODES"),
    ("operators", {"n": {f"$op{i}": 1 for i in range(MAX_FILTER_NODES + 1)}}, "MAX_FILTER_NODES"),
    ("list-of-filters", [{"n": i} for i in range(MAX_FILTER_NODES + 1)], "MAX_FILTER_NODES"),
    ("deep-contains-list", {"a": {"$contains": _deep_list(10_000)}}, "MAX_VALUE_DEPTH"),
    ("deep-contains-dict", {"a": {"$contains": _deep_dict(10_000)}}, "MAX_VALUE_DEPTH"),
    ("deep-in", {"a": {"$in": [_deep_list(10_000)]}}, "MAX_VALUE_DEPTH"),
    ("deep-nin", {"a": {"$nin": [1, _deep_dict(10_000)]}}, "MAX_VALUE_DEPTH"),
    ("deep-eq", {"a": {"$eq": _deep_dict(10_000)}}, "MAX_VALUE_DEPTH"),
    ("deep-plain-value", {"a": _deep_dict(10_000)}, "MAX_VALUE_DEPTH"),
    ("deep-between", {"a": {"$between": [_deep_list(10_000), 1]}}, "MAX_VALUE_DEPTH"),
    ("deep-metadata", {"metadata": {"$contains": _deep_dict(10_000)}}, "MAX_VALUE_DEPTH"),
    ("deep-ne-list", {"a": {"$ne": _deep_list(MAX_VALUE_DEPTH + 1)}}, "MAX_VALUE_DEPTH"),
    ("dotted-10000", {".".join(["p"] * 10_000): 1}, "MAX_PATH_PARTS"),
    ("dotted-in", {".".join(["p"] * (MAX_PATH_PARTS + 1)): {"$in": [1, 2]}}, "MAX_PATH_PARTS"),
    ("deep-not", _deep_logic(10_000, "$not"), "MAX_FILTER_DEPTH"),
    ("deep-and", _deep_logic(10_000, "$and"), "MAX_FILTER_DEPTH"),
    ("deep-or", _deep_logic(10_000, "$or"), "MAX_FILTER_DEPTH"),
    ("nested-lists", _nested_lists(10_000), "MAX_FILTER_DEPTH"),
]  # fmt: skip
LIMITS = {
    "MAX_FILTER_VALUES": MAX_FILTER_VALUES,
    "MAX_FILTER_NODES": MAX_FILTER_NODES,
    "MAX_VALUE_DEPTH": MAX_VALUE_DEPTH,
    "MAX_PATH_PARTS": MAX_PATH_PARTS,
    "MAX_FILTER_DEPTH": MAX_FILTER_DEPTH,
}


def _assert_one_printable_line(message: str) -> None:
    assert message
    assert message.isprintable(), repr(message[:200])  # no control characters, no newline
    message.encode("utf-8")  # no lone surrogate either
    assert len(message) < 400, message


@pytest.mark.parametrize(("spec", "limit"), [c[1:] for c in TOO_BIG], ids=[c[0] for c in TOO_BIG])
def test_a_filter_beyond_a_limit_is_a_filter_error_naming_it(spec: Any, limit: str) -> None:
    with pytest.raises(vs.FilterError) as caught:
        vs.compile_filter(spec, vs.Document)
    message = str(caught.value)
    assert limit in message
    assert str(LIMITS[limit]) in message
    _assert_one_printable_line(message)
    sample = MetadataSample(rows=10, metadata=({"n": 1, "a": 2}, {"n": 2}))
    assert sample.estimate(spec) is None  # unknown, and never a RecursionError


@pytest.mark.parametrize(
    "spec",
    [c[1] for c in TOO_BIG if c[0] in ("in-values", "flat-keys", "deep-in", "dotted-10000",
                                       "deep-not", "nested-lists")],
)  # fmt: skip
def test_nearest_refuses_it_on_both_paths(repo: Repo, standalone: Repo, spec: Any) -> None:
    for target in (repo, standalone):
        _kept(target, {"n": 1})  # warm the standalone one's caches: its raw path
        for strategy in ("auto", "exact"):  # the sampled estimate, then none
            with pytest.raises(vs.FilterError):
                target.nearest(np.ones(DIM, dtype=np.float32), k=3, filter=spec,
                               strategy=strategy)  # fmt: skip


def test_filters_at_the_limits_compile_and_run(repo: Repo) -> None:
    _load(repo, [{"n": i, "deep": _deep_list(MAX_VALUE_DEPTH - 1)} for i in range(5)])
    at_limit: list[tuple[Any, set[int]]] = [
        ({"n": {"$in": list(range(MAX_FILTER_VALUES))}}, {0, 1, 2, 3, 4}),
        ({"deep": _deep_list(MAX_VALUE_DEPTH - 1)}, {0, 1, 2, 3, 4}),
        ({"metadata": {"$contains": {"deep": _deep_list(MAX_VALUE_DEPTH - 1)}}}, {0, 1, 2, 3, 4}),
        ({"n": {"$in": [_deep_list(MAX_VALUE_DEPTH), 3]}}, {3}),
        ({".".join(["p"] * MAX_PATH_PARTS): 1}, set()),
        ({".".join(["p"] * MAX_PATH_PARTS): {"$in": list(range(2 * INDEXED_IN_MAX))}}, set()),
        (_deep_logic(MAX_FILTER_DEPTH, "$not"), {0, 2, 3, 4} if MAX_FILTER_DEPTH % 2 else {1}),
        ({"$or": [{"n": i} for i in range(MAX_FILTER_NODES // 2 - 1)]}, {0, 1, 2, 3, 4}),
    ]
    for spec, expected in at_limit:
        assert _kept(repo, spec) == expected


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_the_most_parameters_a_filter_can_bind_fit_one_statement(
    postgresql: Any, driver: str
) -> None:
    """MAX_FILTER_NODES of the operators that bind the most: under psycopg 3's 65,535."""
    from tests.conftest import url_for

    engine = vs.make_engine(url_for(postgresql.info.dbname, driver))
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="p", embedding_model="x")
    _load(repo, [{"a": i} for i in range(5)])
    # per item: the $or item, "a" and five range operators: 7 nodes, 17 parameters
    items = (MAX_FILTER_NODES - 1) // 7
    ranges = {"$between": [0, 9], "$gte": 0, "$lte": 9, "$gt": -1, "$lt": 10}
    spec = {"$or": [{"a": ranges} for _ in range(items)]}
    assert _kept(repo, spec, k=10) == {0, 1, 2, 3, 4}
    engine.dispose()


# -- messages ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec",
    [
        {"a\x1b[31m": {"$bogus": 1}},
        {"a\nb": {"$eq": float("nan")}},
        {"a": {"$eq": {"k\x07\x00": 1}}},
        {"a": {"$in\r": [1]}},
        {"a\x7f\u2028": {"$in": [float("inf")]}},
        {"x\ud800": 1},
        {"$and": [{"k\x1b": {"$lt": None}}]},
        {"a\x1b" * 5_000: {"$like": 3}},
        {".".join(["\x1b"] * 10_000): 1},
    ],
)
def test_keys_with_control_characters_are_escaped_in_messages(repo: Repo, spec: Any) -> None:
    with pytest.raises(vs.FilterError) as caught:
        repo.nearest(np.ones(DIM, dtype=np.float32), k=3, filter=spec)
    _assert_one_printable_line(str(caught.value))


def test_an_escaped_key_reads_as_its_python_escape() -> None:
    with pytest.raises(vs.FilterError) as caught:
        vs.compile_filter({"a\x1b[31m": {"$bogus": 1}}, vs.Document)
    assert str(caught.value).startswith("filter.a\\x1b[31m.$bogus: unknown operator '$bogus'")


# -- the command line -------------------------------------------------------------------------
@pytest.fixture
def pets(engine: Engine, db_url: URL) -> URL:
    with Session(engine) as session:
        repo: Repo = vs.DocumentRepository(
            session, collection="pets", embedder=vs.HashingTestEmbedder()
        )
        repo.add("a cat on the mat", metadata={"kind": "cat"})
        session.commit()
    return db_url


def test_the_cli_refuses_json_too_deep_to_read_as_a_user_error(pets: URL) -> None:
    deep = "[" * 30_000 + "]" * 30_000
    done = run_cli("search", "cat", "-c", "pets", "--filter", deep, url=pets)
    assert_user_error(done, "--filter", "too deeply")
    done = run_cli("search", "cat", "-c", "pets", "--where", "kind=" + deep, url=pets)
    assert_user_error(done, "--where", "too deeply")
    deep_object = '{"a":' * 15_000 + "1" + "}" * 15_000  # under Linux's 128 kB per argument
    done = run_cli("search", "cat", "-c", "pets", "--filter", deep_object, url=pets)
    assert_user_error(done, "--filter", "too deeply")


def test_the_cli_reports_a_readable_but_too_deep_filter_with_its_limit(pets: URL) -> None:
    value = json.dumps(_deep_list(MAX_VALUE_DEPTH + 1))
    done = run_cli("search", "cat", "-c", "pets", "--filter", '{"kind": {"$eq": ' + value + "}}",
                   url=pets)  # fmt: skip
    assert_user_error(done, "MAX_VALUE_DEPTH")
    done = run_cli("search", "cat", "-c", "pets", "--where", "kind=" + value, url=pets)
    assert_user_error(done, "MAX_VALUE_DEPTH")
    done = run_cli("search", "cat", "-c", "pets", "--json", "--where", "kind=cat", url=pets)
    assert done.returncode == 0, done.stderr
    assert [h["metadata"]["kind"] for h in json.loads(done.stdout)] == ["cat"]
