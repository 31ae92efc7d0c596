"""A statement timeout set by the caller is honoured by nearest and bulk_add.

To make a statement outlast its timeout deterministically (no sleeps, no big
data), another connection holds an ACCESS EXCLUSIVE lock on the documents
table: the statement blocks on the lock until ``statement_timeout`` cancels it.
The caller gets :class:`vectorstore.QueryTimeoutError` (SQLSTATE 57014) and the
table is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import URL, Connection, Engine, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

import vectorstore as vs

pytestmark = pytest.mark.faults

DIM = vs.DEFAULT_DIMENSION
TIMEOUT_MS = 200


@pytest.fixture
def admin(any_driver_url: URL) -> Iterator[Engine]:
    eng = create_engine(any_driver_url, poolclass=NullPool)
    yield eng
    eng.dispose()


@pytest.fixture
def table_lock(admin: Engine) -> Iterator[Connection]:
    """Hold ACCESS EXCLUSIVE on the documents table until the test ends."""
    conn = admin.connect()
    conn.begin()
    conn.execute(text("LOCK TABLE vectorstore_documents IN ACCESS EXCLUSIVE MODE"))
    yield conn
    conn.rollback()
    conn.close()


def _records(n: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return [{"text": f"doc {i}", "embedding": vectors[i]} for i in range(n)]


def _count(admin: Engine) -> int:
    with admin.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM vectorstore_documents")).scalar_one())


def test_session_statement_timeout_cancels_nearest(any_driver_url: URL, admin: Engine) -> None:
    engine = vs.make_engine(any_driver_url)
    try:
        with Session(engine) as session:
            repo = vs.DocumentRepository(session, collection="t", embedding_model="external")
            repo.bulk_add(_records(5))
            session.commit()
            with admin.connect() as lock:
                lock.begin()
                lock.execute(text("LOCK TABLE vectorstore_documents IN ACCESS EXCLUSIVE MODE"))
                session.execute(text(f"SET LOCAL statement_timeout = {TIMEOUT_MS}"))
                with pytest.raises(vs.QueryTimeoutError) as caught:
                    repo.nearest(np.ones(DIM), k=3)
                assert caught.value.sqlstate == "57014"
                assert "nearest" in str(caught.value)
                session.rollback()
                lock.rollback()
            assert len(repo.nearest(np.ones(DIM), k=3)) == 3  # usable again
    finally:
        engine.dispose()


def test_session_statement_timeout_cancels_bulk_add_and_keeps_the_transaction(
    any_driver_url: URL, admin: Engine
) -> None:
    engine = vs.make_engine(any_driver_url)
    try:
        with Session(engine) as session:
            repo = vs.DocumentRepository(session, collection="t", embedding_model="external")
            _ = repo.collection
            session.commit()
            with admin.connect() as lock:
                lock.begin()
                lock.execute(text("LOCK TABLE vectorstore_documents IN ACCESS EXCLUSIVE MODE"))
                session.execute(text(f"SET LOCAL statement_timeout = {TIMEOUT_MS}"))
                with pytest.raises(vs.QueryTimeoutError):
                    repo.bulk_add(_records(50), chunk_rows=10)
                # The write ran in a SAVEPOINT: the caller's transaction is still usable.
                assert session.execute(text("SELECT 1")).scalar_one() == 1
                lock.rollback()
            session.commit()
        assert _count(admin) == 0
    finally:
        engine.dispose()


@pytest.mark.parametrize("on_conflict", ["error", "update"])
def test_engine_statement_timeout_cancels_standalone_calls(
    any_driver_url: URL, admin: Engine, on_conflict: vs.ConflictPolicy
) -> None:
    engine = vs.make_engine(
        any_driver_url, connect_args={"options": f"-c statement_timeout={TIMEOUT_MS}"}
    )
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection="t", embedding_model="external"
    )
    try:
        repo.bulk_add(_records(3))
        with admin.connect() as lock:
            lock.begin()
            lock.execute(text("LOCK TABLE vectorstore_documents IN ACCESS EXCLUSIVE MODE"))
            with pytest.raises(vs.QueryTimeoutError):
                repo.bulk_add(_records(20), on_conflict=on_conflict)
            with pytest.raises(vs.QueryTimeoutError):
                repo.nearest(np.ones(DIM), k=3)
            with pytest.raises(vs.QueryTimeoutError):
                repo.add("one more", embedding=np.ones(DIM))
            lock.rollback()
        assert _count(admin) == 3
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_lock_timeout_is_a_timeout_error_too(any_driver_url: URL, admin: Engine) -> None:
    engine = vs.make_engine(any_driver_url, connect_args={"options": "-c lock_timeout=100"})
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection="t", embedding_model="external"
    )
    try:
        _ = repo.collection
        with admin.connect() as lock:
            lock.begin()
            lock.execute(text("LOCK TABLE vectorstore_documents IN ACCESS EXCLUSIVE MODE"))
            with pytest.raises(vs.QueryTimeoutError) as caught:
                repo.bulk_add(_records(5))
            assert caught.value.sqlstate == "55P03"
            lock.rollback()
        assert _count(admin) == 0
    finally:
        engine.dispose()
