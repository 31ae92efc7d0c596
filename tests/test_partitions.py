"""Tenants as partitions: a document table LIST-partitioned by collection (real PostgreSQL).

The model is an app's own ``partition_by_collection = True`` table; the
repository is used exactly as on the shared table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, MetaData, select, text
from sqlalchemy.orm import DeclarativeBase, Session

import vectorstore as vs
from vectorstore.errors import (
    CollectionNotFoundError,
    ConfigurationError,
    ConflictError,
    ValidationError,
    VectorStoreError,
)
from vectorstore.models import NAMING_CONVENTION
from vectorstore.schema import partitions
from vectorstore.schema import tenants as tenant_ops

DIM = 8


class AppBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TenantDoc(vs.DocumentMixin, AppBase):
    __tablename__ = "tenant_docs"
    embedding_dimension = DIM
    partition_by_collection = True


@pytest.fixture
def tenants(engine: Engine) -> Engine:
    AppBase.metadata.create_all(engine)
    return engine


def _vectors(n: int, seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    out: np.ndarray[Any, Any] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def _load(repo: vs.DocumentRepository[Any], n: int, seed: int, **kw: Any) -> vs.BulkResult:
    vecs = _vectors(n, seed)
    records = [
        vs.Record(f"doc {seed}-{i}", {"i": i, "even": i % 2 == 0}, f"e{i}", vecs[i])
        for i in range(n)
    ]
    return repo.bulk_add(records, **kw)


def _partitions(engine: Engine) -> dict[int, partitions.Partition]:
    with Session(engine) as s:
        return {p.collection_id: p for p in partitions.list_partitions(s, TenantDoc.__table__)}


def _index_oids(engine: Engine, table: str) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT c.relname, c.oid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                 "WHERE i.indrelid = to_regclass(:t)"),
            {"t": table},
        ).all()  # fmt: skip
    return {str(n): int(o) for n, o in rows}


def standalone(engine: Engine, name: str) -> vs.DocumentRepository[TenantDoc]:
    return vs.DocumentRepository.standalone(engine, collection=name, model=TenantDoc,
                                            embedding_model="test")  # fmt: skip


# -- the layout -----------------------------------------------------------------------------
def test_the_model_declares_a_list_partitioned_table(tenants: Engine) -> None:
    with tenants.connect() as conn:
        strategy = conn.execute(
            text("SELECT partstrat FROM pg_partitioned_table "
                 "WHERE partrelid = 'tenant_docs'::regclass")
        ).scalar_one()  # fmt: skip
        pk = conn.execute(
            text("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                 "WHERE conrelid = 'tenant_docs'::regclass AND contype = 'p'")
        ).scalar_one()  # fmt: skip
        parent_indexes = _index_oids(tenants, "tenant_docs")
    assert strategy == "l"
    assert pk == "PRIMARY KEY (collection_id, id)"
    # Only the constraints' indexes on the parent: the rest lives on each partition.
    assert sorted(parent_indexes) == ["pk_tenant_docs", "uq_tenant_docs_collection_id_external_id"]
    assert TenantDoc.__mapper__.primary_key == (TenantDoc.__table__.c.id,)


def test_the_default_model_is_unchanged() -> None:
    table = vs.Document.__table__
    assert table.dialect_options["postgresql"]["partition_by"] is None
    assert [c.name for c in table.columns] == [
        "id", "external_id", "text", "content_hash", "metadata", "created_at",
        "collection_id", "embedding", "text_search",
    ]  # fmt: skip
    assert [c.name for c in table.primary_key.columns] == ["id"]
    assert sorted(str(ix.name) for ix in table.indexes) == [
        "ix_vectorstore_documents_collection_id_content_hash",
        "ix_vectorstore_documents_embedding_hnsw",
        "ix_vectorstore_documents_metadata",
        "ix_vectorstore_documents_text_search",
    ]


def test_a_bad_partition_option_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="partition_by_collection"):

        class Bad(vs.DocumentMixin, AppBase):
            __tablename__ = "bad_docs"
            partition_by_collection = "yes"  # type: ignore[assignment]


# -- writes ---------------------------------------------------------------------------------
def test_the_first_write_creates_the_tenants_partition_with_its_indexes(
    tenants: Engine, any_driver_url: Any
) -> None:
    engine = vs.make_engine(any_driver_url)
    try:
        with Session(engine) as session:
            repo = vs.DocumentRepository(session, collection="tenant-42", model=TenantDoc,
                                         embedding_model="test")  # fmt: skip
            doc = repo.add("hello", embedding=_vectors(1, 1)[0], external_id="x")
            session.commit()
            assert repo.get(doc.id).text == "hello"
        found = _partitions(engine)
        cid = repo.collection.id
        assert found[cid].attached
        assert found[cid].name == f"vsp_tenant_docs_{cid}"
        own = _index_oids(engine, found[cid].name)
        assert {f"vsp_tenant_docs_{cid}_{s}" for s in ("hnsw", "meta", "fts", "hash")} <= set(own)
    finally:
        engine.dispose()


def test_a_failed_first_load_leaves_neither_collection_nor_partition(tenants: Engine) -> None:
    repo = standalone(tenants, "new-tenant")
    vecs = _vectors(3, 2)
    bad = [vs.Record("a", None, "1", vecs[0]), vs.Record("b", None, "1", vecs[1])]
    with pytest.raises(ConflictError):
        repo.bulk_add(bad)
    assert _partitions(tenants) == {}
    assert vs.list_collections(tenants, model=TenantDoc) == []


def test_bulk_add_is_all_or_nothing_across_partitions(tenants: Engine, session: Session) -> None:
    a = vs.DocumentRepository(session, collection="a", model=TenantDoc, embedding_model="t")
    b = vs.DocumentRepository(session, collection="b", model=TenantDoc, embedding_model="t")
    _load(a, 5, 1)
    _load(b, 5, 2)
    vecs = _vectors(2, 3)
    with pytest.raises(ConflictError):  # the same external id twice in one load
        b.bulk_add([vs.Record("x", None, "new", vecs[0]), vs.Record("y", None, "new", vecs[1])])
    assert (a.count(), b.count()) == (5, 5)
    # The same external id in two tenants is no conflict (unique per collection).
    assert b.bulk_add([vs.Record("z", None, "e0", vecs[0])], on_conflict="skip").skipped == 1
    assert a.get_by_external_id("e0").text == "doc 1-0"
    assert b.get_by_external_id("e0").text == "doc 2-0"


def test_on_conflict_update_through_the_copy_path(tenants: Engine) -> None:
    repo = standalone(tenants, "t")
    _load(repo, 20, 1)
    vecs = _vectors(2, 9)
    done = repo.bulk_add(
        [vs.Record("new text", {"v": 2}, "e3", vecs[0]), vs.Record("fresh", None, "zz", vecs[1])],
        on_conflict="update",
    )
    assert (done.inserted, done.updated) == (1, 1)
    assert repo.get_by_external_id("e3").text == "new text"
    assert repo.count() == 21


def test_ids_are_unique_across_tenants_and_get_finds_only_its_own(tenants: Engine) -> None:
    a, b = standalone(tenants, "a"), standalone(tenants, "b")
    _load(a, 10, 1)
    _load(b, 10, 2)
    ids_a = {d.id for d in a.get_many(range(1, 100))}
    ids_b = {d.id for d in b.get_many(range(1, 100))}
    assert len(ids_a) == len(ids_b) == 10
    assert not ids_a & ids_b
    some = next(iter(ids_b))
    with pytest.raises(vs.DocumentNotFoundError):
        a.get(some)
    assert b.get(some).id == some
    assert b.delete(ids=[some]) == 1
    assert b.count() == 9
    assert a.count() == 10


# -- reads ----------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["index", "iterative", "exact", "auto"])
def test_nearest_through_the_partitioned_table_returns_k_of_the_tenant(
    tenants: Engine, strategy: str
) -> None:
    big, small = standalone(tenants, "big"), standalone(tenants, "small")
    _load(big, 400, 1)
    _load(small, 30, 2)
    query = _vectors(1, 7)[0]
    truth = [h.document.id for h in small.nearest(query, k=10, strategy="exact")]
    got = small.nearest(query, k=10, strategy=strategy)  # type: ignore[arg-type]
    assert len(got) == 10
    assert all(h.document.collection_id == small.collection.id for h in got)
    assert [h.document.id for h in got] == truth  # 30 rows: the HNSW graph is exact
    filtered = small.nearest(query, k=5, filter={"even": True}, strategy=strategy)  # type: ignore[arg-type]
    assert len(filtered) == 5
    assert all(h.document.metadata_["even"] for h in filtered)


def test_explain_shows_pruning_to_the_tenants_partition_and_its_hnsw(tenants: Engine) -> None:
    big, small = standalone(tenants, "big"), standalone(tenants, "small")
    _load(big, 300, 1)
    _load(small, 300, 2)
    with tenants.begin() as conn:
        conn.exec_driver_sql("ANALYZE tenant_docs")
    own = f"vsp_tenant_docs_{small.collection.id}"
    other = f"vsp_tenant_docs_{big.collection.id}"
    # A filtered iterative scan (nearest pins it to the index with enable_sort=off).
    report = small.explain(_vectors(1, 5)[0], k=10, filter={"even": True}, strategy="iterative")
    plan = json.dumps(report.plan)
    assert report.used_ann_index, plan
    assert f"{own}_hnsw" in report.index_names, plan
    assert other not in plan, plan  # pruned at plan time: the other partition is not in it
    assert report.rows_returned == 10
    with Session(tenants) as session:  # 300 rows: the planner would rather sort them
        for name in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            session.execute(text(f"SET LOCAL {name} = off"))
        bound = vs.DocumentRepository(session, collection="small", model=TenantDoc)
        report = bound.explain(_vectors(1, 5)[0], k=10, strategy="index")
        plan = json.dumps(report.plan)
        assert report.used_ann_index, plan
        assert report.index_names == [f"{own}_hnsw"], plan
        assert other not in plan, plan


def test_the_catalog_lists_each_partitions_hnsw_as_its_collections_own(tenants: Engine) -> None:
    a, b = standalone(tenants, "a"), standalone(tenants, "b")
    _load(a, 3, 1)
    _load(b, 3, 2)
    found = {ix.name: ix.collection_id for ix in a.list_indexes()}
    assert found == {
        f"vsp_tenant_docs_{a.collection.id}_hnsw": a.collection.id,
        f"vsp_tenant_docs_{b.collection.id}_hnsw": b.collection.id,
    }


# -- big loads ------------------------------------------------------------------------------
def test_a_big_load_rebuilds_only_that_tenants_indexes(tenants: Engine) -> None:
    a, b = standalone(tenants, "a"), standalone(tenants, "b")
    _load(a, 20, 1)
    _load(b, 20, 2)
    part_a = _partitions(tenants)[a.collection.id].name
    part_b = _partitions(tenants)[b.collection.id].name
    before_a, before_b = _index_oids(tenants, part_a), _index_oids(tenants, part_b)
    done = _load(a, 200, 3, rebuild_index=True, on_conflict="skip")
    after_a, after_b = _index_oids(tenants, part_a), _index_oids(tenants, part_b)
    assert after_b == before_b  # the other tenant's indexes were not touched
    assert set(after_a) == set(before_a)  # every index of the tenant is back
    rebuilt = {n for n in after_a if after_a[n] != before_a[n]}
    assert {f"{part_a}_hnsw", f"{part_a}_meta", f"{part_a}_fts", f"{part_a}_hash"} <= rebuilt
    assert done.big_load
    assert set(done.rebuilt) >= {f"{part_a}_hnsw", f"{part_a}_meta"}
    assert a.count() == 200
    assert b.count() == 20
    hits = a.nearest(_vectors(1, 3)[0], k=5)
    assert len(hits) == 5
    assert hits.strategy == "index"


# -- tenants created, detached, attached and dropped ----------------------------------------
def test_create_detach_attach_drop_with_documents_in_flight(tenants: Engine) -> None:
    steady = standalone(tenants, "steady")
    _load(steady, 10, 1)
    info = tenant_ops.create_tenant(tenants, "t1", model=TenantDoc, embedding_model="test")
    t1 = standalone(tenants, "t1")
    _load(t1, 10, 2)
    with Session(tenants) as writer:  # a write in flight into another tenant
        in_flight = vs.DocumentRepository(writer, collection="steady", model=TenantDoc)
        in_flight.add("uncommitted", embedding=_vectors(1, 4)[0])
        # Creating a tenant attaches with SHARE UPDATE EXCLUSIVE: no wait on the writer.
        with Session(tenants) as admin, admin.begin():
            admin.execute(text("SET LOCAL lock_timeout = '5s'"))
            tenant_ops.create_tenant(admin, "t2", model=TenantDoc, embedding_model="test")
        # Detaching takes ACCESS EXCLUSIVE: with a writer in flight it waits; under a
        # lock timeout it fails and changes nothing.
        with Session(tenants) as admin, admin.begin():
            admin.execute(text("SET LOCAL lock_timeout = '200ms'"))
            with pytest.raises(VectorStoreError):
                tenant_ops.detach_tenant(admin, "t1", model=TenantDoc)
        writer.commit()
    assert _partitions(tenants)[info.id].attached
    assert t1.count() == 10
    assert steady.count() == 11
    name = tenant_ops.detach_tenant(tenants, "t1", model=TenantDoc)
    assert not _partitions(tenants)[info.id].attached
    with tenants.connect() as conn:  # the rows are kept in the detached table
        assert conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one() == 10
    assert t1.count() == 0
    assert len(t1.nearest(_vectors(1, 1)[0], k=3)) == 0
    with pytest.raises(VectorStoreError):  # a detached tenant refuses writes
        t1.add("nope", embedding=_vectors(1, 1)[0])
    with pytest.raises(ValidationError, match="no attached partition"):
        tenant_ops.detach_tenant(tenants, "t1", model=TenantDoc)
    tenant_ops.attach_tenant(tenants, "t1", model=TenantDoc)
    assert t1.count() == 10
    assert len(t1.nearest(_vectors(1, 1)[0], k=3)) == 3
    assert tenant_ops.drop_tenant(tenants, "t1", model=TenantDoc) == 10
    assert info.id not in _partitions(tenants)
    with pytest.raises(CollectionNotFoundError):
        tenant_ops.detach_tenant(tenants, "t1", model=TenantDoc)
    assert steady.count() == 11


def test_dropping_a_detached_tenant_drops_its_table(tenants: Engine) -> None:
    t = standalone(tenants, "t")
    _load(t, 7, 1)
    name = tenant_ops.detach_tenant(tenants, "t", model=TenantDoc)
    assert vs.drop_collection(tenants, "t", model=TenantDoc) == 0  # the parent holds none
    with tenants.connect() as conn:
        assert conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar_one() is None


def test_tenant_operations_refuse_a_table_that_is_not_partitioned(engine: Engine) -> None:
    from tests._layouts import partitioned_layout

    if partitioned_layout():
        pytest.skip("the default table is partitioned in this run")
    with pytest.raises(ConfigurationError, match="not partitioned"):
        tenant_ops.create_tenant(engine, "x", model=vs.Document)
    assert vs.list_collections(engine) == []


def test_a_tenant_name_that_exists_is_a_conflict_and_nothing_changes(tenants: Engine) -> None:
    tenant_ops.create_tenant(tenants, "t", model=TenantDoc)
    with pytest.raises(ConflictError):
        tenant_ops.create_tenant(tenants, "t", model=TenantDoc)
    assert len(_partitions(tenants)) == 1


# -- alembic operations ---------------------------------------------------------------------
@pytest.fixture
def op(engine: Engine) -> Iterator[Any]:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    with engine.begin() as conn:
        yield Operations(MigrationContext.configure(conn))


def _upgrade(op: Any) -> None:
    """What an app's revision for a partitioned model says (as autogenerate writes it)."""
    import sqlalchemy as sa
    from pgvector.sqlalchemy import Vector
    from sqlalchemy.dialects import postgresql

    import vectorstore.alembic as vsa

    op.create_table(
        "tenant_docs",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("metadata", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("embedding", Vector(DIM), nullable=False),
        sa.Column("text_search", postgresql.TSVECTOR(),
                  sa.Computed("to_tsvector('english'::regconfig, text)", persisted=True)),
        sa.ForeignKeyConstraint(["collection_id"], ["vectorstore_collections.id"],
                                name="fk_tenant_docs_collection_id_vectorstore_collections",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("collection_id", "id", name="pk_tenant_docs"),
        sa.UniqueConstraint("collection_id", "external_id",
                            name="uq_tenant_docs_collection_id_external_id"),
        postgresql_partition_by="LIST (collection_id)",
    )  # fmt: skip
    vsa.create_tenant(op, "acme", model=TenantDoc, embedding_model="test")
    vsa.create_tenant(op, "globex", model=TenantDoc, embedding_model="test")
    vsa.enable_row_level_security(op, TenantDoc)


def _downgrade(op: Any) -> None:
    import vectorstore.alembic as vsa

    vsa.disable_row_level_security(op, TenantDoc)
    vsa.detach_tenant(op, "globex", model=TenantDoc)
    vsa.drop_tenant(op, "globex", model=TenantDoc)
    vsa.drop_tenant(op, "acme", model=TenantDoc)
    op.drop_table("tenant_docs")


def test_alembic_operations_upgrade_and_downgrade_the_partitioned_layout(engine: Engine) -> None:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    with engine.begin() as conn:
        _upgrade(Operations(MigrationContext.configure(conn)))
    with engine.connect() as conn:
        state = conn.execute(
            text("SELECT relrowsecurity, relkind FROM pg_class WHERE relname = 'tenant_docs'")
        ).one()
    assert tuple(state) == (True, "p")
    assert len(_partitions(engine)) == 2
    repo = standalone(engine, "acme")
    _load(repo, 5, 1)
    assert repo.count() == 5
    assert len(repo.nearest(_vectors(1, 1)[0], k=3)) == 3
    with engine.begin() as conn:
        _downgrade(Operations(MigrationContext.configure(conn)))
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT relname FROM pg_class WHERE relname LIKE 'vsp_%' OR relname = "
                 "'tenant_docs'")
        ).all()  # fmt: skip
    assert left == []
    assert vs.list_collections(engine) == []


