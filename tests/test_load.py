"""Concurrent load: eight writer threads and eight filtered-search threads at once.

The writers cycle through ``add``, ``bulk_add`` and a buffered writer they all
share (``repo.writer``), so the writer's flushes - in the adding threads, in
its timer thread and at close - run among the other writes and the searches.

Bounded work (a fixed number of operations per thread, with a time limit as a
safety net), then the invariants: no errors, every acknowledged write readable,
exact final counts, no duplicates, and every pooled connection returned.
Throughput and latency are reported by ``benchmarks/bench_load.py``, never
asserted here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import URL, Engine, text

import vectorstore as vs
from tests._dedicated import cloned_database
from tests._load import WRITE_OPS, expected_rows, run_load

pytestmark = pytest.mark.load

WRITERS = READERS = 8
OPS = 30


@pytest.fixture(scope="module")
def load_db(postgresql_noproc: Any) -> Iterator[URL]:
    """One database for the module (each test uses its own collection)."""
    with cloned_database(
        postgresql_noproc.template_dbname, f"vectorstore_load_{os.getpid()}"
    ) as url:
        yield url


def _stored_ids(engine: Engine, collection: str) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT d.external_id FROM vectorstore_documents d "
                "JOIN vectorstore_collections c ON c.id = d.collection_id WHERE c.name = :name"
            ),
            {"name": collection},
        )
        return list(rows.scalars().all())


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_eight_writers_and_eight_searchers_lose_nothing(load_db: URL, driver: str) -> None:
    engine = vs.make_engine(
        load_db.set(drivername=f"postgresql+{driver}"), pool_size=WRITERS + READERS, max_overflow=0
    )
    collection = f"load-{driver}"
    try:
        report = run_load(engine, collection, writers=WRITERS, readers=READERS, ops=OPS)
        assert report.errors == []
        expected = expected_rows(WRITERS, OPS)
        assert report.rows_written == expected
        assert len(report.latencies["nearest"]) == READERS * OPS
        for op in WRITE_OPS:  # every write path took part
            assert len(report.latencies[op]) == WRITERS * OPS // len(WRITE_OPS)
        assert report.buffered <= report.acked  # the writer's records, acknowledged at close
        assert report.flushes >= 1

        stored = _stored_ids(engine, collection)
        assert len(stored) == expected  # exact count
        assert len(set(stored)) == len(stored)  # no duplicates
        assert set(stored) == report.acked  # every acknowledged write is readable
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        engine.dispose()
