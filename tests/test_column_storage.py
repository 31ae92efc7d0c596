"""The embedding, the metadata and the stored tsvector stay in the row: ``SET STORAGE MAIN``.

Checked on the server: ``pg_attribute.attstorage`` and, per row,
``pg_column_toast_chunk_id`` (NULL when a value is not stored out of line).
The rows have texts long enough that pgvector's own ``EXTERNAL`` storage
moves the vector to TOAST, which the control cases show.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, MetaData, text
from sqlalchemy.orm import DeclarativeBase

import vectorstore as vs
from vectorstore.column_storage import column_storage_ddl

DIM = 384


def _long_text(seed: int, words: int = 400) -> str:
    """About 3,000 characters of varied words: past the 2 KB toast threshold."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 10)))
                  for _ in range(3000)]  # fmt: skip
    return " ".join(rng.choice(vocabulary) for _ in range(words))


def _vector(seed: int) -> np.ndarray[Any, Any]:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    out: np.ndarray[Any, Any] = v / np.linalg.norm(v)
    return out


def _storage(engine: Engine, table: str, column: str) -> str:
    sql = ("SELECT attstorage FROM pg_attribute WHERE attrelid = to_regclass(:t) "
           "AND attname = :c")  # fmt: skip
    with engine.connect() as conn:
        return str(conn.execute(text(sql), {"t": table, "c": column}).scalar_one())


def _out_of_line(engine: Engine, table: str, column: str) -> list[bool]:
    sql = f'SELECT pg_column_toast_chunk_id("{column}") IS NOT NULL FROM "{table}" ORDER BY id'
    with engine.connect() as conn:
        return [bool(r) for r in conn.execute(text(sql)).scalars()]


def _set_storage(engine: Engine, column: str, storage: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE vectorstore_documents ALTER COLUMN {column} "
                          f"SET STORAGE {storage}"))  # fmt: skip


def _add_long_rows(engine: Engine, model: Any = None, n: int = 3) -> None:
    repo: Any = vs.DocumentRepository.standalone(
        engine, collection="long", embedder=vs.HashingTestEmbedder(DIM),
        **({"model": model} if model is not None else {}),
    )  # fmt: skip
    for i in range(n):
        repo.add(_long_text(i), embedding=_vector(i), metadata={"i": i, "cat": f"c{i}"})


def test_the_default_table_keeps_vector_and_tsvector_in_the_row(engine: Engine) -> None:
    assert _storage(engine, "vectorstore_documents", "embedding") == "m"
    assert _storage(engine, "vectorstore_documents", "metadata") == "m"
    assert _storage(engine, "vectorstore_documents", "text_search") == "m"
    _add_long_rows(engine)
    for column in ("embedding", "metadata", "text_search"):
        assert _out_of_line(engine, "vectorstore_documents", column) == [False] * 3, column
    # The text is what makes room: compressed in the row or moved out, never the vector.
    with engine.connect() as conn:
        squeezed = conn.execute(text(
            "SELECT pg_column_compression(text) IS NOT NULL "
            "OR pg_column_toast_chunk_id(text) IS NOT NULL FROM vectorstore_documents"
        )).scalars().all()  # fmt: skip
    assert squeezed == [True] * 3


def test_pgvectors_own_storage_moves_the_vector_out(engine: Engine) -> None:
    """The control: with the type's EXTERNAL storage the same rows lose their vector to TOAST."""
    _set_storage(engine, "embedding", "EXTERNAL")
    _add_long_rows(engine)
    assert _out_of_line(engine, "vectorstore_documents", "embedding") == [True] * 3
    assert vs.check_schema(engine) == [
        ("modify_storage", None, "vectorstore_documents", "embedding", "e", "m")
    ]
    # Documented: SET STORAGE changes new row versions only; a rewrite moves the old ones.
    _set_storage(engine, "embedding", "MAIN")
    assert _out_of_line(engine, "vectorstore_documents", "embedding") == [True] * 3
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM FULL vectorstore_documents"))
    assert _out_of_line(engine, "vectorstore_documents", "embedding") == [False] * 3
    assert vs.check_schema(engine) == []


def test_an_extended_metadata_is_what_the_toaster_would_move_out(engine: Engine) -> None:
    """Why metadata is MAIN too: with only the vector and tsvector kept in, it goes out."""
    _set_storage(engine, "metadata", "EXTENDED")
    _add_long_rows(engine)
    assert _out_of_line(engine, "vectorstore_documents", "embedding") == [False] * 3
    assert _out_of_line(engine, "vectorstore_documents", "metadata") == [True] * 3


def test_migration_0010_down_and_up(engine: Engine) -> None:
    vs.downgrade(engine, "0009")
    assert _storage(engine, "vectorstore_documents", "embedding") == "e"
    assert _storage(engine, "vectorstore_documents", "metadata") == "x"
    assert _storage(engine, "vectorstore_documents", "text_search") == "x"
    drift = {d[3] for d in vs.check_schema(engine) if d[0] == "modify_storage"}
    assert drift == {"embedding", "metadata", "text_search"}
    vs.migrate(engine)
    assert _storage(engine, "vectorstore_documents", "embedding") == "m"
    assert _storage(engine, "vectorstore_documents", "metadata") == "m"
    assert _storage(engine, "vectorstore_documents", "text_search") == "m"
    assert vs.check_schema(engine) == []


class AppBase(DeclarativeBase):
    metadata = MetaData()


class PlainDoc(vs.DocumentMixin, AppBase):
    __tablename__ = "storage_plain_docs"
    full_text_search = "expression"


class TenantDoc(vs.DocumentMixin, AppBase):
    __tablename__ = "storage_tenant_docs"
    partition_by_collection = True


class ShadowDoc(vs.DocumentMixin, AppBase):
    __tablename__ = "storage_shadow_docs"
    metadata_index = "table"


@pytest.fixture
def app_tables(engine: Engine) -> Engine:
    AppBase.metadata.create_all(engine)
    return engine


@pytest.mark.parametrize("model", [PlainDoc, TenantDoc, ShadowDoc], ids=lambda m: m.__name__)
def test_create_all_keeps_the_vector_in_the_row(app_tables: Engine, model: Any) -> None:
    table = model.__tablename__
    assert _storage(app_tables, table, "embedding") == "m"
    _add_long_rows(app_tables, model)
    if model is TenantDoc:  # the rows live in the tenant's partition, which inherits
        with app_tables.connect() as conn:
            part = conn.execute(text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass(:t)"), {"t": table}).scalar_one()  # fmt: skip
        assert _storage(app_tables, part, "embedding") == "m"
    assert _out_of_line(app_tables, table, "embedding") == [False] * 3
    assert _out_of_line(app_tables, table, "metadata") == [False] * 3


def test_column_storage_ddl_names_only_the_columns_a_table_has() -> None:
    assert column_storage_ddl(PlainDoc.__table__) == [
        'ALTER TABLE "storage_plain_docs" ALTER COLUMN "embedding" SET STORAGE MAIN, '
        'ALTER COLUMN "metadata" SET STORAGE MAIN'
    ]
    assert vs.column_storage_ddl(vs.Document.__table__) == [
        'ALTER TABLE "vectorstore_documents" ALTER COLUMN "embedding" SET STORAGE MAIN, '
        'ALTER COLUMN "metadata" SET STORAGE MAIN, ALTER COLUMN "text_search" SET STORAGE MAIN'
    ]
