"""Hostile and malformed input: each case is a clear, typed vectorstore error, and
the database is byte-for-byte unchanged afterwards.

Every case runs against a standalone repository (it commits each call on its
own) over a collection that already holds a few documents; a fingerprint of
both vectorstore tables, taken through a separate connection, must be the same
before and after.  SQL fragments in values, filter keys and collection names
are not errors - they are data - so those cases check that the statement ran,
matched nothing (or stored the text verbatim) and left every table in place.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import DeclarativeBase

import vectorstore as vs
from tests._dedicated import cloned_database

DIM = vs.DEFAULT_DIMENSION
SQL = "x'); DROP TABLE vectorstore_documents; --"
Repo = vs.DocumentRepository[vs.Document]


def _vec(seed: int = 0) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


@pytest.fixture(scope="module")
def shared(postgresql_noproc: Any) -> Iterator[tuple[Engine, Repo]]:
    """One database for the module: every case must leave it unchanged anyway."""
    name = f"vectorstore_hostile_{os.getpid()}"
    with cloned_database(postgresql_noproc.template_dbname, name) as url:
        engine = vs.make_engine(url)
        repo: Repo = vs.DocumentRepository.standalone(
            engine, collection="hostile", embedder=vs.HashingTestEmbedder()
        )
        repo.bulk_add(
            [{"text": f"seed document {i}", "external_id": f"s{i}", "metadata": {"i": i}}
             for i in range(5)]
        )  # fmt: skip
        yield engine, repo
        engine.dispose()


@pytest.fixture
def repo_(engine: Engine) -> Repo:
    """A repository over this test's own database, seeded like the shared one."""
    repo: Repo = vs.DocumentRepository.standalone(
        engine, collection="hostile", embedder=vs.HashingTestEmbedder()
    )
    repo.bulk_add(
        [{"text": f"seed document {i}", "external_id": f"s{i}", "metadata": {"i": i}}
         for i in range(5)]
    )  # fmt: skip
    return repo


def fingerprint(engine: Engine) -> tuple[Any, ...]:
    """Counts and a digest of every row of vectorstore's tables."""
    with engine.connect() as conn:
        docs = conn.execute(
            text(
                "SELECT count(*), md5(coalesce(string_agg(concat_ws('|', id, collection_id, "
                "external_id, text, metadata::text, embedding::text), ',' ORDER BY id), '')) "
                "FROM vectorstore_documents"
            )
        ).one()
        cols = conn.execute(
            text(
                "SELECT count(*), md5(coalesce(string_agg(concat_ws('|', id, name, "
                "embedding_model, dimension), ',' ORDER BY id), '')) FROM vectorstore_collections"
            )
        ).one()
    return (*docs, *cols)


# -- the cases: (id, call, expected error) -------------------------------------------------
Call = Callable[[Repo], Any]


def _ragged() -> list[dict[str, Any]]:
    return [{"text": "a", "embedding": _vec(1)}, {"text": "b", "embedding": _vec(2)[:10]}]


def _bad_row_in_a_later_chunk() -> Iterator[dict[str, Any]]:
    # Chunks of 10: the first two chunks are already streamed when row 25 fails.
    for i in range(30):
        yield {"text": "" if i == 25 else f"row {i}", "embedding": _vec(i)}


def _nan_matrix() -> np.ndarray[Any, Any]:
    matrix = np.stack([_vec(i) for i in range(4)])
    matrix[3, 7] = np.nan
    return matrix


class _Unserialisable:
    pass


