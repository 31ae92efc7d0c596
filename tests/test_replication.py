"""Reads from a streaming replica, writes to the primary - two real servers on loopback.

A dedicated primary is migrated, a hot standby is made from it with
``EmbeddedServer.create_replica`` (``pg_basebackup -R`` from the same binaries)
and both listen on their own unix sockets.  The primary commits with
``synchronous_commit = remote_apply`` and the standby as its synchronous
standby, so a commit returns only once the replica has applied it: the tests
read their writes from the replica without sleeping or polling.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.pool import NullPool

import vectorstore as vs
from tests._dedicated import dedicated_server, stop

pytestmark = pytest.mark.replication

DIM = vs.DEFAULT_DIMENSION
Repo = vs.DocumentRepository[vs.Document]


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[vs.EmbeddedServer, vs.EmbeddedServer]]:
    with dedicated_server("primary") as primary:
        replica = primary.create_replica(primary.data_dir.parent / "replica")
        try:
            replica.start()
            admin = create_engine(primary.url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
            with admin.connect() as conn:
                conn.execute(text("ALTER SYSTEM SET synchronous_standby_names = '*'"))
                conn.execute(text("ALTER SYSTEM SET synchronous_commit = 'remote_apply'"))
                conn.execute(text("SELECT pg_reload_conf()"))
            admin.dispose()
            yield primary, replica
        finally:
            stop(replica)


@pytest.fixture
def engines(
    servers: tuple[vs.EmbeddedServer, vs.EmbeddedServer],
) -> Iterator[tuple[Engine, Engine]]:
    primary, replica = servers
    primary.start()
    write, read = vs.make_engine(primary.url()), vs.make_engine(replica.url())
    yield write, read
    write.dispose()
    read.dispose()


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    return seen


def test_the_replica_is_a_read_only_hot_standby(engines: tuple[Engine, Engine]) -> None:
    write, read = engines
    with write.connect() as conn:
        assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is False
        state = conn.execute(text("SELECT sync_state FROM pg_stat_replication")).scalars().all()
        assert state == ["sync"]
    with read.connect() as conn:
        assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is True


def test_writes_go_to_the_primary_and_nearest_to_the_replica(
    engines: tuple[Engine, Engine],
) -> None:
    write, read = engines
    on_primary, on_replica = _statements(write), _statements(read)
    repo: Repo = vs.DocumentRepository.standalone(
        write, collection="replicated", embedder=vs.HashingTestEmbedder(), read_engine=read
    )
    repo.add("the primary takes every write", external_id="a")
    repo.bulk_add([{"text": f"bulk row {i}", "external_id": f"b{i}"} for i in range(50)])
    writes = len(on_primary)
    assert not any(s.lstrip().upper().startswith(("INSERT", "COPY")) for s in on_replica)

    hits = repo.nearest("primary write", k=3)
    assert hits[0].document.external_id == "a"  # the replica already has it
    assert repo.count() == 51
    assert repo.get_by_external_id("b7").text == "bulk row 7"
    assert len(on_primary) == writes  # no read went to the primary
    assert any("vectorstore_documents" in s for s in on_replica)


def test_nearest_is_served_by_the_replica_while_the_primary_is_down(
    servers: tuple[vs.EmbeddedServer, vs.EmbeddedServer], engines: tuple[Engine, Engine]
) -> None:
    primary, _ = servers
    write, read = engines
    repo: Repo = vs.DocumentRepository.standalone(
        write, collection="failover", embedding_model="external", read_engine=read
    )
    vectors = np.random.default_rng(3).standard_normal((20, DIM)).astype(np.float32)
    repo.bulk_add([f"doc {i}" for i in range(20)], embeddings=vectors)
    primary.stop()
    try:
        hits = repo.nearest(vectors[4], k=1)
        assert hits[0].document.text == "doc 4"
        assert repo.count() == 20
        with pytest.raises(vs.ConnectionLostError):
            repo.add("no primary to write to", embedding=vectors[0])
    finally:
        primary.start()
    repo.add("the primary is back", embedding=vectors[0])
    assert repo.count() == 21


def test_a_write_through_the_read_engine_is_a_read_only_error(
    engines: tuple[Engine, Engine],
) -> None:
    write, read = engines
    created = vs.DocumentRepository.standalone(write, collection="exists", embedding_model="m")
    assert created.collection.name == "exists"
    through_replica: Repo = vs.DocumentRepository.standalone(
        read, collection="exists", embedding_model="m"
    )
    vector = np.ones(DIM, dtype=np.float32)
    with pytest.raises(vs.ReadOnlyError) as caught:
        through_replica.add("written to a replica", embedding=vector)
    assert caught.value.sqlstate == "25006"
    with pytest.raises(vs.ReadOnlyError):
        through_replica.bulk_add(["a", "b"], embeddings=np.ones((2, DIM)))
    with pytest.raises(vs.ReadOnlyError):
        vs.DocumentRepository.standalone(read, collection="new", embedding_model="m").count()
    assert through_replica.count() == 0


def test_create_replica_refuses_a_used_folder(
    servers: tuple[vs.EmbeddedServer, vs.EmbeddedServer],
) -> None:
    primary, replica = servers
    with pytest.raises(vs.ServerError, match="not empty"):
        primary.create_replica(replica.data_dir)
