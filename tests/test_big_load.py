"""Big-load mode: every secondary index and the foreign key out of the COPY, rebuilt after.

What is dropped (all the table's secondary indexes but the unique
constraint's, plus the foreign key), when (always, never, or by the size of
the load against the whole table and the collection), that a failed load
restores everything, that other collections' partial indexes are left
alone, that a missing index is repaired by the next big load, and that the
result says what was done.  Both drivers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import URL, Engine, MetaData, text
from sqlalchemy.orm import DeclarativeBase, Session

import vectorstore as vs
from vectorstore.models import NAMING_CONVENTION
from vectorstore.schema.maintenance import IndexBuildProgress

Repo = vs.DocumentRepository[vs.Document]
TABLE = "vectorstore_documents"
DROPPED = {
    "ix_vectorstore_documents_collection_id_content_hash",
    "ix_vectorstore_documents_embedding_hnsw",
    "ix_vectorstore_documents_metadata",
    "ix_vectorstore_documents_text_search",
}
KEPT = {"pk_vectorstore_documents", "uq_vectorstore_documents_collection_id_external_id"}
FK = "fk_vectorstore_documents_collection_id_vectorstore_collections"
# A small bar so that the tests' loads count as big (the default is 10,000 rows).
SMALL_BAR = {"min_rows": 100, "parallel_workers": 0}


def vectors(n: int, seed: int = 3) -> np.ndarray:  # type: ignore[type-arg]
    return np.random.default_rng(seed).standard_normal((n, vs.DEFAULT_DIMENSION)).astype(np.float32)


def oids(engine: Engine) -> dict[str, int]:
    """Index name -> oid: a rebuilt index has a new oid, an untouched one keeps it."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.relname, c.oid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                f"WHERE i.indrelid = '{TABLE}'::regclass AND i.indisvalid"
            )
        ).all()
    return {str(name): int(oid) for name, oid in rows}


def foreign_keys(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(
                text(
                    f"SELECT conname FROM pg_constraint WHERE conrelid = '{TABLE}'::regclass "
                    "AND contype = 'f' AND convalidated"
                )
            ).scalars()
        )


def load(repo: Repo, n: int, start: int = 0, **kwargs: Any) -> vs.BulkResult:
    return repo.bulk_add(
        [f"document {i} about topic {i % 7}" for i in range(start, start + n)],
        embeddings=vectors(n, seed=start),
        metadata=[{"i": i, "tag": f"t{i % 3}"} for i in range(start, start + n)],
        external_ids=[f"e{i}" for i in range(start, start + n)],
        **kwargs,
    )


@pytest.fixture
def driver_engine(any_driver_url: URL) -> Iterator[Engine]:
    engine = vs.make_engine(any_driver_url)
    yield engine
    engine.dispose()


def standalone(engine: Engine, name: str) -> Repo:
    return vs.DocumentRepository.standalone(engine, collection=name, embedding_model="external")


def test_rebuild_index_drops_and_rebuilds_every_secondary_index(driver_engine: Engine) -> None:
    before = oids(driver_engine)
    assert set(before) == DROPPED | KEPT
    seen: list[IndexBuildProgress] = []
    result = load(standalone(driver_engine, "big"), 300, rebuild_index=True,
                  index_options={"parallel_workers": 1, "progress": seen.append})  # fmt: skip
    assert result.inserted == 300
    assert result.big_load
    assert result.big_load_reason == "rebuild_index=True"
    assert set(result.rebuilt) == DROPPED | {FK}
    after = oids(driver_engine)
    assert set(after) == set(before)
    assert {n for n in DROPPED if after[n] != before[n]} == DROPPED  # rebuilt
    assert {n for n in KEPT if after[n] == before[n]} == KEPT  # untouched
    assert foreign_keys(driver_engine) == {FK}
    done = [p for p in seen if p.phase == "done"]
    assert {p.index for p in done} == DROPPED
    assert sorted(p.number for p in done) == [1, 2, 3, 4]
    assert {p.total for p in done} == {4}
    assert result.index_s > 0
    assert result.write_s > 0
    with driver_engine.connect() as conn:
        reltuples = conn.execute(
            text("SELECT reltuples FROM pg_class WHERE relname = :t"), {"t": TABLE}
        ).scalar_one()
    assert reltuples == 300  # ANALYZE ran