CASES: list[tuple[str, Call, type[Exception]]] = [
    # add: embeddings
    (
        "add-wrong-dimension",
        lambda r: r.add("t", embedding=_vec()[:383]),
        vs.DimensionMismatchError,
    ),
    ("add-zero-dimension", lambda r: r.add("t", embedding=[]), vs.DimensionMismatchError),
    ("add-too-long", lambda r: r.add("t", embedding=np.ones(DIM + 1)), vs.DimensionMismatchError),
    ("add-nan", lambda r: r.add("t", embedding=[math.nan] * DIM), vs.ValidationError),
    ("add-inf", lambda r: r.add("t", embedding=[1.0] * (DIM - 1) + [math.inf]), vs.ValidationError),
    (
        "add-float64-overflows-float32",
        lambda r: r.add("t", embedding=np.full(DIM, 1e300)),
        vs.ValidationError,
    ),
    ("add-str-embedding", lambda r: r.add("t", embedding="0.1, 0.2"), vs.ValidationError),
    ("add-str-elements", lambda r: r.add("t", embedding=["0.1"] * DIM), vs.ValidationError),
    ("add-2d-embedding", lambda r: r.add("t", embedding=np.ones((2, DIM))), vs.ValidationError),
    (
        "add-complex",
        lambda r: r.add("t", embedding=np.ones(DIM, dtype=complex)),
        vs.ValidationError,
    ),
    (
        "add-bool-array",
        lambda r: r.add("t", embedding=np.ones(DIM, dtype=bool)),
        vs.ValidationError,
    ),
    # add: text
    ("add-none-text", lambda r: r.add(None), vs.ValidationError),  # type: ignore[arg-type]
    ("add-empty-text", lambda r: r.add(""), vs.ValidationError),
    ("add-blank-text", lambda r: r.add(" \n\t "), vs.ValidationError),
    ("add-bytes-text", lambda r: r.add(b"bytes"), vs.ValidationError),  # type: ignore[arg-type]
    ("add-10mb-text", lambda r: r.add("a" * 10_000_000, embedding=_vec()), vs.ValidationError),
    ("add-nul-text", lambda r: r.add("before\x00after"), vs.ValidationError),
    ("add-lone-surrogate", lambda r: r.add("broken \udc80 text"), vs.ValidationError),
    # add: metadata and external id
    ("add-metadata-set", lambda r: r.add("t", metadata={"tags": {1, 2}}), vs.ValidationError),
    (
        "add-metadata-object",
        lambda r: r.add("t", metadata={"o": _Unserialisable()}),
        vs.ValidationError,
    ),
    ("add-metadata-nan", lambda r: r.add("t", metadata={"x": math.nan}), vs.ValidationError),
    ("add-metadata-nul", lambda r: r.add("t", metadata={"x": "a\x00b"}), vs.ValidationError),
    ("add-metadata-surrogate", lambda r: r.add("t", metadata={"\ud800": 1}), vs.ValidationError),
    (
        "add-metadata-list",
        lambda r: r.add("t", metadata=[1, 2]),  # type: ignore[arg-type]
        vs.ValidationError,
    ),
    (
        "add-metadata-non-str-key-object",
        lambda r: r.add("t", metadata={(1, 2): "tuple key"}),
        vs.ValidationError,
    ),
    ("add-external-id-nul", lambda r: r.add("t", external_id="a\x00"), vs.ValidationError),
    ("add-external-id-huge", lambda r: r.add("t", external_id="x" * 10_000), vs.ValidationError),
    (
        "add-external-id-float",
        lambda r: r.add("t", external_id=1.5),  # type: ignore[arg-type]
        vs.ValidationError,
    ),
    ("add-duplicate-external-id", lambda r: r.add("again", external_id="s1"), vs.ConflictError),
    # bulk_add
    ("bulk-ragged", lambda r: r.bulk_add(_ragged()), vs.ValidationError),
    (
        "bulk-str-matrix",
        lambda r: r.bulk_add(["a", "b"], embeddings=[["x"] * DIM] * 2),
        vs.ValidationError,
    ),
    (
        "bulk-nan-in-matrix",
        lambda r: r.bulk_add(_nan_matrix(), texts=["a", "b", "c", "d"]),
        vs.ValidationError,
    ),
    (
        "bulk-wrong-width-matrix",
        lambda r: r.bulk_add(np.ones((2, 3)), texts=["a", "b"]),
        vs.DimensionMismatchError,
    ),
    (
        "bulk-bad-row-in-later-chunk",
        lambda r: r.bulk_add(_bad_row_in_a_later_chunk(), chunk_rows=10),
        vs.ValidationError,
    ),
    (
        "bulk-bad-row-staging-path",
        lambda r: r.bulk_add(_bad_row_in_a_later_chunk(), chunk_rows=10, on_conflict="update"),
        vs.ValidationError,
    ),
    (
        "bulk-length-mismatch",
        lambda r: r.bulk_add(["a", "b"], embeddings=np.ones((3, DIM))),
        vs.ValidationError,
    ),
    ("bulk-matrix-without-texts", lambda r: r.bulk_add(np.ones((2, DIM))), vs.ValidationError),
    ("bulk-single-string", lambda r: r.bulk_add("just one text"), vs.ValidationError),
    ("bulk-unknown-keys", lambda r: r.bulk_add([{"text": "a", "txet": "b"}]), vs.ValidationError),
    ("bulk-record-wrong-type", lambda r: r.bulk_add([42]), vs.ValidationError),
    ("bulk-none-record-text", lambda r: r.bulk_add([{"text": None}]), vs.ValidationError),
    (
        "bulk-bad-on-conflict",
        lambda r: r.bulk_add(["a"], on_conflict="merge"),  # type: ignore[arg-type]
        vs.ValidationError,
    ),
    ("bulk-chunk-rows-zero", lambda r: r.bulk_add(["a"], chunk_rows=0), vs.ValidationError),
    (
        "bulk-duplicate-external-id",
        lambda r: r.bulk_add([{"text": "x", "external_id": "s2"}]),
        vs.ConflictError,
    ),
    (
        "bulk-dataframe-missing-text-column",
        lambda r: r.bulk_add(pd.DataFrame({"body": ["a"], "embedding": [_vec()]})),
        vs.ValidationError,
    ),
    (
        "bulk-dataframe-missing-metadata-column",
        lambda r: r.bulk_add(pd.DataFrame({"text": ["a"]}), metadata_columns=["year"]),
        vs.ValidationError,
    ),
    (
        "bulk-dataframe-nan-text",
        lambda r: r.bulk_add(pd.DataFrame({"text": ["a", math.nan]})),
        vs.ValidationError,
    ),
    # nearest
    ("nearest-k-zero", lambda r: r.nearest(_vec(), k=0), vs.ValidationError),
    ("nearest-k-negative", lambda r: r.nearest(_vec(), k=-5), vs.ValidationError),
    ("nearest-k-float", lambda r: r.nearest(_vec(), k=2.5), vs.ValidationError),  # type: ignore[arg-type]
    ("nearest-k-bool", lambda r: r.nearest(_vec(), k=True), vs.ValidationError),
    ("nearest-k-enormous", lambda r: r.nearest(_vec(), k=10**30), vs.ValidationError),
    ("nearest-wrong-dimension", lambda r: r.nearest(_vec()[:10]), vs.DimensionMismatchError),
    ("nearest-nan-query", lambda r: r.nearest([math.nan] * DIM), vs.ValidationError),
    ("nearest-empty-text", lambda r: r.nearest("   "), vs.ValidationError),
    ("nearest-none-query", lambda r: r.nearest(None), vs.ValidationError),  # type: ignore[arg-type]
    # filters
    (
        "filter-unknown-operator",
        lambda r: r.nearest(_vec(), filter={"i": {"$regex": ".*"}}),
        vs.FilterError,
    ),
    (
        "filter-sql-operator",
        lambda r: r.nearest(_vec(), filter={"i": {"$" + SQL: 1}}),
        vs.FilterError,
    ),
    ("filter-deeply-nested", lambda r: r.nearest(_vec(), filter=_nested(5_000)), vs.FilterError),
    ("filter-in-not-a-list", lambda r: r.nearest(_vec(), filter={"i": {"$in": 5}}), vs.FilterError),
    ("filter-and-not-a-list", lambda r: r.nearest(_vec(), filter={"$and": "i"}), vs.FilterError),
    ("filter-not-a-mapping", lambda r: r.nearest(_vec(), filter=42), vs.FilterError),
    (
        "filter-object-operand",
        lambda r: r.nearest(_vec(), filter={"i": _Unserialisable()}),
        vs.FilterError,
    ),
    (
        "filter-nan-operand",
        lambda r: r.nearest(_vec(), filter={"i": {"$gt": math.nan}}),
        vs.FilterError,
    ),
]


