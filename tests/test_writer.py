"""The buffered writer: flush by rows, by age and on exit; threads; unwritten records."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs
from tests.conftest import table_count

DIM = vs.DEFAULT_DIMENSION
VEC = np.random.default_rng(0).standard_normal(DIM).astype(np.float32)


def ids_in_db(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT external_id FROM vectorstore_documents")).scalars()
        return sorted(str(r) for r in rows)


def test_flushes_by_row_count_and_on_exit(
    repo: vs.DocumentRepository[vs.Document], engine: Engine
) -> None:
    with repo.writer(max_rows=5, max_delay=None) as w:
        for i in range(12):
            w.add(f"event {i}", embedding=VEC, external_id=f"e{i}")
        assert w.flushes == 2
        assert w.pending == 2
        assert table_count(engine) == 10  # committed on the writer's own connection
    assert table_count(engine) == 12
    assert w.inserted == 12


def test_flushes_by_age(repo: vs.DocumentRepository[vs.Document], engine: Engine) -> None:
    with repo.writer(max_rows=1000, max_delay=0.05) as w:
        w.add("late event", embedding=VEC)
        w.add(vs.Record("another", {"k": 1}, "r2", VEC))
        assert w.wait_until_flushed(timeout=30)
        assert w.flushes >= 1  # by age: nothing forced it
        assert table_count(engine) == 2


def test_texts_without_vectors_are_embedded_at_flush_in_one_call(
    repo: vs.DocumentRepository[vs.Document], embedder: vs.HashingTestEmbedder, engine: Engine
) -> None:
    with repo.writer(max_rows=50, max_delay=None) as w:
        for i in range(50):
            w.add(f"text {i}")
    assert table_count(engine) == 50
    assert embedder.calls == 1


def test_concurrent_threads_exact_counts(
    repo: vs.DocumentRepository[vs.Document], engine: Engine
) -> None:
    threads, per_thread = 6, 150
    errors: list[BaseException] = []
    with repo.writer(max_rows=37, max_delay=0.01) as w:

        def produce(t: int) -> None:
            try:
                for i in range(per_thread):
                    w.add(f"thread {t} event {i}", embedding=VEC, external_id=f"{t}-{i}")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert errors == []
    expected = sorted(f"{t}-{i}" for t in range(threads) for i in range(per_thread))
    assert ids_in_db(engine) == expected
    assert w.inserted == threads * per_thread


def test_failed_flush_reports_unwritten_records_for_retry(
    repo: vs.DocumentRepository[vs.Document], engine: Engine, session: Session
) -> None:
    repo.add("already here", embedding=VEC, external_id="dup")
    session.commit()
    w = repo.writer(max_rows=3, max_delay=None)
    w.add("fresh 1", embedding=VEC, external_id="f1")
    w.add("fresh 2", embedding=VEC, external_id="f2")
    with pytest.raises(vs.WriteError) as caught:
        w.add("clash", embedding=VEC, external_id="dup")
    assert [r.external_id for r in caught.value.unwritten] == ["f1", "f2", "dup"]
    assert table_count(engine) == 1  # the failed flush wrote nothing
    # The caller retries the good ones; the writer is still usable.
    for record in caught.value.unwritten[:2]:
        w.add(record)
    w.close()
    assert ids_in_db(engine) == ["dup", "f1", "f2"]


def test_background_flush_failure_is_raised_on_next_call(
    repo: vs.DocumentRepository[vs.Document], engine: Engine, session: Session
) -> None:
    repo.add("already here", embedding=VEC, external_id="dup")
    session.commit()
    w = repo.writer(max_rows=100, max_delay=0.01)
    w.add("clash", embedding=VEC, external_id="dup")
    assert w.wait_until_flushed(timeout=30)
    with pytest.raises(vs.WriteError) as caught:
        w.flush()
    assert [r.external_id for r in caught.value.unwritten] == ["dup"]
    w.close()
    assert table_count(engine) == 1


def test_exit_with_an_exception_keeps_unwritten_records_available(
    repo: vs.DocumentRepository[vs.Document], session: Session
) -> None:
    repo.add("already here", embedding=VEC, external_id="dup")
    session.commit()
    w = repo.writer(max_delay=None)

    def body() -> None:
        with w:
            w.add("clash", embedding=VEC, external_id="dup")
            raise RuntimeError("body failed")

    with pytest.raises(RuntimeError, match="body failed"):
        body()
    assert [r.external_id for r in w.unwritten()] == ["dup"]


def test_invalid_record_is_refused_at_add_and_not_buffered(
    repo: vs.DocumentRepository[vs.Document], engine: Engine
) -> None:
    with repo.writer(max_delay=None) as w:
        with pytest.raises(vs.ValidationError, match="NUL"):
            w.add("bad\x00", embedding=VEC)
        with pytest.raises(vs.DimensionMismatchError):
            w.add("short", embedding=VEC[:3])
        assert w.pending == 0
        w.add("good", embedding=VEC)
    assert table_count(engine) == 1


def test_bad_settings_are_refused(repo: vs.DocumentRepository[vs.Document]) -> None:
    with pytest.raises(vs.ValidationError):
        repo.writer(max_rows=0)
    with pytest.raises(vs.ValidationError):
        repo.writer(max_delay=-1)


def test_add_after_close_is_refused(repo: vs.DocumentRepository[vs.Document]) -> None:
    w = repo.writer(max_delay=None)
    w.close()
    with pytest.raises(vs.WriteError):
        w.add("late", embedding=VEC)
