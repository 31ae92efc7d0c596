"""The catalog's per-collection index lookups (no database: the catalog is plain data).

A partitioned table has an ANN index per tenant, so the lookups are
memoized per (metric, precision, collection); these pin that the memo
answers what the full scan would, and that callers cannot corrupt it.
"""

from __future__ import annotations

from vectorstore.schema.catalog import AnnIndex, Catalog


def _index(name: str, collection_id: int | None, *, metric: str = "cosine",
           partition: bool = True, valid: bool = True) -> AnnIndex:  # fmt: skip
    return AnnIndex(
        name=name, method="hnsw", metric=metric, precision="vector",  # type: ignore[arg-type]
        collection_id=collection_id, valid=valid, definition="", partition=partition,
    )  # fmt: skip


def _catalog() -> Catalog:
    indexes = [_index(f"p{i}", i) for i in range(1, 1001)]
    indexes += [_index("shared", None, partition=False), _index("l2", 7, metric="l2"),
                _index("broken", 7, valid=False)]  # fmt: skip
    return Catalog(table="docs", indexes=tuple(indexes), pgvector_version=(0, 8, 0))


def test_usable_is_the_tenants_own_index_and_the_shared_ones() -> None:
    catalog = _catalog()
    for _ in range(2):  # the second answer comes from the memo
        assert [ix.name for ix in catalog.usable("cosine", "vector", 7)] == ["p7", "shared"]
        assert [ix.name for ix in catalog.usable("l2", "vector", 7)] == ["l2"]
        assert [ix.name for ix in catalog.usable("cosine", "vector", 5000)] == ["shared"]
    assert catalog.has_index("cosine", "vector", 3)
    assert not catalog.has_index("inner_product", "vector", 3)


def test_a_caller_changing_the_answer_does_not_change_the_memo() -> None:
    catalog = _catalog()
    catalog.usable("cosine", "vector", 7).clear()
    assert [ix.name for ix in catalog.usable("cosine", "vector", 7)] == ["p7", "shared"]


def test_a_collection_with_its_own_index_is_the_whole_of_it() -> None:
    catalog = _catalog()
    assert catalog.cached_share(42) == 1.0
    assert catalog.cached_share(5000) is None