def test_a_small_load_keeps_every_index(driver_engine: Engine) -> None:
    before = oids(driver_engine)
    result = load(standalone(driver_engine, "small"), 50)  # default: automatic
    assert not result.big_load
    assert result.rebuilt == ()
    assert result.big_load_reason == "50 rows: below the 10,000-row bar"
    assert oids(driver_engine) == before


def test_rebuild_index_false_never_drops(driver_engine: Engine) -> None:
    before = oids(driver_engine)
    result = load(standalone(driver_engine, "never"), 300, rebuild_index=False,
                  index_options=SMALL_BAR)  # fmt: skip
    assert not result.big_load
    assert oids(driver_engine) == before


def test_automatic_choice_weighs_the_load_against_the_whole_table(driver_engine: Engine) -> None:
    """Table-wide indexes serve every collection: only a load as large as the table drops them."""
    other = standalone(driver_engine, "other")
    load(other, 300, rebuild_index=False)
    with driver_engine.begin() as conn:
        conn.execute(text(f"ANALYZE {TABLE}"))
    mine = standalone(driver_engine, "mine")
    before = oids(driver_engine)
    small = load(mine, 200, start=1000, index_options=SMALL_BAR)
    assert not small.big_load  # 200 rows against 300 in the table
    assert oids(driver_engine) == before
    with driver_engine.begin() as conn:
        conn.execute(text(f"ANALYZE {TABLE}"))
    big = load(mine, 600, start=2000, index_options=SMALL_BAR)
    assert big.big_load
    assert set(big.rebuilt) == DROPPED | {FK}
    assert "600 rows" in big.big_load_reason
    assert "about 500 in the table" in big.big_load_reason
    # The other collection is still whole and searchable.
    assert other.count() == 300
    assert len(other.nearest(vectors(1, seed=0)[0], k=3)) == 3
    assert len(other.hybrid("topic", k=3, vector=vectors(1, seed=0)[0])) == 3


def test_partial_indexes_follow_their_own_collection(driver_engine: Engine) -> None:
    """Another collection's partial index is never touched; the collection's own is
    rebuilt when the load is large against the collection, though small against the table."""
    other = standalone(driver_engine, "tenant-a")
    mine = standalone(driver_engine, "tenant-b")
    load(other, 400, rebuild_index=False)
    load(mine, 100, start=1000, rebuild_index=False)
    with driver_engine.begin() as conn:
        conn.execute(text(f"ANALYZE {TABLE}"))
    spec = vs.IndexSpec(per_collection=True)
    theirs = other.create_index(spec)
    ours = mine.create_index(spec)
    before = oids(driver_engine)
    result = load(mine, 150, start=2000, index_options=SMALL_BAR)
    assert result.big_load
    assert result.rebuilt == (ours,)
    after = oids(driver_engine)
    assert after[ours] != before[ours]
    assert {n: after[n] for n in after if n != ours} == {n: before[n] for n in before if n != ours}
    assert after[theirs] == before[theirs]
    assert foreign_keys(driver_engine) == {FK}
    forced = load(mine, 10, start=3000, rebuild_index=True)
    assert theirs not in forced.rebuilt
    assert ours in forced.rebuilt
    assert oids(driver_engine)[theirs] == before[theirs]


@pytest.mark.parametrize("host_session", [False, True])
def test_a_failed_big_load_restores_every_index(driver_engine: Engine, host_session: bool) -> None:
    before = oids(driver_engine)
    rows = [{"text": f"t{i}", "external_id": "dup" if i in (5, 250) else f"x{i}",
             "embedding": vectors(1, seed=i)[0]} for i in range(300)]  # fmt: skip
    if host_session:
        with Session(driver_engine) as session:
            repo: Repo = vs.DocumentRepository(session, collection="fails",
                                               embedding_model="external")  # fmt: skip
            with pytest.raises(vs.ConflictError, match="row 250"):
                repo.bulk_add(rows, rebuild_index=True)
            assert oids(driver_engine) != {}  # the savepoint is rolled back, the session lives
            session.rollback()
    else:
        with pytest.raises(vs.ConflictError, match="row 250"):
            standalone(driver_engine, "fails").bulk_add(rows, rebuild_index=True)
    assert oids(driver_engine) == before
    assert foreign_keys(driver_engine) == {FK}
    with driver_engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {TABLE}")).scalar_one() == 0


