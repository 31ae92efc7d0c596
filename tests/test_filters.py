"""The dictionary filter language: every operator, nesting, hostile values, bad filters."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

import vectorstore as vs
from tests.conftest import table_count

Repo = vs.DocumentRepository[vs.Document]

ROWS: list[dict[str, Any]] = [
    {"color": "red", "price": 5, "tags": ["a", "b"], "name": "alpha", "spec": {"size": 1}},
    {"color": "blue", "price": 15, "tags": ["b"], "name": "Beta", "spec": {"size": 2}},
    {"color": "red", "price": 25.5, "tags": [], "name": "gamma"},
    {"color": "green", "price": "cheap", "name": "O'Brien; DROP TABLE x"},
    {"price": None, "name": "' OR 1=1 --"},
    {"color": ["red"], "name": "array color"},
]


@pytest.fixture
def loaded(repo: Repo) -> Repo:
    rng = np.random.default_rng(0)
    repo.bulk_add(
        [f"doc {i}" for i in range(len(ROWS))],
        embeddings=rng.standard_normal((len(ROWS), 384)).astype(np.float32),
        metadata=ROWS,
        external_ids=[str(i) for i in range(len(ROWS))],
    )
    return repo


def matching(repo: Repo, spec: Any) -> list[int]:
    hits = repo.nearest(np.ones(384), k=50, filter=spec)
    return sorted(int(h.document.external_id) for h in hits)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"color": "red"}, [0, 2]),
        ({"color": {"$eq": "red"}}, [0, 2]),
        ({"color": {"$ne": "red"}}, [1, 3, 4, 5]),
        ({"price": {"$lt": 15}}, [0]),
        ({"price": {"$lte": 15}}, [0, 1]),
        ({"price": {"$gt": 15}}, [2]),
        ({"price": {"$gte": 15, "$lt": 30}}, [1, 2]),
        ({"price": {"$between": [5, 15]}}, [0, 1]),
        ({"name": {"$between": ["a", "b"]}}, [0, 5]),
        ({"color": {"$in": ["red", "green"]}}, [0, 2, 3]),
        ({"color": {"$in": []}}, []),
        ({"color": {"$nin": ["red", "green"]}}, [1, 4, 5]),
        ({"color": {"$nin": []}}, [0, 1, 2, 3, 4, 5]),
        ({"name": {"$like": "%a"}}, [0, 1, 2]),
        ({"name": {"$ilike": "b%"}}, [1]),
        ({"color": {"$exists": True}}, [0, 1, 2, 3, 5]),
        ({"color": {"$exists": False}}, [4]),
        ({"price": None}, [4]),
        ({"tags": {"$contains": "b"}}, [0, 1]),
        ({"tags": {"$contains": ["a", "b"]}}, [0]),
        ({"color": ["red"]}, [5]),
        ({"color": {"$ne": ["red"]}}, [0, 1, 2, 3, 4]),  # lacking the key: kept
        ({"$not": {"color": ["red"]}}, [0, 1, 2, 3, 4]),
        ({"spec": {"$ne": {"size": 2}}}, [0, 2, 3, 4, 5]),
        ({"tags": "b"}, []),  # an array holding the scalar is not equal to it
        ({"color": {"$ne": "red"}, "tags": {"$nin": ["b"]}}, [1, 3, 4, 5]),
        ({"spec.size": 2}, [1]),
        ({"spec.size": {"$gte": 1}}, [0, 1]),
        ({"spec.size": {"$exists": True}}, [0, 1]),
        ({"metadata": {"$contains": {"color": "red", "price": 5}}}, [0]),
        ({"$or": [{"color": "blue"}, {"price": {"$gt": 20}}]}, [1, 2]),
        ({"$and": [{"color": "red"}, {"price": {"$gt": 20}}]}, [2]),
        ({"$not": {"color": "red"}}, [1, 3, 4, 5]),
        ({"$or": [{"$and": [{"color": "red"}, {"$not": {"price": 5}}]}, {"name": "Beta"}]}, [1, 2]),
        ({"color": "red", "price": 5}, [0]),
        ({}, [0, 1, 2, 3, 4, 5]),
        ({"external_id": "3"}, [3]),
        ({"external_id": {"$in": ["1", "2"]}}, [1, 2]),
        ({"text": {"$like": "doc 1%"}}, [1]),
        ({"external_id": {"$ne": "0"}}, [1, 2, 3, 4, 5]),
        ([{"color": "red"}, {"price": {"$gt": 6}}], [2]),
    ],
)
def test_each_operator_keeps_exactly_the_rows_it_describes(
    loaded: Repo, spec: Any, expected: list[int]
) -> None:
    assert matching(loaded, spec) == expected


def _like(pattern: str, text: str) -> bool:
    """SQL LIKE: % any run, _ any one character, a backslash escapes the next character."""
    parts, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.fullmatch("".join(parts), text, re.DOTALL) is not None


@pytest.mark.parametrize(
    "value",
    ["' OR 1=1 --", "O'Brien; DROP TABLE x", "x'); DELETE FROM vectorstore_documents; --",
     "\\'", "%", "$ne", '"}', "?", "%(x)s", ":name"],
)  # fmt: skip
def test_values_that_look_like_sql_are_data(
    loaded: Repo, session: Session, engine: Engine, value: str
) -> None:
    expected = [i for i, row in enumerate(ROWS) if row.get("name") == value]
    assert matching(loaded, {"name": value}) == expected
    assert matching(loaded, {"name": {"$in": [value]}}) == expected
    liked = [i for i, row in enumerate(ROWS) if _like(value, str(row["name"]))]
    assert matching(loaded, {"name": {"$like": value}}) == liked
    if not value.startswith("$"):  # a key starting with $ is an operator
        assert matching(loaded, {value: "x"}) == []
    assert matching(loaded, {"external_id": value}) == []
    session.commit()
    assert table_count(engine) == len(ROWS)


def test_sqlalchemy_expressions_and_mixed_lists(loaded: Repo) -> None:
    doc = vs.Document
    assert matching(loaded, doc.metadata_["color"].astext == "blue") == [1]
    assert matching(loaded, [doc.external_id.in_(["0", "1", "2"]), {"color": "red"}]) == [0, 2]


def test_compiled_filters_bind_every_value() -> None:
    compiled = vs.compile_filter({"name": "' OR 1=1 --", "price": {"$gt": 3}}, vs.Document)
    assert compiled is not None
    sql = str(compiled.compile(dialect=postgresql.dialect()))
    assert "OR 1=1" not in sql
    assert "@>" in sql  # equality is containment: the GIN index can serve it


def test_equality_and_containment_use_the_gin_index(loaded: Repo, session: Session) -> None:
    definition = session.execute(
        text("SELECT pg_get_indexdef('ix_vectorstore_documents_metadata'::regclass)")
    ).scalar_one()
    assert "jsonb_path_ops" in definition  # value hashed with its path: no key-only matches
    session.execute(text("SET LOCAL enable_seqscan = off"))
    model = vs.Document
    specs: list[Any] = [
        {"color": "red"},
        {"color": "red", "price": 5},
        {"tags": {"$contains": "b"}},
        {"color": {"$in": ["red", "blue"]}},
        {"spec.size": 2},
    ]
    for spec in specs:
        where = vs.compile_filter(spec, model)
        from sqlalchemy import select

        from vectorstore.query.statement import Explain

        plan = session.execute(Explain(select(model.id).where(where))).scalar_one()
        assert "ix_vectorstore_documents_metadata" in str(plan), spec


SERVED: list[Any] = [
    {"color": "red"},
    {"color": "red", "price": {"$gt": 1}},
    {"tags": {"$contains": "b"}},
    {"color": {"$in": ["red", "blue"]}},
    {"spec.size": 2},
    {"price": None},
    {"metadata": {"$contains": {"color": "red"}}},
    {"$or": [{"color": "blue"}, {"color": "red"}]},
    {"$and": [{"color": "red"}, {"price": {"$gt": 20}}]},
]
UNSERVED: list[Any] = [
    {"price": {"$lt": 15}},
    {"price": {"$between": [5, 15]}},
    {"spec.size": {"$gte": 1}},
    {"color": {"$ne": "red"}},
    {"color": {"$nin": ["red"]}},
    {"name": {"$like": "%a"}},
    {"color": {"$exists": True}},
    {"color": ["red"]},
    {"color": {"$in": [f"c{i}" for i in range(101)]}},
    {"$not": {"color": "red"}},
    {"$or": [{"color": "blue"}, {"price": {"$gt": 20}}]},
]


def test_index_served_says_what_the_servers_plan_does(loaded: Repo, session: Session) -> None:
    # The planner prices an exact ranking by whether an index narrows the
    # filter's rows: the classification must agree with PostgreSQL's plan.
    from sqlalchemy import select

    from vectorstore.query.filters import index_served
    from vectorstore.query.statement import Explain

    session.execute(text("SET LOCAL enable_seqscan = off"))
    model = vs.Document
    for spec, served in [(s, True) for s in SERVED] + [(s, False) for s in UNSERVED]:
        plan = session.execute(
            Explain(select(model.id).where(vs.compile_filter(spec, model)))
        ).scalar_one()
        assert ("ix_vectorstore_documents_metadata" in str(plan)) is served, spec
        assert index_served(spec, frozenset(), frozenset()) is served, spec
    # A key with a btree of its own serves its ranges (the btree is the app's model's).
    assert index_served({"price": {"$lt": 15}}, frozenset({"price"}), frozenset())
    assert not index_served({"price": {"$ne": 15}}, frozenset({"price"}), frozenset())
    # A list of filters is a conjunction; SQLAlchemy expressions are the app's to know.
    assert index_served([{"price": {"$lt": 15}}, {"color": "red"}], frozenset(), frozenset())
    assert not index_served([{"price": {"$lt": 15}}], frozenset(), frozenset())
    assert index_served(vs.Document.text == "x", frozenset(), frozenset())


def _index_conditions(plan: Any) -> list[str]:
    """Every ``Index Cond`` of a JSON plan (what an index narrowed, not what it filtered)."""
    found: list[str] = []
    nodes = [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        if "Index Cond" in node:
            found.append(str(node["Index Cond"]))
        nodes.extend(node.get("Plans", []))
    return found


def _plan_text(session: Session, model: Any, spec: Any) -> str:
    from sqlalchemy import select

    from vectorstore.query.statement import Explain

    where = vs.compile_filter(spec, model)
    return str(session.execute(Explain(select(model.id).where(where))).scalar_one())


def test_column_filters_are_served_by_the_btrees_the_catalog_lists(
    loaded: Repo, session: Session
) -> None:
    # Columns count as served only where a btree leads with them (after
    # collection_id, as every nearest query has that equality): the catalog
    # reads them, and the classification must agree with PostgreSQL's plan.
    from sqlalchemy import select

    from vectorstore.query.filters import index_served, unserved_fields
    from vectorstore.query.statement import Explain
    from vectorstore.schema.catalog import list_btree_keys

    model, table = vs.Document, vs.Document.__table__
    keys = list_btree_keys(session, table)
    assert {"id", "collection_id", "content_hash", "external_id"} <= keys.columns
    assert "created_at" not in keys.columns
    assert "text" not in keys.columns
    assert keys.metadata_keys == frozenset()
    session.execute(text("SET LOCAL enable_seqscan = off"))

    def served_by_plan(spec: Any) -> bool:
        # Without the collection's equality: on six rows the planner would
        # narrow by it alone; the question is whether an index can narrow the
        # filter's own column (PostgreSQL 18 skips the leading collection_id).
        where = vs.compile_filter(spec, model)
        plan = session.execute(Explain(select(model.id).where(where))).scalar_one()
        return any(re.search(r"\b(metadata|id|external_id|text|created_at)\b", c)
                   for c in _index_conditions(plan))  # fmt: skip

    cases: list[tuple[Any, bool]] = [
        ({"id": {"$gt": 2}}, True),
        ({"external_id": "3"}, True),
        ({"external_id": {"$in": ["1", "2"]}}, True),
        ({"created_at": {"$gte": "2000-01-01"}}, False),
        ({"text": "doc 1"}, False),
        ({"created_at": {"$gte": "2000-01-01"}, "external_id": "1"}, True),
        ({"$or": [{"external_id": "1"}, {"text": "doc 2"}]}, False),
    ]
    skips = int(session.execute(text("SHOW server_version_num")).scalar_one()) >= 180000
    for spec, served in cases:
        if skips or not served:  # before 18, a second key is not searched on its own
            assert served_by_plan(spec) is served, (spec, _plan_text(session, model, spec))
        assert index_served(spec, frozenset(), keys.columns) is served, spec
    ranged = {"created_at": {"$gte": "2000-01-01", "$lt": "2100-01-01"}}
    assert unserved_fields(ranged, frozenset(), keys.columns) == {"created_at": ("$gte", "$lt")}
    # An app's own btree on created_at (after collection_id), and one on a
    # metadata key as indexed_metadata_keys declares it: the catalog sees both.
    session.execute(text("CREATE INDEX ix_test_created ON vectorstore_documents "
                         "(collection_id, created_at)"))  # fmt: skip
    session.execute(text("CREATE INDEX ix_test_price ON vectorstore_documents "
                         "(collection_id, (metadata -> 'price'))"))  # fmt: skip
    session.execute(text("CREATE INDEX ix_test_partial ON vectorstore_documents (text) "
                         "WHERE collection_id = 0"))  # fmt: skip
    keys = list_btree_keys(session, table)
    assert "created_at" in keys.columns
    assert "text" not in keys.columns  # a partial index serves only its predicate's rows
    assert keys.metadata_keys == frozenset({"price"})
    dated = {"created_at": {"$gte": "2000-01-01"}}
    assert served_by_plan(dated) or not skips
    assert index_served(dated, frozenset(), keys.columns)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"$bogus": 1}, "unknown operator"),
        ({"a": {"$regex": "x"}}, "unknown operator"),
        ({"a": {"$in": "red"}}, "list"),
        ({"a": {"$between": [1]}}, "between"),
        ({"a": {"$between": [1, "z"]}}, "both"),
        ({"a": {"$lt": None}}, "number or a string"),
        ({"a": {"$lt": [1]}}, "string, number"),
        ({"a": {"$exists": "yes"}}, "true or false"),
        ({"a": {"$like": 3}}, "pattern"),
        ({"a": {"$eq": float("nan")}}, "NaN"),
        ({"a": {"$eq": object()}}, "expected"),
        ({"a": {"$gt": 1, "plain": 2}}, "mixes"),
        ({"$and": {}}, "non-empty list"),
        ({"$or": []}, "non-empty list"),
        ({"$not": [1]}, "filter object"),
        ({"$gt": 3}, "applied to a field"),
        ({"": 1}, "non-empty"),
        ({"a..b": 1}, "metadata path"),
        ({"metadata": {"$eq": 1}}, "metadata"),
        ({"text": {"$contains": "x"}}, "metadata keys"),
        ({"a": "x\x00y"}, "NUL"),
        ("color = 'red'", "dict"),
        (42, "dict"),
    ],
)
def test_malformed_filters_are_filter_errors(
    loaded: Repo, engine: Engine, spec: Any, match: str
) -> None:
    with pytest.raises(vs.FilterError, match=match):
        loaded.nearest(np.ones(384), k=3, filter=spec)
    assert issubclass(vs.FilterError, ValueError)


@pytest.mark.parametrize(
    "spec",
    [
        {"a": {"\x00": 1}},  # a NUL in a key of an object value (was SQLSTATE 22P05)
        {"a": {"$contains": {"b\x00": 1}}},
        {"a": {"$in": [{"\x00": 1}]}},
        {"color": "\ud800"},  # lone surrogates (were SQLSTATE 22P02 or UnicodeEncodeError)
        {"\ud800": 1},
        {"color": {"$gt": "\ud800"}},
        {"color": {"$like": "\ud800%"}},
        {"external_id": {"$like": "\ud800"}},
        {"a": {"\ud800": 1}},
    ],
)
def test_strings_postgres_cannot_store_are_filter_errors_before_any_sql(
    loaded: Repo, engine: Engine, spec: Any
) -> None:
    with pytest.raises(vs.FilterError):
        loaded.nearest(np.ones(384), k=3, filter=spec)
    with pytest.raises(vs.FilterError):
        vs.compile_filter(spec, vs.Document)


def test_deep_nesting_is_refused() -> None:
    spec: dict[str, Any] = {"a": 1}
    for _ in range(40):
        spec = {"$not": spec}
    with pytest.raises(vs.FilterError, match="deeper"):
        vs.compile_filter(spec, vs.Document)
