"""Row-level security as an option: the tenant policy, an app role, the repository's plans.

The tests connect as the superuser that owns the tables (row-level security
does not apply to it) and act as an app role with ``SET LOCAL ROLE`` or a
login of that role: the policy applies to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import URL, Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs
from vectorstore.errors import VectorStoreError
from vectorstore.schema import rls
from vectorstore.schema.partitions import list_partitions

from .conftest import url_for

APP_ROLE = "vs_app_tenant"
DIM = 384


def _vectors(n: int, seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    out: np.ndarray[Any, Any] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


@pytest.fixture
def secured(engine: Engine) -> Engine:
    """RLS on the documents table, an app role with plain privileges, two tenants loaded."""
    with engine.begin() as conn:
        conn.execute(text(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') "
            f"THEN CREATE ROLE {APP_ROLE} LOGIN; END IF; END $$"
        ))  # fmt: skip
        conn.execute(text(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON vectorstore_documents, "
            f"vectorstore_collections TO {APP_ROLE}"
        ))  # fmt: skip
        conn.execute(text(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}"))
        conn.execute(text(
            f"GRANT SELECT, UPDATE (switched_at) ON vectorstore_aliases TO {APP_ROLE}"
        ))  # fmt: skip
    for name, seed, n in (("acme", 1, 300), ("globex", 2, 60)):
        repo = vs.DocumentRepository.standalone(engine, collection=name, embedding_model="m")
        vecs = _vectors(n, seed)
        repo.bulk_add([vs.Record(f"{name} {i}", {"i": i, "even": i % 2 == 0}, str(i), vecs[i])
                       for i in range(n)])  # fmt: skip
    with engine.begin() as conn:
        rls.enable_row_level_security(conn, vs.Document)
        conn.exec_driver_sql("ANALYZE vectorstore_documents")
    return engine


def _ids(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, id FROM vectorstore_collections")).all()
    return {str(n): int(i) for n, i in rows}


@pytest.fixture
def app_session(secured: Engine) -> Iterator[Session]:
    """A Session acting as the app role (SET LOCAL ROLE in its transaction)."""
    with Session(secured) as session:
        session.execute(text(f"SET LOCAL ROLE {APP_ROLE}"))
        yield session
        session.rollback()


def app_url(postgresql: Any, driver: str) -> URL:
    return url_for(postgresql.info.dbname, driver).set(username=APP_ROLE)


# -- raw SQL by the app role ----------------------------------------------------------------
def test_an_app_query_that_forgets_the_tenant_reads_nothing(app_session: Session) -> None:
    count = "SELECT count(*) FROM vectorstore_documents"
    assert app_session.execute(text(count)).scalar_one() == 0


def test_an_app_query_sees_only_the_tenant_it_set(secured: Engine, app_session: Session) -> None:
    ids = _ids(secured)
    app_session.execute(text(f"SET LOCAL vectorstore.tenant = '{ids['acme']}'"))
    assert (
        app_session.execute(text("SELECT count(*) FROM vectorstore_documents")).scalar_one() == 300
    )
    other = app_session.execute(
        text("SELECT count(*) FROM vectorstore_documents WHERE collection_id = :c"),
        {"c": ids["globex"]},
    ).scalar_one()
    assert other == 0
    # Nor can it write rows into another tenant (WITH CHECK), or change theirs.
    updated = app_session.execute(
        text("UPDATE vectorstore_documents SET text = 'x' WHERE collection_id = :c"),
        {"c": ids["globex"]},
    )
    assert updated.rowcount == 0  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="row-level security"):
        with app_session.begin_nested():
            app_session.execute(
                text("INSERT INTO vectorstore_documents (collection_id, text, content_hash, "
                     "embedding) VALUES (:c, 'x', '\\x00', :e)"),
                {"c": ids["globex"], "e": str(_vectors(1, 3)[0].tolist())},
            )  # fmt: skip
    with secured.connect() as owner:  # nothing of globex's changed
        assert owner.execute(
            text("SELECT count(*) FROM vectorstore_documents WHERE collection_id = :c "
                 "AND text = 'x'"), {"c": ids["globex"]},
        ).scalar_one() == 0  # fmt: skip


# -- the repository as the app role ---------------------------------------------------------
@pytest.mark.parametrize("strategy", ["index", "iterative", "exact", "auto"])
def test_the_repository_reads_its_tenant_under_the_policy(
    app_session: Session, strategy: str
) -> None:
    repo = vs.DocumentRepository(app_session, collection="globex", embedding_model="m")
    assert repo.count() == 60
    query = _vectors(60, 2)[5]
    hits = repo.nearest(query, k=10, strategy=strategy)  # type: ignore[arg-type]
    assert len(hits) == 10
    assert hits[0].document.text == "globex 5"
    filtered = repo.nearest(query, k=5, filter={"even": False}, strategy=strategy)  # type: ignore[arg-type]
    assert len(filtered) == 5
    assert filtered[0].document.text == "globex 5"
    assert repo.get_by_external_id("7").text == "globex 7"


def test_the_repository_writes_its_tenant_under_the_policy(app_session: Session) -> None:
    repo = vs.DocumentRepository(app_session, collection="acme", embedding_model="m")
    vecs = _vectors(3, 9)
    repo.add("one more", embedding=vecs[0], external_id="new")
    pair = [vs.Record("two", None, "n2", vecs[1]), vs.Record("3", None, "1", vecs[2])]
    done = repo.bulk_add(pair, on_conflict="skip")
    assert (done.inserted, done.skipped) == (1, 1)
    assert repo.count() == 302
    # A new tenant created by the app role: its first write passes the policy too.
    fresh = vs.DocumentRepository(app_session, collection="initech", embedding_model="m")
    fresh.add("first", embedding=vecs[0])
    assert fresh.count() == 1
    assert fresh.nearest(vecs[0], k=1)[0].document.text == "first"


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_a_standalone_repository_logged_in_as_the_app_role(
    secured: Engine, postgresql: Any, driver: str
) -> None:
    with vs.DocumentRepository.standalone(
        app_url(postgresql, driver), collection="acme", embedding_model="m"
    ) as repo:
        hits = repo.nearest(_vectors(300, 1)[3], k=10)
        assert len(hits) == 10
        assert hits[0].document.text == "acme 3"
        repo.add("standalone", embedding=_vectors(1, 4)[0])
        assert repo.count() == 301
        engine = vs.make_engine(app_url(postgresql, driver))
        try:  # the same login, its own raw query, no tenant set: nothing
            with engine.connect() as conn:
                found = conn.exec_driver_sql("SELECT count(*) FROM vectorstore_documents")
                assert found.scalar_one() == 0
        finally:
            engine.dispose()


def test_the_policy_keeps_the_repositorys_plans(secured: Engine, app_session: Session) -> None:
    """The same nearest calls as the owner (no policy) and as the app role: same indexes."""
    query = _vectors(300, 1)[8]

    def plans(session: Session) -> list[tuple[bool, list[str]]]:
        repo = vs.DocumentRepository(session, collection="acme", embedding_model="m")
        found = []
        for options in ({"strategy": "index"}, {"strategy": "iterative", "filter": {"even": True}}):
            report = repo.explain(query, k=10, **options)  # type: ignore[arg-type]
            assert report.rows_returned == 10
            found.append((report.used_ann_index, sorted(report.index_names)))
        return found

    with Session(secured) as owner:
        for name in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            owner.execute(text(f"SET LOCAL {name} = off"))
            app_session.execute(text(f"SET LOCAL {name} = off"))
        as_owner = plans(owner)
        owner.rollback()
    as_app = plans(app_session)
    hnsw = "ix_vectorstore_documents_embedding_hnsw"
    # the iterative scan over-fetches 4 x k ids from the graph, then joins the rows by key
    joined = sorted([hnsw, "pk_vectorstore_documents"])
    assert as_owner == as_app == [(True, [hnsw]), (True, joined)]


def test_disabling_row_level_security_restores_the_raw_path(secured: Engine) -> None:
    with secured.begin() as conn:
        rls.disable_row_level_security(conn, vs.Document)
        state = conn.execute(
            text(
                "SELECT relrowsecurity FROM pg_class WHERE oid = 'vectorstore_documents'::regclass"
            )
        ).scalar_one()
    assert state is False
    repo = vs.DocumentRepository.standalone(secured, collection="acme")
    assert repo._target().sessions.tenant is None


def test_a_tenant_must_be_a_collection_id() -> None:
    with pytest.raises(vs.ValidationError):
        rls.tenant_sql("1; DROP TABLE x")  # type: ignore[arg-type]
    assert rls.tenant_sql(7) == "SELECT set_config('vectorstore.tenant', '7', true)"


# -- with partitions ------------------------------------------------------------------------
def test_partition_pruning_under_the_policy_and_no_direct_partition_access(
    engine: Engine,
) -> None:
    from tests._layouts import PartitionedDocument, make_partitioned, partitioned_layout

    if not partitioned_layout():
        with engine.begin() as conn:
            make_partitioned(conn)
    for name, seed in (("acme", 1), ("globex", 2)):
        repo = vs.DocumentRepository.standalone(engine, collection=name, embedding_model="m")
        vecs = _vectors(50, seed)
        repo.bulk_add([vs.Record(f"{name} {i}", None, str(i), vecs[i]) for i in range(50)])
    with engine.begin() as conn:
        conn.execute(text(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') "
            f"THEN CREATE ROLE {APP_ROLE} LOGIN; END IF; END $$"
        ))  # fmt: skip
        conn.execute(text(f"GRANT SELECT, INSERT ON vectorstore_documents, "
                          f"vectorstore_collections TO {APP_ROLE}"))  # fmt: skip
        conn.execute(text(
            f"GRANT SELECT, UPDATE (switched_at) ON vectorstore_aliases TO {APP_ROLE}"
        ))  # fmt: skip
        rls.enable_row_level_security(conn, PartitionedDocument)
    ids = _ids(engine)
    with Session(engine) as session:
        parts = {p.collection_id: p.name for p in list_partitions(session, vs.Document.__table__)}
        session.execute(text(f"SET LOCAL ROLE {APP_ROLE}"))
        session.execute(text(f"SET LOCAL vectorstore.tenant = '{ids['globex']}'"))
        plan = session.execute(
            text("EXPLAIN (FORMAT JSON) SELECT id FROM vectorstore_documents "
                 "ORDER BY embedding <=> CAST(:q AS vector) LIMIT 5"),
            {"q": str(_vectors(1, 1)[0].tolist())},
        ).scalar_one()  # fmt: skip
        text_plan = json.dumps(plan)
        # The policy's tenant prunes at executor start: only globex's partition remains.
        assert parts[ids["globex"]] in text_plan
        assert "Subplans Removed" in text_plan
        with pytest.raises(Exception, match="permission denied"):
            with session.begin_nested():
                session.execute(text(f'SELECT count(*) FROM "{parts[ids["acme"]]}"'))
        repo = vs.DocumentRepository(session, collection="acme")
        assert repo.count() == 50
        assert len(repo.nearest(_vectors(1, 1)[0], k=5)) == 5
        session.rollback()


def test_enable_refuses_what_is_not_a_table(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(VectorStoreError):
        rls.enable_row_level_security(conn, object())