def test_the_next_big_load_repairs_a_missing_index(driver_engine: Engine) -> None:
    """A GIN/btree index missing (an earlier failed build) is built by the next big load;
    a missing HNSW is left to rebuild_ann_indexes (an app may have replaced it)."""
    with driver_engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_vectorstore_documents_metadata"))
        conn.execute(text("DROP INDEX ix_vectorstore_documents_embedding_hnsw"))
    repo = standalone(driver_engine, "repair")
    small = load(repo, 20)
    assert "ix_vectorstore_documents_metadata" not in oids(driver_engine)  # small path: as is
    assert not small.big_load
    result = load(repo, 200, start=100, index_options=SMALL_BAR)
    assert result.big_load
    assert "ix_vectorstore_documents_metadata" in result.rebuilt
    assert set(oids(driver_engine)) == (DROPPED | KEPT) - {
        "ix_vectorstore_documents_embedding_hnsw"
    }


def test_ingest_switches_to_big_load_once_the_rows_cross_the_bar(driver_engine: Engine) -> None:
    """A generator has no length: the ingest switches between two COPYs and keeps the
    content-hash index it reads to skip known texts."""
    repo = vs.DocumentRepository.standalone(
        driver_engine, collection="stream", embedder=vs.HashingTestEmbedder()
    )
    before = oids(driver_engine)

    def texts() -> Iterator[str]:
        yield from (f"streamed text number {i}" for i in range(260))

    result = repo.ingest(texts(), chunk_rows=50, index_options=SMALL_BAR, progress=False)
    assert result.inserted == 260
    assert result.big_load
    hash_index = "ix_vectorstore_documents_collection_id_content_hash"
    assert hash_index not in result.rebuilt
    assert set(result.rebuilt) == (DROPPED - {hash_index}) | {FK}
    after = oids(driver_engine)
    assert after[hash_index] == before[hash_index]
    assert set(after) == set(before)
    again = repo.ingest([f"streamed text number {i}" for i in range(300)], chunk_rows=50,
                        index_options=SMALL_BAR, progress=False)  # fmt: skip
    assert again.known == 260
    assert again.inserted == 40


def test_ingest_without_skip_known_rebuilds_the_hash_index_too(driver_engine: Engine) -> None:
    repo = vs.DocumentRepository.standalone(
        driver_engine, collection="all", embedder=vs.HashingTestEmbedder()
    )
    result = repo.ingest([f"text {i}" for i in range(150)], skip_known=False,
                         index_options=SMALL_BAR, progress=False)  # fmt: skip
    assert result.big_load
    assert set(result.rebuilt) == DROPPED | {FK}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rebuild_index": "yes"}, "rebuild_index"),
        ({"index_options": {"min_rows": -1}}, "min_rows"),
        ({"index_options": {"ratio": "big"}}, "ratio"),
        ({"index_options": {"progress": 3}}, "progress"),
        ({"index_options": {"bogus": 1}}, "unknown index_options"),
        ({"index_options": ["min_rows"]}, "mapping"),
    ],
)
def test_bad_big_load_arguments_are_refused_before_anything_is_written(
    driver_engine: Engine, kwargs: dict[str, Any], message: str
) -> None:
    before = oids(driver_engine)
    with pytest.raises(vs.ValidationError, match=message):
        load(standalone(driver_engine, "bad"), 5, **kwargs)
    assert oids(driver_engine) == before
    with driver_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM vectorstore_collections")).scalar_one() == 0


class _LayoutBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ExpressionDoc(vs.DocumentMixin, _LayoutBase):
    __tablename__ = "expression_docs"
    full_text_search = "expression"


def test_a_big_load_rebuilds_the_expression_layouts_full_text_index(
    driver_engine: Engine,
) -> None:
    """The "expression" layout's GIN index is dropped and rebuilt like the others."""
    _LayoutBase.metadata.create_all(driver_engine)
    name = "ix_expression_docs_text_search"

    def index_oid() -> int:
        with driver_engine.connect() as conn:
            return int(conn.execute(text(f"SELECT '{name}'::regclass::oid")).scalar_one())

    before = index_oid()
    repo = vs.DocumentRepository.standalone(
        driver_engine, collection="expr", embedding_model="external", model=ExpressionDoc
    )
    result = repo.bulk_add(
        [f"document {i} about topic {i % 7}" for i in range(300)],
        embeddings=vectors(300),
        rebuild_index=True,
    )
    assert result.big_load
    assert name in result.rebuilt
    assert index_oid() != before  # rebuilt, and there
    hits = repo.hybrid("topic", k=3, vector=vectors(1)[0], vector_weight=0.0)
    assert all(h.extra["text_rank"] is not None for h in hits)