def test_a_failed_revision_leaves_no_tenant(engine: Engine) -> None:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    import vectorstore.alembic as vsa

    def revision(conn: Any) -> None:
        op = Operations(MigrationContext.configure(conn))
        vsa.create_tenant(op, "acme", model=TenantDoc)
        vsa.create_tenant(op, "acme", model=TenantDoc)

    AppBase.metadata.create_all(engine)
    with engine.connect() as conn:
        with pytest.raises(ConflictError):
            revision(conn)
        conn.rollback()
    assert _partitions(engine) == {}
    assert vs.list_collections(engine) == []


def test_alembic_autogenerate_ignores_the_partitions(tenants: Engine) -> None:
    from vectorstore.alembic import include_object

    tenant_ops.create_tenant(tenants, "t", model=TenantDoc)
    name = next(iter(_partitions(tenants).values())).name
    assert include_object(None, name, "table", True, None) is False
    assert include_object(None, "tenant_docs", "table", False, TenantDoc.__table__) is True


# -- the CLI --------------------------------------------------------------------------------
def test_the_tenant_commands(
    tenants: Engine, db_url: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from vectorstore.cli import main

    url = db_url.render_as_string(hide_password=False)
    model = "tests.test_partitions:TenantDoc"
    assert main(["--database-url", url, "tenant", "create", "cli-t", "--model", model]) == 0
    assert "created" in capsys.readouterr().out
    assert main(["--database-url", url, "tenant", "list", "--json", "--model", model]) == 0
    listed = capsys.readouterr().out
    assert '"tenant": "cli-t"' in listed
    assert '"state": "attached"' in listed
    assert main(["--database-url", url, "tenant", "detach", "cli-t", "--model", model]) == 0
    assert "detached" in capsys.readouterr().out
    assert main(["--database-url", url, "tenant", "attach", "cli-t", "--model", model]) == 0
    assert main(["--database-url", url, "tenant", "drop", "cli-t", "--model", model]) == 1
    assert "--yes" in capsys.readouterr().err
    assert main(["--database-url", url, "tenant", "drop", "cli-t", "--yes",
                 "--model", model]) == 0  # fmt: skip
    assert _partitions(tenants) == {}
    with Session(tenants) as s:
        assert s.execute(select(vs.Collection)).all() == []


def test_a_check_constraint_on_the_parent_holds_in_new_tenants(tenants: Engine) -> None:
    with tenants.begin() as conn:
        conn.execute(text("ALTER TABLE tenant_docs ADD CONSTRAINT short_text "
                          "CHECK (length(text) < 20)"))  # fmt: skip
    repo = standalone(tenants, "fresh")  # its partition is created after the constraint
    vecs = _vectors(2, 1)
    with pytest.raises(vs.ValidationError, match="PostgreSQL rejected"):
        repo.bulk_add([vs.Record("ok", None, "a", vecs[0]),
                       vs.Record("x" * 30, None, "b", vecs[1])])  # fmt: skip
    repo.add("short", embedding=vecs[0])
    assert repo.count() == 1


def test_a_per_collection_index_is_built_on_the_tenants_partition_only(tenants: Engine) -> None:
    """A tenant's partition holds only its rows: the index goes there, whole, not on the parent."""
    a, b = standalone(tenants, "a"), standalone(tenants, "b")
    _load(a, 20, 1)
    _load(b, 5, 2)
    before_b = _index_oids(tenants, f"vsp_tenant_docs_{b.collection.id}")
    name = a.create_index(vs.IndexSpec(m=8, ef_construction=32, per_collection=True))
    assert name in _index_oids(tenants, f"vsp_tenant_docs_{a.collection.id}")
    assert _index_oids(tenants, f"vsp_tenant_docs_{b.collection.id}") == before_b
    assert name not in _index_oids(tenants, "tenant_docs")
    with tenants.connect() as conn:
        definition = conn.execute(
            text("SELECT pg_get_indexdef(to_regclass(:n))"), {"n": name}
        ).scalar_one()
    assert "WHERE" not in definition  # the partition is the tenant: no predicate to recheck
    assert name in {ix.name for ix in a.list_indexes()}
    assert a.drop_index(name) is True
    assert name not in _index_oids(tenants, f"vsp_tenant_docs_{a.collection.id}")
    vs.create_collection(tenants, "fresh", embedding_model="test", model=TenantDoc)
    fresh = standalone(tenants, "fresh")  # no write yet, so no partition
    with pytest.raises(vs.ValidationError, match="no partition"):
        fresh.create_index(vs.IndexSpec(per_collection=True))
    assert fresh.collection.id not in _partitions(tenants)
