"""nearest composed with the app's own tables: a products table joined on an ASIN."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vectorstore as vs

Repo = vs.DocumentRepository[vs.Document]


class AppBase(DeclarativeBase):
    pass


class Product(AppBase):
    __tablename__ = "app_products"

    asin: Mapped[str] = mapped_column(String, primary_key=True)
    title: Mapped[str] = mapped_column(String)
    category: Mapped[str] = mapped_column(String)


CATEGORIES = ["books", "toys", "garden"]


@pytest.fixture
def catalog(repo: Repo, engine: Engine, session: Session) -> Iterator[np.ndarray[Any, Any]]:
    AppBase.metadata.create_all(engine)
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((90, 384)).astype(np.float32)
    session.add_all(
        Product(asin=f"B{i:04d}", title=f"product {i}", category=CATEGORIES[i % 3])
        for i in range(90)
    )
    repo.bulk_add(
        [f"review of product {i}" for i in range(90)],
        embeddings=vectors,
        metadata=[{"asin": f"B{i:04d}"} for i in range(90)],
        external_ids=[str(i) for i in range(90)],
    )
    yield vectors
    session.rollback()
    AppBase.metadata.drop_all(engine)


ON = Product.asin == vs.Document.metadata_["asin"].astext


@pytest.mark.parametrize("strategy", ["auto", "index", "exact"])
def test_nearest_joins_a_related_model_and_filters_on_it(
    repo: Repo, catalog: np.ndarray[Any, Any], strategy: str
) -> None:
    q = catalog[4]
    hits = repo.nearest(q, k=5, join=Product, join_on=ON, filter=Product.category == "toys",
                        strategy=strategy)  # fmt: skip
    assert hits.returned == 5
    assert all(isinstance(h.extra, Product) and h.extra.category == "toys" for h in hits)
    assert all(h.extra.asin == h.document.metadata_["asin"] for h in hits)
    unit = catalog / np.linalg.norm(catalog, axis=1, keepdims=True)
    d = 1 - unit @ (q / np.linalg.norm(q))
    expected = [i for i in np.argsort(d) if i % 3 == 1][:5]
    assert [h.document.external_id for h in hits] == [str(i) for i in expected]
    frame = hits.to_dataframe()
    assert frame["extra"].map(lambda p: p.category).eq("toys").all()


def test_join_with_a_dictionary_filter_on_metadata(
    repo: Repo, catalog: np.ndarray[Any, Any]
) -> None:
    wanted = [{"asin": {"$in": ["B0000", "B0003"]}}, Product.category == "books"]
    hits = repo.nearest(catalog[0], k=3, join=Product, join_on=ON, filter=wanted)
    assert sorted(h.extra.asin for h in hits) == ["B0000", "B0003"]


def test_nearest_query_composes_with_join_and_where(
    repo: Repo, catalog: np.ndarray[Any, Any], session: Session
) -> None:
    stmt = repo.nearest_query(catalog[7], k=4).join(Product, ON).where(Product.category == "toys")
    rows = session.execute(stmt.add_columns(Product.title)).all()
    assert rows[0][0].external_id == "7"
    assert all(title.startswith("product") for *_, title in rows)
    exact = session.execute(repo.nearest_query(catalog[7], k=4, strategy="exact")).all()
    assert [r[0].id for r in exact] == [
        r[0].id for r in session.execute(repo.nearest_query(catalog[7], k=4)).all()
    ]
    # A subquery of nearest ids joins like any other selectable.
    sub = repo.nearest_query(catalog[7], k=10).subquery()
    count = session.execute(
        select(Product.category).join(sub, Product.asin == sub.c.metadata["asin"].astext)
    ).all()
    assert len(count) == 10
