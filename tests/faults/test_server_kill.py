"""SIGKILL of the postmaster in the middle of a write: all or nothing, then an exact re-run.

Each test streams records through a generator that, once the server has
provably received the first chunk (``pg_stat_progress_copy`` reports at least
its bytes),
kills the dedicated server's postmaster from inside the stream.  The caller must
get :class:`vectorstore.ConnectionLostError`; after ``start()`` (crash recovery)
the batch is entirely absent, and re-running the very same call writes it
exactly once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg2
import pytest
from sqlalchemy import Engine, text

import vectorstore as vs
from tests._dedicated import crash, driver_url

pytestmark = pytest.mark.faults

DIM = vs.DEFAULT_DIMENSION
CHUNK = 200
TOTAL = 1_000
# The wait for the server to report progress is bounded so a broken test fails
# instead of hanging; it ends as soon as the condition holds.
_PROGRESS_DEADLINE_S = 60.0


def _vector(i: int) -> list[float]:
    rng = np.random.default_rng(i)
    return rng.standard_normal(DIM).astype(np.float32).tolist()


def _wait_for_copy_progress(server: vs.EmbeddedServer, rows: int) -> None:
    """Block until some backend's COPY has received at least ``rows`` rows.

    PostgreSQL counts ``tuples_processed`` only when its insert buffer flushes, but
    ``bytes_processed`` as data arrives; ``rows`` vectors alone are a lower bound.
    """
    least_bytes = rows * DIM * 4
    conn = psycopg2.connect(dbname="vectorstore", user="postgres", host=str(server.socket_dir))
    conn.autocommit = True
    tick = threading.Event()
    try:
        with conn.cursor() as cur:
            for _ in range(int(_PROGRESS_DEADLINE_S / 0.01)):
                cur.execute("SELECT coalesce(max(bytes_processed), 0) FROM pg_stat_progress_copy")
                row = cur.fetchone()
                if row is not None and row[0] >= least_bytes:
                    return
                tick.wait(0.01)
    finally:
        conn.close()
    raise AssertionError(f"the server never reported {rows} copied rows")


def records(server: vs.EmbeddedServer | None = None, kill_at: int = CHUNK * 3) -> Iterator[Any]:
    """TOTAL records with external ids; with ``server``, crash it at row ``kill_at``."""
    for i in range(TOTAL):
        if server is not None and i == kill_at:
            _wait_for_copy_progress(server, CHUNK)
            crash(server)
        yield {
            "text": f"document number {i}",
            "external_id": f"ext-{i}",
            "metadata": {"i": i},
            "embedding": _vector(i),
        }


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT count(*), count(DISTINCT external_id) FROM vectorstore_documents")
        ).one()
    return int(row[0]), int(row[1])


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
@pytest.mark.parametrize("on_conflict", ["error", "skip"])
def test_bulk_add_killed_mid_copy_is_all_or_nothing_and_rerun_is_exact(
    clean_server: vs.EmbeddedServer, driver: str, on_conflict: vs.ConflictPolicy
) -> None:
    engine = vs.make_engine(driver_url(clean_server, driver))
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection="kill", embedding_model="external"
    )
    try:
        with pytest.raises(vs.ConnectionLostError) as caught:
            repo.bulk_add(records(clean_server), chunk_rows=CHUNK, on_conflict=on_conflict)
        assert "bulk_add" in str(caught.value)
        assert not clean_server.status().running

        clean_server.start()
        assert _counts(engine) == (0, 0)  # none of the batch survived the crash

        result = repo.bulk_add(records(), chunk_rows=CHUNK, on_conflict=on_conflict)
        assert result.inserted == TOTAL
        assert _counts(engine) == (TOTAL, TOTAL)
        assert repo.count() == TOTAL
    finally:
        engine.dispose()


def test_bulk_add_killed_after_the_last_row_was_sent_is_all_or_nothing(
    clean_server: vs.EmbeddedServer,
) -> None:
    def everything_then_crash() -> Iterator[Any]:
        yield from records()
        _wait_for_copy_progress(clean_server, TOTAL - CHUNK)
        crash(clean_server)

    engine = vs.make_engine(clean_server.url())
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection="kill-late", embedding_model="external"
    )
    try:
        with pytest.raises(vs.ConnectionLostError):
            repo.bulk_add(everything_then_crash(), chunk_rows=CHUNK, on_conflict="skip")
        clean_server.start()
        before = _counts(engine)
        assert before in ((0, 0), (TOTAL, TOTAL))
        # Re-running with on_conflict="skip" is safe whatever the crash left behind.
        result = repo.bulk_add(records(), chunk_rows=CHUNK, on_conflict="skip")
        assert result.inserted + result.skipped == TOTAL
        assert _counts(engine) == (TOTAL, TOTAL)
    finally:
        engine.dispose()


def test_add_after_a_crash_and_restart_works_on_the_same_engine(
    clean_server: vs.EmbeddedServer,
) -> None:
    engine = vs.make_engine(clean_server.url())
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection="after-crash", embedder=vs.HashingTestEmbedder()
    )
    try:
        repo.add("before the crash", external_id="a")
        crash(clean_server)
        with pytest.raises(vs.ConnectionLostError):
            repo.add("while the server is down", external_id="b")
        clean_server.start()
        repo.add("after the restart", external_id="b")
        assert repo.count() == 2
        assert _counts(engine) == (2, 2)
    finally:
        engine.dispose()


# -- the buffered writer and the ingest pipeline ------------------------------------------
# Conditions seen from another connection (pg_stat_activity), mid-write:
COPY_RUNNING = "state = 'active' AND query ILIKE 'COPY%'"
ROWS_WRITTEN = "backend_xid IS NOT NULL AND backend_type = 'client backend'"


def _wait_for_activity(server: vs.EmbeddedServer, condition: str) -> None:
    """Block until some other backend satisfies ``condition`` (rows written, COPY running)."""
    conn = psycopg2.connect(dbname="vectorstore", user="postgres", host=str(server.socket_dir))
    conn.autocommit = True
    tick = threading.Event()
    try:
        with conn.cursor() as cur:
            for _ in range(int(_PROGRESS_DEADLINE_S / 0.01)):
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    f"WHERE pid <> pg_backend_pid() AND {condition}"
                )
                row = cur.fetchone()
                if row is not None and row[0] > 0:
                    return
                tick.wait(0.01)
    finally:
        conn.close()
    raise AssertionError(f"no backend ever satisfied: {condition}")


class CrashingEmbedder(vs.HashingTestEmbedder):
    """Crashes the server on its ``crash_on``-th call, once ``condition`` holds."""

    def __init__(self, server: vs.EmbeddedServer, crash_on: int, condition: str) -> None:
        super().__init__()
        self.server, self.crash_on, self.condition, self.armed = server, crash_on, condition, True

    def embed(self, texts: Any) -> Any:
        if self.armed and self.calls + 1 == self.crash_on:
            self.armed = False
            _wait_for_activity(self.server, self.condition)
            crash(self.server)
        return super().embed(texts)


def test_writer_flush_killed_mid_copy_writes_nothing_and_hands_back_every_record(
    clean_server: vs.EmbeddedServer,
) -> None:
    engine = vs.make_engine(clean_server.url())
    # The flush embeds inside its COPY stream: crash once that COPY is running.
    embedder = CrashingEmbedder(clean_server, crash_on=1, condition=COPY_RUNNING)
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection="writer", embedder=embedder
    )
    try:
        writer = repo.writer(max_rows=100_000, max_delay=None)
        for i in range(TOTAL):
            writer.add(f"event {i}", external_id=f"ev-{i}")
        with pytest.raises(vs.WriteError) as caught:
            writer.flush()
        assert isinstance(caught.value.__cause__, vs.ConnectionLostError)
        unwritten = caught.value.unwritten
        assert len(unwritten) == TOTAL

        clean_server.start()
        assert _counts(engine) == (0, 0)
        retry = repo.writer(max_rows=100_000, max_delay=None)
        for record in unwritten:
            retry.add(record)
        retry.close()
        assert _counts(engine) == (TOTAL, TOTAL)
    finally:
        engine.dispose()


def test_ingest_killed_mid_load_is_all_or_nothing_and_rerun_is_exact(
    clean_server: vs.EmbeddedServer,
) -> None:
    def source() -> Iterator[dict[str, Any]]:
        for i in range(TOTAL):
            yield {"text": f"ingested document {i}", "external_id": f"in-{i}"}

    engine = vs.make_engine(clean_server.url())
    # The third chunk's embedding, once the load's transaction has written (xid assigned).
    embedder = CrashingEmbedder(clean_server, crash_on=3, condition=ROWS_WRITTEN)
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection="ingest", embedder=embedder
    )
    try:
        with pytest.raises(vs.ConnectionLostError):
            vs.ingest(source(), repository=repo, chunk_rows=CHUNK, progress=False)
        clean_server.start()
        assert _counts(engine) == (0, 0)
        result = vs.ingest(source(), repository=repo, chunk_rows=CHUNK, progress=False)
        assert result.inserted == TOTAL
        assert _counts(engine) == (TOTAL, TOTAL)
        again = vs.ingest(source(), repository=repo, chunk_rows=CHUNK, progress=False)
        assert again.inserted == 0  # re-running a completed ingest writes nothing
        assert _counts(engine) == (TOTAL, TOTAL)
    finally:
        engine.dispose()


def _schema_objects(engine: Engine) -> tuple[set[str], set[str]]:
    """(valid index names, foreign key names) of the documents table."""
    with engine.connect() as conn:
        indexes = set(conn.execute(text(
            "SELECT indexrelid::regclass::text FROM pg_index "
            "WHERE indrelid = 'vectorstore_documents'::regclass AND indisvalid"
        )).scalars())  # fmt: skip
        keys = set(conn.execute(text(
            "SELECT conname FROM pg_constraint "
            "WHERE conrelid = 'vectorstore_documents'::regclass AND contype = 'f'"
        )).scalars())  # fmt: skip
    return indexes, keys


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_big_load_killed_between_drop_and_rebuild_leaves_every_index(
    clean_server: vs.EmbeddedServer, driver: str
) -> None:
    """The drop is in the load's transaction: a crash mid-COPY rolls it back with the rows."""
    engine = vs.make_engine(driver_url(clean_server, driver))
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection="kill-big", embedding_model="external"
    )
    try:
        before = _schema_objects(engine)
        assert len(before[0]) >= 5
        assert len(before[1]) == 1
        with pytest.raises(vs.ConnectionLostError):
            repo.bulk_add(records(clean_server), chunk_rows=CHUNK, rebuild_index=True)
        clean_server.start()
        assert _counts(engine) == (0, 0)
        assert _schema_objects(engine) == before  # every index and the foreign key are back
        result = repo.bulk_add(records(), chunk_rows=CHUNK, rebuild_index=True)
        assert result.big_load
        assert result.inserted == TOTAL
        assert _schema_objects(engine) == before
    finally:
        engine.dispose()