def _nested(depth: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"i": 1}
    for _ in range(depth):
        spec = {"$not": spec}
    return spec


@pytest.mark.parametrize(("call", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_is_a_typed_error_and_changes_nothing(
    shared: tuple[Engine, Repo], call: Call, error: type[Exception]
) -> None:
    engine, repo_ = shared
    before = fingerprint(engine)
    with pytest.raises(error) as caught:
        call(repo_)
    assert isinstance(caught.value, vs.VectorStoreError)
    assert str(caught.value)  # a message, not an empty error
    assert fingerprint(engine) == before
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_bad_row_errors_name_the_row(shared: tuple[Engine, Repo]) -> None:
    _, repo_ = shared
    with pytest.raises(vs.ValidationError) as caught:
        repo_.bulk_add(_bad_row_in_a_later_chunk(), chunk_rows=10)
    assert caught.value.row == 25
    assert "row 25" in str(caught.value)


# -- SQL fragments are data, never SQL ------------------------------------------------------
@pytest.mark.parametrize(
    "spec",
    [{SQL: 1}, {"i": SQL}, {"i": {"$in": [SQL, 99]}}, {"text": {"$like": SQL}}, {f"a.{SQL}": 1},
     {"external_id": SQL}, {"i": {SQL: 1}}],
    ids=["key", "value", "in-list", "like", "nested-key", "column-value", "object-value-key"],
)  # fmt: skip
def test_sql_in_filter_keys_and_values_is_only_data(
    shared: tuple[Engine, Repo], spec: dict[str, Any]
) -> None:
    engine, repo_ = shared
    before = fingerprint(engine)
    assert list(repo_.nearest(_vec(), k=3, filter=spec)) == []
    assert fingerprint(engine) == before


def test_sql_in_a_collection_name_is_stored_verbatim(engine: Engine) -> None:
    repo: Repo = vs.DocumentRepository.standalone(
        engine, collection=SQL, embedder=vs.HashingTestEmbedder()
    )
    repo.add("a document in an oddly named collection")
    assert repo.collection.name == SQL
    assert repo.count() == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM vectorstore_collections")).scalars().all() == [
            SQL
        ]


@pytest.mark.parametrize(
    "name", ["", "   ", "a\x00b", "x" * 201, "bad \udc80 name", None, 42],
    ids=["empty", "blank", "nul", "too-long", "surrogate", "none", "int"],
)  # fmt: skip
def test_bad_collection_names_are_refused_before_any_sql(engine: Engine, name: Any) -> None:
    before = fingerprint(engine)
    with pytest.raises(vs.ValidationError):
        vs.DocumentRepository.standalone(engine, collection=name, embedding_model="m").count()
    assert fingerprint(engine) == before


class _AppBase(DeclarativeBase):
    pass


@pytest.mark.parametrize(
    ("table", "schema"),
    [
        ("docs; DROP TABLE vectorstore_documents; --", None),
        ('docs" CASCADE', None),
        ("docs", "public; DROP SCHEMA public CASCADE; --"),
        ("d" * 64, None),
        ("docs\x00", None),
        ("", None),
    ],
    ids=["sql-table", "quote-table", "sql-schema", "too-long", "nul", "empty"],
)
def test_hostile_table_and_schema_names_in_an_app_model_are_refused(
    engine: Engine, table: str, schema: str | None
) -> None:
    attrs: dict[str, Any] = {"__tablename__": table, "table_schema": schema}
    model = type(f"HostileDoc{abs(hash((table, schema)))}", (vs.DocumentMixin, _AppBase), attrs)
    before = fingerprint(engine)
    with pytest.raises(vs.ValidationError, match="identifier"):
        vs.DocumentRepository.standalone(engine, collection="c", model=model, embedding_model="m")
    assert fingerprint(engine) == before


# -- empty input is a no-op ------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [[], iter(()), pd.DataFrame({"text": []}), np.empty((0, DIM), dtype=np.float32)],
    ids=["list", "generator", "dataframe", "matrix"],
)
def test_empty_input_is_a_no_op(shared: tuple[Engine, Repo], data: Any) -> None:
    engine, repo_ = shared
    before = fingerprint(engine)
    extra = {"texts": []} if isinstance(data, np.ndarray) else {}
    result = repo_.bulk_add(data, **extra)
    assert (result.inserted, result.skipped, result.updated) == (0, 0, 0)
    assert fingerprint(engine) == before


def test_float64_and_int_embeddings_are_converted_not_refused(repo_: Repo) -> None:
    as_ints = np.arange(DIM, dtype=np.int64)
    doc = repo_.add("ints", embedding=as_ints)
    assert np.array_equal(np.asarray(doc.embedding, dtype=np.float32), as_ints)
    as_f64 = np.linspace(-1, 1, DIM, dtype=np.float64)
    doc = repo_.add("float64", embedding=as_f64)
    assert np.array_equal(np.asarray(doc.embedding, dtype=np.float32), as_f64.astype(np.float32))
