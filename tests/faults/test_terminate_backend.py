"""A pooled connection whose backend was terminated between calls.

``pg_terminate_backend(pid, timeout)`` returns only once the backend has exited,
so each test knows the pooled connection is dead before its next call.  Engines
made by :func:`vectorstore.make_engine` pre-ping, so the next call - read or
write - transparently gets a fresh connection.  With an engine without
pre-ping, a read of a repository that owns its transactions is retried once on
a fresh connection (the engine's ``handle_error`` event shows the one failed
attempt); a write surfaces the broken connection as
:class:`ConnectionLostError` and is never silently retried (a retried write
could run twice), and neither is a read inside the host app's Session; the
call after that gets a fresh connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import URL, Engine, create_engine, event, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

import vectorstore as vs

pytestmark = pytest.mark.faults


@pytest.fixture
def admin(any_driver_url: URL) -> Iterator[Engine]:
    eng = create_engine(any_driver_url, poolclass=NullPool)
    yield eng
    eng.dispose()


def _pooled_pid(engine: Engine) -> int:
    """The backend pid of the pool's only connection."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(admin: Engine, pid: int) -> None:
    with admin.connect() as conn:
        done = conn.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid})
        assert done.scalar_one() is True  # returns after the backend has exited


def _single_connection_engine(url: URL, *, pre_ping: bool) -> Engine:
    return vs.make_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=pre_ping)


def test_every_call_survives_a_terminated_pooled_backend(
    any_driver_url: URL, admin: Engine
) -> None:
    engine = _single_connection_engine(any_driver_url, pre_ping=True)
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection="pooled", embedder=vs.HashingTestEmbedder()
    )
    try:
        repo.add("first document", external_id="1")
        calls = [
            lambda: repo.add("second document", external_id="2"),
            lambda: repo.bulk_add([{"text": "third", "external_id": "3"}]),
            lambda: repo.nearest("document", k=2),
            lambda: repo.count(),
            lambda: repo.get_by_external_id("1"),
            lambda: repo.delete(external_ids=["3"]),
        ]
        for call in calls:
            old = _pooled_pid(engine)
            _terminate(admin, old)
            call()
            assert _pooled_pid(engine) != old
        assert repo.count() == 2
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_session_bound_repository_survives_between_transactions(
    any_driver_url: URL, admin: Engine
) -> None:
    engine = _single_connection_engine(any_driver_url, pre_ping=True)
    try:
        with Session(engine) as session:
            repo = vs.DocumentRepository(
                session, collection="bound", embedder=vs.HashingTestEmbedder()
            )
            repo.add("one")
            session.commit()  # the connection goes back to the pool
            _terminate(admin, _pooled_pid(engine))
            repo.add("two")
            assert [r.document.text for r in repo.nearest("two", k=1)] == ["two"]
            session.commit()
        assert _count(engine) == 2
    finally:
        engine.dispose()


def test_without_pre_ping_a_write_on_a_dead_connection_raises_and_is_not_retried(
    any_driver_url: URL, admin: Engine
) -> None:
    engine = _single_connection_engine(any_driver_url, pre_ping=False)
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection="no-ping", embedding_model="external"
    )
    vector = np.ones(vs.DEFAULT_DIMENSION, dtype=np.float32)
    try:
        repo.add("kept", embedding=vector)
        _terminate(admin, _pooled_pid(engine))
        with pytest.raises(vs.ConnectionLostError) as caught:
            repo.add("lost", embedding=vector)
        assert "add" in str(caught.value)
        assert _count(engine) == 1  # raised, not silently re-sent
        # The pool threw the dead connection away: the next call works.
        repo.add("after", embedding=vector)
        assert [d.text for d in _texts(engine)] == ["after", "kept"]
    finally:
        engine.dispose()


def _disconnects(engine: Engine) -> list[bool]:
    """Records ``is_disconnect`` of every statement error the engine sees (SQLAlchemy path)."""
    seen: list[bool] = []
    event.listen(engine, "handle_error", lambda ctx: seen.append(ctx.is_disconnect))
    return seen


def test_without_pre_ping_a_read_on_a_dead_connection_is_retried_once(
    any_driver_url: URL, admin: Engine
) -> None:
    engine = _single_connection_engine(any_driver_url, pre_ping=False)
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection="retry-read", embedding_model="external"
    )
    vector = np.ones(vs.DEFAULT_DIMENSION, dtype=np.float32)
    try:
        stored = repo.add("stored", embedding=vector, external_id="s")
        seen = _disconnects(engine)
        reads: list[tuple[Callable[[], Any], Callable[[Any], bool]]] = [
            (repo.count, lambda n: n == 1),
            (lambda: repo.nearest(vector, k=1), lambda hits: [h.document.id for h in hits]
             == [stored.id]),
            (lambda: repo.get_by_external_id("s"), lambda doc: doc.id == stored.id),
            (lambda: repo.get(stored.id), lambda doc: doc.text == "stored"),
            (lambda: repo.hybrid("stored", vector=vector, k=1), lambda hits: len(hits) == 1),
        ]  # fmt: skip
        for read, correct in reads:
            old = _pooled_pid(engine)
            _terminate(admin, old)
            seen.clear()
            assert correct(read())
            assert seen == [True]  # one attempt failed on the dead connection, one succeeded
            assert _pooled_pid(engine) != old
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        engine.dispose()


@pytest.mark.parametrize("write", ["add", "bulk_add", "delete"])
def test_without_pre_ping_no_write_is_retried(
    any_driver_url: URL, admin: Engine, write: str
) -> None:
    engine = _single_connection_engine(any_driver_url, pre_ping=False)
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection="no-retry", embedding_model="external"
    )
    vector = np.ones(vs.DEFAULT_DIMENSION, dtype=np.float32)
    calls: dict[str, Callable[[], Any]] = {
        "add": lambda: repo.add("new", embedding=vector, external_id="new"),
        "bulk_add": lambda: repo.bulk_add(["new"], embeddings=[vector], external_ids=["new"]),
        "delete": lambda: repo.delete(external_ids=["old"]),
    }
    try:
        repo.add("old", embedding=vector, external_id="old")
        seen = _disconnects(engine)
        _terminate(admin, _pooled_pid(engine))
        with pytest.raises(vs.ConnectionLostError):
            calls[write]()
        assert len(seen) <= 1  # at most the one failed attempt: never a second one
        assert [d.text for d in _texts(engine)] == ["old"]  # nothing re-sent behind our back
        calls[write]()  # the pool threw the dead connection away: the next call works
        expected = [] if write == "delete" else ["new", "old"]
        assert [d.text for d in _texts(engine)] == expected
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_without_pre_ping_a_read_in_the_host_session_is_not_retried(
    any_driver_url: URL, admin: Engine
) -> None:
    engine = _single_connection_engine(any_driver_url, pre_ping=False)
    try:
        with Session(engine) as session:
            repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository(
                session, collection="host", embedder=vs.HashingTestEmbedder()
            )
            repo.add("one")
            session.commit()
            seen = _disconnects(engine)
            _terminate(admin, _pooled_pid(engine))
            with pytest.raises(vs.ConnectionLostError):
                repo.count()  # the host owns the transaction: its loss is the host's to handle
            assert seen == [True]
            session.rollback()
            assert repo.count() == 1
    finally:
        engine.dispose()


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM vectorstore_documents")).scalar_one())


class _Row:
    def __init__(self, text: str) -> None:
        self.text = text


def _texts(engine: Engine) -> list[_Row]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT text FROM vectorstore_documents ORDER BY text")).all()
    return [_Row(r[0]) for r in rows]
