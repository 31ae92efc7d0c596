"""An app's own document model: another table, another schema, another dimension."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, MetaData, text
from sqlalchemy.orm import DeclarativeBase, Session

import vectorstore as vs
from tests.conftest import table_count
from vectorstore.models import NAMING_CONVENTION


class AppBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ProductDoc(vs.DocumentMixin, AppBase):
    __tablename__ = "product_docs"
    table_schema = "catalog"
    embedding_dimension = 8


@pytest.fixture
def app_engine(engine: Engine) -> Engine:
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA catalog"))
    AppBase.metadata.create_all(engine)
    return engine


def test_repository_works_with_an_apps_own_model(app_engine: Engine) -> None:
    emb = vs.HashingTestEmbedder(dimension=8)
    with Session(app_engine) as session:
        repo = vs.DocumentRepository(session, collection="products", embedder=emb, model=ProductDoc)
        doc = repo.add("red running shoes", metadata={"category": "shoes"}, external_id="B0001")
        assert isinstance(doc, ProductDoc)
        result = repo.bulk_add(
            [{"text": f"item {i}", "external_id": f"B1{i:03d}"} for i in range(50)]
        )
        assert result.inserted == 50
        session.commit()
        assert repo.count() == 51
        hits = repo.nearest("red running shoes", k=1)
        assert hits[0].document.external_id == "B0001"
        assert len(hits[0].document.embedding) == 8
    assert table_count(app_engine, "catalog.product_docs") == 51
    assert table_count(app_engine, "vectorstore_documents") == 0


def test_custom_model_indexes_are_declared(app_engine: Engine) -> None:
    from sqlalchemy import inspect

    names = {ix["name"] for ix in inspect(app_engine).get_indexes("product_docs", schema="catalog")}
    assert "ix_product_docs_embedding_hnsw" in names
    assert "ix_product_docs_metadata" in names
    with app_engine.connect() as conn:
        definition = conn.execute(
            text("SELECT pg_get_indexdef('catalog.ix_product_docs_metadata'::regclass)")
        ).scalar_one()
    assert "jsonb_path_ops" in definition


def test_a_collection_cannot_change_dimension(app_engine: Engine) -> None:
    with Session(app_engine) as session:
        vs.DocumentRepository(session, collection="shared", embedding_model="m").add(
            "x", embedding=np.ones(384)
        )
        small = vs.DocumentRepository(
            session, collection="shared", model=ProductDoc, embedding_model="m"
        )
        with pytest.raises(vs.DimensionMismatchError, match="384"):
            small.add("y", embedding=np.ones(8))
        session.commit()
    assert table_count(app_engine, "catalog.product_docs") == 0


class PlainDoc(vs.DocumentMixin, AppBase):
    """No full-text index: the cheapest loads, no hybrid search."""

    __tablename__ = "plain_docs"
    embedding_dimension = 8
    full_text_search = False


def test_a_model_without_full_text_search(app_engine: Engine) -> None:
    from sqlalchemy import inspect

    names = {ix["name"] for ix in inspect(app_engine).get_indexes("plain_docs")}
    assert "ix_plain_docs_text_search" not in names
    assert "ix_plain_docs_metadata" in names
    assert "ix_product_docs_text_search" in {
        ix["name"] for ix in inspect(app_engine).get_indexes("product_docs", schema="catalog")
    }
    emb = vs.HashingTestEmbedder(dimension=8)
    with Session(app_engine) as session:
        repo = vs.DocumentRepository(session, collection="plain", embedder=emb, model=PlainDoc)
        assert repo.bulk_add([f"item {i}" for i in range(20)]).inserted == 20
        assert len(repo.nearest("item 3", k=3)) == 3
        with pytest.raises(vs.ConfigurationError, match="full_text_search = False"):
            repo.hybrid("item", k=3)
        session.commit()


class ExpressionDoc(vs.DocumentMixin, AppBase):
    """The "expression" layout: no stored tsvector, a GIN index on the expression."""

    __tablename__ = "expression_docs"
    embedding_dimension = 8
    full_text_search = "expression"


def _schema_diff(engine: Engine) -> list[Any]:
    """alembic's autogenerate comparison of the app's models with the database."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        opts = {"compare_type": True, "include_schemas": True}
        context = MigrationContext.configure(conn, opts=opts)
        return [
            d
            for d in compare_metadata(context, AppBase.metadata)
            if "vectorstore_" not in repr(d)  # vectorstore's own tables are not the app's
        ]


def test_each_full_text_layout_is_built_by_create_all_and_clean(app_engine: Engine) -> None:
    from sqlalchemy import inspect

    insp = inspect(app_engine)
    stored = {c["name"] for c in insp.get_columns("product_docs", schema="catalog")}
    assert "text_search" in stored
    assert "text_search" not in {c["name"] for c in insp.get_columns("expression_docs")}
    assert "text_search" not in {c["name"] for c in insp.get_columns("plain_docs")}
    with app_engine.connect() as conn:
        definition = conn.execute(
            text("SELECT pg_get_indexdef('ix_expression_docs_text_search'::regclass)")
        ).scalar_one()
    assert "USING gin (to_tsvector('english'::regconfig, text))" in definition
    assert _schema_diff(app_engine) == []
    # Autogenerate writes the expression index of a table that lacks it.
    with app_engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_expression_docs_text_search"))
    missing = _schema_diff(app_engine)
    assert [d[0] for d in missing] == ["add_index"]
    assert missing[0][1].name == "ix_expression_docs_text_search"


def test_hybrid_on_the_expression_layout(app_engine: Engine) -> None:
    emb = vs.HashingTestEmbedder(dimension=8)
    with Session(app_engine) as session:
        repo = vs.DocumentRepository(session, collection="e", embedder=emb, model=ExpressionDoc)
        repo.bulk_add(["red running shoes", "shoes for running", "bread recipes"])
        hits = repo.hybrid("running shoes", k=3, vector_weight=0.0)
        ranked = [h.document.text for h in hits if h.extra["text_rank"] is not None]
        assert sorted(ranked) == ["red running shoes", "shoes for running"]
        session.commit()


@pytest.mark.parametrize("bad", [True, "gin", None, 1])
def test_an_unknown_full_text_layout_is_a_configuration_error(bad: object) -> None:
    class Scratch(DeclarativeBase):
        pass

    with pytest.raises(vs.ConfigurationError, match="full_text_search"):
        type(
            "BadDoc",
            (vs.DocumentMixin, Scratch),
            {"__tablename__": "bad_docs", "full_text_search": bad},
        )
