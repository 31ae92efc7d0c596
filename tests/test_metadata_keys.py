"""Indexed metadata keys: a btree per named key, the same answers as the GIN path, its plans used.

Two tables hold the same rows: one model names ``cat``, ``n`` and ``day`` in
``indexed_metadata_keys``, the other names none.  Every filter must match the
same documents on both (the keyed form is jsonb equality and comparison of
``metadata -> 'key'``, the other is containment), and the keyed table's
plans must scan the key's btree.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, MetaData, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase

import vectorstore as vs
from tests._dedicated import cloned_database
from vectorstore.errors import ConfigurationError
from vectorstore.models import NAMING_CONVENTION
from vectorstore.query.filters import INDEXED_IN_MAX, compile_filter

DIM = 8
ROWS = 10_000


class KeyBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class KeyedDoc(vs.DocumentMixin, KeyBase):
    __tablename__ = "keyed_docs"
    embedding_dimension = DIM
    indexed_metadata_keys = ("cat", "n", "day")


class PlainDoc(vs.DocumentMixin, KeyBase):
    __tablename__ = "plain_docs"
    embedding_dimension = DIM


class KeyedTenantDoc(vs.DocumentMixin, KeyBase):
    __tablename__ = "keyed_tenant_docs"
    embedding_dimension = DIM
    partition_by_collection = True
    indexed_metadata_keys = ("cat",)


#: Values of ``cat`` of every JSON type, so that equality must tell them apart.
ODD_CATS: list[Any] = [5, "5", 5.0, True, None, [1], {"a": 1}, "", "x'y", 'q"uote']


def _metadata(i: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"lang": "en" if i % 3 else "fr"}
    if i % 50 != 7:  # some rows lack the key
        meta["cat"] = ODD_CATS[i % len(ODD_CATS)] if i % 11 == 0 else f"c{i % 100}"
    meta["n"] = i if i % 13 else str(i)  # mostly numbers, some strings
    if i % 17:
        meta["day"] = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}"
    return meta


@pytest.fixture(scope="module")
def loaded(postgresql_noproc: Any) -> Iterator[Any]:
    """One database for the module: both tables, the same rows, analyzed."""
    name = f"vectorstore_metadata_keys_{os.getpid()}"
    with cloned_database(postgresql_noproc.template_dbname, name) as url:
        engine = vs.make_engine(url)
        yield _load(engine)
        engine.dispose()


def _load(engine: Engine) -> Any:
    KeyBase.metadata.create_all(engine, tables=[KeyedDoc.__table__, PlainDoc.__table__])
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    repos = {}
    for model in (KeyedDoc, PlainDoc):
        repo = vs.DocumentRepository.standalone(
            engine, collection="keys", embedding_model="test", model=model
        )
        repo.bulk_add(
            [f"doc {i}" for i in range(ROWS)],
            embeddings=vectors,
            metadata=[_metadata(i) for i in range(ROWS)],
            external_ids=[str(i) for i in range(ROWS)],
        )
        repos[model] = repo
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE keyed_docs")
        conn.exec_driver_sql("ANALYZE plain_docs")
    return engine, repos[KeyedDoc], repos[PlainDoc], vectors


FILTERS: list[Any] = [
    {"cat": "c3"},
    {"cat": "c3", "lang": "en"},
    {"cat": 5},
    {"cat": "5"},
    {"cat": 5.0},
    {"cat": True},
    {"cat": None},
    {"cat": [1]},
    {"cat": {"a": 1}},
    {"cat": ""},
    {"cat": "x'y"},
    {"cat": 'q"uote'},
    {"cat": "no such value"},
    {"cat": {"$eq": "c4"}},
    {"cat": {"$ne": "c4"}},
    {"cat": {"$ne": None}},
    {"cat": {"$in": ["c1", "c2", 5, None, True]}},
    {"cat": {"$in": [f"c{i}" for i in range(INDEXED_IN_MAX + 5)]}},
    {"cat": {"$in": [[1], "c9"]}},
    {"cat": {"$nin": ["c1", "c2", 5]}},
    {"cat": {"$exists": False}},
    {"cat": {"$gte": "c9"}},
    {"n": {"$lt": 40}},
    {"n": {"$gte": 9_990}},
    {"n": {"$between": [100, 120]}},
    {"n": {"$gt": "5"}},
    {"n": 26},
    {"n": "26"},
    {"day": {"$gte": "2024-12-01"}},
    {"day": {"$between": ["2024-03-01", "2024-03-05"]}},
    {"$or": [{"cat": "c1"}, {"n": {"$lt": 10}}]},
    {"$not": {"cat": "c1"}},
    {"$not": {"cat": {"$in": ["c1", "c2"]}}},
    {"$and": [{"cat": {"$in": ["c1", "c2", "c3"]}}, {"day": {"$lt": "2024-06-01"}}]},
]


def _ids(repo: vs.DocumentRepository[Any], spec: Any) -> list[str]:
    page = repo.list(spec, limit=ROWS)
    assert page.next_after is None
    return sorted(str(d.external_id) for d in page.items)


@pytest.mark.parametrize("spec", FILTERS, ids=[str(f)[:60] for f in FILTERS])
def test_a_keyed_filter_matches_what_containment_matches(loaded: Any, spec: Any) -> None:
    _, keyed, plain, _ = loaded
    expected = _ids(plain, spec)
    assert _ids(keyed, spec) == expected
    assert keyed.count(spec) == plain.count(spec) == len(expected)


def test_the_battery_is_not_trivial(loaded: Any) -> None:
    _, _, plain, _ = loaded
    counts = [plain.count(spec) for spec in FILTERS]
    assert sum(1 for c in counts if 0 < c < ROWS) >= len(FILTERS) - 2
    assert plain.count({"cat": 5}) == plain.count({"cat": 5.0}) > 0
    assert plain.count({"cat": "5"}) > 0
    assert plain.count({"cat": True}) > 0


@pytest.mark.parametrize("strategy", ["exact", "iterative", "auto"])
def test_nearest_on_a_keyed_model_returns_the_same_documents(loaded: Any, strategy: str) -> None:
    _, keyed, plain, vectors = loaded
    for spec in ({"cat": "c8"}, {"cat": {"$in": ["c8", "c9"]}}, {"n": {"$lt": 500}}):
        for q in vectors[:3]:
            for _ in range(2):  # the second call runs from the raw path's caches
                want = plain.nearest(q, k=10, filter=spec, strategy="exact")
                got = keyed.nearest(q, k=10, filter=spec, strategy=strategy)
                if strategy == "exact":
                    assert [h.document.external_id for h in got] == [
                        h.document.external_id for h in want
                    ]
                assert len(got) == len(want) == 10
                assert all(spec_matches(h.document.metadata_, spec) for h in got)


def spec_matches(meta: dict[str, Any], spec: dict[str, Any]) -> bool:
    (key, cond), = spec.items()
    value = meta.get(key)
    if isinstance(cond, dict) and "$in" in cond:
        return value in cond["$in"]
    if isinstance(cond, dict) and "$lt" in cond:
        return isinstance(value, int) and value < cond["$lt"]
    return bool(value == cond)


@pytest.mark.parametrize(
    ("spec", "index"),
    [
        ({"cat": "c3"}, "ix_keyed_docs_metadata_cat"),
        ({"cat": {"$in": ["c3", "c4"]}}, "ix_keyed_docs_metadata_cat"),
        ({"n": {"$gte": 9_900}}, "ix_keyed_docs_metadata_n"),
        ({"day": {"$between": ["2024-03-01", "2024-03-02"]}}, "ix_keyed_docs_metadata_day"),
    ],
)
def test_the_exact_path_scans_the_keys_btree(loaded: Any, spec: Any, index: str) -> None:
    _, keyed, plain, vectors = loaded
    report = keyed.explain(vectors[0], k=10, filter=spec, strategy="exact")
    assert index in report.index_names
    assert not any("metadata_" in n for n in plain.explain(
        vectors[0], k=10, filter=spec, strategy="exact").index_names)  # fmt: skip


def test_the_key_is_a_literal_in_the_sql_and_values_stay_bound() -> None:
    compiled = compile_filter({"cat": "x' OR 1=1 --"}, KeyedDoc).compile(
        dialect=postgresql.dialect()
    )
    sql = str(compiled)
    assert "metadata -> 'cat'" in sql
    assert "OR 1=1" not in sql
    assert "x' OR 1=1 --" in str(list(compiled.params.values()))
    # An unkeyed key keeps the containment form.
    other = str(compile_filter({"lang": "en"}, KeyedDoc).compile(dialect=postgresql.dialect()))
    assert "@>" in other
    assert "->" not in other


def test_the_declared_indexes(loaded: Any) -> None:
    engine = loaded[0]
    with engine.connect() as conn:
        found = dict(
            conn.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'keyed_docs'")
            ).all()
        )
    for key in ("cat", "n", "day"):
        definition = found[f"ix_keyed_docs_metadata_{key}"]
        assert f"btree (collection_id, ((metadata -> '{key}'::text)))" in definition
    assert "ix_keyed_docs_metadata" in found  # the GIN index stays for the other keys


@pytest.mark.parametrize(
    "keys",
    [("a-b",), ("1st",), ("x" * 33,), ("ok", "ok"), "cat", ("",), (3,)],
    ids=["dash", "digit", "long", "twice", "string", "empty", "int"],
)
def test_a_bad_key_is_refused_when_the_class_is_defined(keys: Any) -> None:
    with pytest.raises(ConfigurationError, match="indexed_metadata_keys"):

        class Bad(vs.DocumentMixin, KeyBase):
            __tablename__ = f"bad_{abs(hash(str(keys)))}"
            embedding_dimension = DIM
            indexed_metadata_keys = keys


def test_keys_and_the_metadata_table_layout_are_refused_together() -> None:
    with pytest.raises(ConfigurationError, match="metadata_index = 'table'"):

        class Both(vs.DocumentMixin, KeyBase):
            __tablename__ = "both_docs"
            embedding_dimension = DIM
            metadata_index = "table"
            indexed_metadata_keys = ("cat",)


def test_a_tenants_partition_gets_the_key_index(loaded: Any) -> None:
    engine = loaded[0]
    KeyBase.metadata.create_all(engine, tables=[KeyedTenantDoc.__table__])
    repo = vs.DocumentRepository.standalone(
        engine, collection="tenant-k", embedding_model="test", model=KeyedTenantDoc
    )
    repo.add("one", embedding=np.ones(DIM), metadata={"cat": "c1"})
    with engine.connect() as conn:
        defs = conn.execute(
            text(
                "SELECT indexdef FROM pg_indexes WHERE tablename IN (SELECT relid::regclass::text "
                "FROM pg_partition_tree('keyed_tenant_docs') WHERE isleaf)"
            )
        ).scalars().all()
    assert any("((metadata -> 'cat'::text))" in d for d in defs), defs
    assert repo.count({"cat": "c1"}) == 1


def test_a_big_load_rebuilds_the_key_index(loaded: Any) -> None:
    engine = loaded[0]
    repo = vs.DocumentRepository.standalone(
        engine, collection="rebuilt", embedding_model="test", model=KeyedDoc
    )
    result = repo.bulk_add(
        [f"r {i}" for i in range(300)],
        embeddings=np.ones((300, DIM), dtype=np.float32),
        metadata=[{"cat": f"r{i % 3}"} for i in range(300)],
        rebuild_index=True,
    )
    assert result.inserted == 300
    with engine.connect() as conn:
        valid = conn.execute(
            text(
                "SELECT indisvalid FROM pg_index "
                "WHERE indexrelid = 'ix_keyed_docs_metadata_cat'::regclass"
            )
        ).scalar_one()
    assert valid is True
    assert repo.count({"cat": "r1"}) == 100


def test_psycopg_3_prepared_statements_give_the_same_documents(loaded: Any) -> None:
    """psycopg 3 binds server-side and prepares statements run five times: the key stays literal."""
    engine, _, plain, vectors = loaded
    other = vs.make_engine(engine.url.set(drivername="postgresql+psycopg"))
    try:
        keyed = vs.DocumentRepository.standalone(other, collection="keys", model=KeyedDoc)
        for spec in ({"cat": "c8"}, {"n": {"$between": [100, 400]}}):
            want = [h.document.external_id for h in plain.nearest(vectors[5], k=10, filter=spec)]
            for _ in range(8):
                got = keyed.nearest(vectors[5], k=10, filter=spec, strategy="exact")
                assert [h.document.external_id for h in got] == want
            assert keyed.count(spec) == plain.count(spec)
    finally:
        other.dispose()
