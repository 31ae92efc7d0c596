"""The error classes a caller acts on: retry (ConcurrencyError), alert (StorageFullError).

Deadlocks and serialization failures are produced for real, with two
connections on the test database and each driver; the order of events is
forced by waiting, in ``pg_stat_activity``, for the blocked backend to be
waiting on a lock (never by sleeping).  A full disk cannot be produced, so
the classifier gets the driver's own exception classes, wrapped the way
SQLAlchemy wraps them.  The last test ends a backend in the middle of a COPY
(psycopg2 used to print the server's reason to stderr and raise "connection
already closed").
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import psycopg.errors
import psycopg2
import psycopg2.errors
import pytest
from sqlalchemy import URL, Connection, Engine, create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

import vectorstore as vs
from vectorstore.errors import db_errors, translate_db_error

DIM = vs.DEFAULT_DIMENSION
# Waits for another backend's state are bounded, so a broken test fails
# instead of hanging; each ends as soon as its condition holds.
_DEADLINE_S = 60.0
_TICK_S = 0.01


@pytest.fixture
def admin(any_driver_url: URL) -> Iterator[Engine]:
    """Short-lived connections, outside any test transaction, to watch and steer backends."""
    eng = create_engine(any_driver_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    yield eng
    eng.dispose()


def _wait_until(admin: Engine, sql: str, params: dict[str, Any]) -> Any:
    """Poll ``sql`` until it returns a non-NULL first column; return it."""
    tick = threading.Event()
    for _ in range(int(_DEADLINE_S / _TICK_S)):
        with admin.connect() as conn:
            value = conn.execute(text(sql), params).scalar()
        if value is not None:
            return value
        tick.wait(_TICK_S)
    raise AssertionError(f"never true: {sql} {params}")


def _wait_for_lock_wait(admin: Engine, pid: int) -> None:
    _wait_until(
        admin,
        "SELECT 1 FROM pg_stat_activity WHERE pid = :pid AND wait_event_type = 'Lock'",
        {"pid": pid},
    )


def _pid(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM vectorstore_documents")).scalar_one())


class _Blocked:
    """Run ``call`` in a thread (it will block on a lock); keep what it returned or raised."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test's thread
            self.error = exc

    def join(self) -> None:
        self._thread.join(_DEADLINE_S)
        assert not self._thread.is_alive(), "the blocked statement never finished"


def _two_documents(url: URL) -> tuple[int, int]:
    engine = vs.make_engine(url)
    try:
        repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
            engine, collection="locks", embedding_model="external"
        )
        vector = np.ones(DIM, dtype=np.float32)
        one = repo.add("one", embedding=vector, external_id="one")
        two = repo.add("two", embedding=vector, external_id="two")
        return one.id, two.id
    finally:
        engine.dispose()


_UPDATE = "UPDATE vectorstore_documents SET text = text || '!' WHERE id = :id"


# -- the tree ---------------------------------------------------------------------------
def test_every_error_class_says_whether_it_is_retryable() -> None:
    classes = [getattr(vs, name) for name in vs.__all__ if name.endswith("Error")]
    assert all(isinstance(cls.retryable, bool) for cls in classes)
    assert {cls.__name__ for cls in classes if cls.retryable} == {"ConcurrencyError"}
    assert issubclass(vs.ConcurrencyError, vs.DatabaseError)
    assert issubclass(vs.StorageFullError, vs.DatabaseError)
    assert vs.VectorStoreError.retryable is False
    assert vs.ConnectionLostError.retryable is False
    # A lock_timeout may pass on the next attempt; a statement_timeout would not.
    assert vs.QueryTimeoutError("t", sqlstate="55P03").retryable is True
    assert vs.QueryTimeoutError("t", sqlstate="57014").retryable is False


# -- real deadlocks and serialization failures, both drivers --------------------------------
def test_a_real_deadlock_is_a_retryable_concurrency_error(
    any_driver_url: URL, admin: Engine
) -> None:
    one, two = _two_documents(any_driver_url)
    engine = create_engine(any_driver_url, poolclass=NullPool)
    try:
        with engine.connect() as first, engine.connect() as second:
            # The second backend closes the cycle and, checking for deadlocks long
            # before the first does, is the one the server aborts.
            first.execute(text("SET deadlock_timeout = '60s'"))
            second.execute(text("SET deadlock_timeout = '10ms'"))
            first.execute(text(_UPDATE), {"id": one})
            second.execute(text(_UPDATE), {"id": two})
            first_pid = _pid(first)
            blocked = _Blocked(lambda: first.execute(text(_UPDATE), {"id": two}))
            _wait_for_lock_wait(admin, first_pid)
            with pytest.raises(sa_exc.DBAPIError) as caught:
                second.execute(text(_UPDATE), {"id": one})
            second.rollback()  # frees row two: the first transaction goes on
            blocked.join()
            assert blocked.error is None
            first.commit()
    finally:
        engine.dispose()

    error = translate_db_error(caught.value, "update")
    assert type(error) is vs.ConcurrencyError
    assert error.sqlstate == "40P01"
    assert error.retryable is True
    message = str(error)
    assert "deadlock detected" in message
    assert "retry the whole transaction" in message
    assert "\n" not in message  # the server's multi-line DETAIL is escaped to one line


def test_a_deadlock_in_a_session_bound_repository_call_raises_concurrency_error(
    any_driver_url: URL, admin: Engine
) -> None:
    one, two = _two_documents(any_driver_url)
    engine = vs.make_engine(any_driver_url)
    other = create_engine(any_driver_url, poolclass=NullPool)
    try:
        with Session(engine) as session, other.connect() as rival:
            repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository(
                session, collection="locks", embedding_model="external"
            )
            session.execute(text("SET deadlock_timeout = '10ms'"))
            rival.execute(text("SET deadlock_timeout = '60s'"))
            rival.execute(text(_UPDATE), {"id": one})
            session.execute(text(_UPDATE), {"id": two})  # the host's own statement
            rival_pid = _pid(rival)
            blocked = _Blocked(lambda: rival.execute(text(_UPDATE), {"id": two}))
            _wait_for_lock_wait(admin, rival_pid)
            with pytest.raises(vs.ConcurrencyError) as caught:
                repo.delete(external_ids=["one"])  # closes the cycle
            # The repository's savepoint is gone, but the host's transaction still
            # holds row two: only rolling back the whole transaction lets the rival on.
            session.rollback()
            blocked.join()
            assert blocked.error is None
            rival.commit()
    finally:
        other.dispose()
        engine.dispose()
    assert caught.value.sqlstate == "40P01"
    assert caught.value.retryable is True
    assert "delete" in str(caught.value)


def test_a_real_serialization_failure_is_a_retryable_concurrency_error(
    any_driver_url: URL,
) -> None:
    one, _ = _two_documents(any_driver_url)
    engine = create_engine(any_driver_url, poolclass=NullPool)
    try:
        with engine.connect() as reader, engine.connect() as writer:
            reader.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            reader.execute(text("SELECT count(*) FROM vectorstore_documents"))  # the snapshot
            writer.execute(text(_UPDATE), {"id": one})
            writer.commit()
            with pytest.raises(vs.ConcurrencyError) as caught, db_errors("update"):
                reader.execute(text(_UPDATE), {"id": one})
            reader.rollback()
    finally:
        engine.dispose()
    error = caught.value
    assert isinstance(error.__cause__, sa_exc.OperationalError)
    assert error.sqlstate == "40001"
    assert error.retryable is True


# -- classes that cannot be produced here: the driver's own exception types -----------------
def _psycopg2_error(cls: type[psycopg2.Error], code: str, message: str) -> psycopg2.Error:
    """A psycopg2 error as the driver raises it: the class of its SQLSTATE, with ``pgcode``.

    psycopg2 fills ``pgcode`` only from a server result; ``__setstate__`` is how
    an error it raised is restored after pickling, and sets the same fields.
    """
    exc = cls(message)
    exc.__setstate__({"pgerror": f"ERROR:  {message}\n", "pgcode": code})  # type: ignore[no-untyped-call]
    return exc


def _psycopg_error(cls: type[psycopg.Error], message: str) -> psycopg.Error:
    """A psycopg 3 error: its SQLSTATE is a class attribute of its class."""
    return cls(message)


def _wrapped(orig: BaseException, dbapi: Any) -> sa_exc.DBAPIError:
    """``orig`` wrapped exactly as SQLAlchemy wraps a driver error raised by a statement."""
    error = sa_exc.DBAPIError.instance("INSERT INTO t VALUES (1)", {}, orig, dbapi.Error)
    assert isinstance(error, sa_exc.DBAPIError)
    return error


_DISK_FULL = 'could not extend file "base/16384/16385": No space left on device'

CLASSIFIED = [
    ("disk-full", "53100", psycopg2.errors.DiskFull, psycopg.errors.DiskFull, vs.StorageFullError),
    ("deadlock", "40P01", psycopg2.errors.DeadlockDetected, psycopg.errors.DeadlockDetected,
     vs.ConcurrencyError),
    ("serialization", "40001", psycopg2.errors.SerializationFailure,
     psycopg.errors.SerializationFailure, vs.ConcurrencyError),
    # Deliberately not mapped (see vectorstore.errors): stay a plain DatabaseError.
    ("out-of-memory", "53200", psycopg2.errors.OutOfMemory, psycopg.errors.OutOfMemory,
     vs.DatabaseError),
    ("too-many-connections", "53300", psycopg2.errors.TooManyConnections,
     psycopg.errors.TooManyConnections, vs.DatabaseError),
]  # fmt: skip


@pytest.mark.parametrize(
    ("code", "psycopg2_cls", "psycopg_cls", "expected"),
    [case[1:] for case in CLASSIFIED],
    ids=[case[0] for case in CLASSIFIED],
)
@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_driver_errors_are_classified_by_sqlstate(
    driver: str,
    code: str,
    psycopg2_cls: type[psycopg2.Error],
    psycopg_cls: type[psycopg.Error],
    expected: type[vs.DatabaseError],
) -> None:
    if driver == "psycopg2":
        orig: BaseException = _psycopg2_error(psycopg2_cls, code, _DISK_FULL)
        wrapped = _wrapped(orig, psycopg2)
    else:
        orig = _psycopg_error(psycopg_cls, _DISK_FULL)
        wrapped = _wrapped(orig, psycopg)
    assert isinstance(wrapped, sa_exc.OperationalError)  # what SQLAlchemy makes of them

    for raised in (wrapped, orig):  # through SQLAlchemy, and raw (the COPY path)
        error = translate_db_error(raised, "bulk_add in collection 'docs'")
        assert type(error) is expected
        assert error.sqlstate == code
        assert error.retryable is (expected is vs.ConcurrencyError)
        with pytest.raises(expected) as caught, db_errors("bulk_add"):
            raise raised
        assert caught.value.__cause__ is raised
    if expected is vs.StorageFullError:
        assert "No space left on device" in str(error)
        assert "(SQLSTATE 53100)" in str(error)


def _closed() -> sa_exc.DBAPIError:
    return _wrapped(psycopg2.InterfaceError("connection already closed"), psycopg2)


def _rollback_fails_after(lost: vs.ConnectionLostError) -> None:
    try:
        raise lost
    except vs.ConnectionLostError:
        raise _closed() from None  # a ROLLBACK on the dead connection, as SQLAlchemy raises it


def test_a_loss_reported_again_by_the_rollback_keeps_the_first_reason() -> None:
    """The failed cleanup of a lost connection does not replace the error that says why."""
    lost = vs.ConnectionLostError("bulk_add failed: terminating connection", sqlstate="57P01")
    with pytest.raises(vs.ConnectionLostError) as caught, db_errors("bulk_add"):
        _rollback_fails_after(lost)
    assert caught.value is lost


def test_a_loss_the_caller_was_already_handling_is_not_substituted() -> None:
    """A retry inside ``except ConnectionLostError`` that fails reports its own failure."""
    lost = vs.ConnectionLostError("add failed: terminating connection", sqlstate="57P01")
    try:
        raise lost
    except vs.ConnectionLostError:
        with pytest.raises(vs.ConnectionLostError) as again, db_errors("retry"):
            raise _closed() from None
    assert again.value is not lost
    assert "connection already closed" in str(again.value)


# -- a backend ended in the middle of a COPY ------------------------------------------------
def _copy_records(admin: Engine, pid: int, *, terminate_at: int, total: int) -> Iterator[Any]:
    """``total`` records; before ``terminate_at``, end backend ``pid`` once its COPY has data."""
    vector = np.ones(DIM, dtype=np.float32).tolist()
    for i in range(total):
        if i == terminate_at:
            _wait_until(
                admin,
                "SELECT 1 FROM pg_stat_progress_copy WHERE pid = :pid AND bytes_processed > 0",
                {"pid": pid},
            )
            with admin.connect() as conn:
                # Returns once the backend has exited.
                assert conn.execute(
                    text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}
                ).scalar_one()
        yield {"text": f"document {i}", "external_id": f"d{i}", "embedding": vector}


@pytest.mark.faults
def test_a_backend_ended_mid_copy_reports_the_servers_reason_and_prints_nothing(
    any_driver_url: URL, admin: Engine, capfd: pytest.CaptureFixture[str]
) -> None:
    driver = any_driver_url.get_driver_name()
    # One pooled connection: the COPY runs on the backend whose pid is read here.
    engine = vs.make_engine(any_driver_url, pool_size=1, max_overflow=0)
    try:
        repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
            engine, collection="copy", embedding_model="external"
        )
        repo.add("before", embedding=np.ones(DIM, dtype=np.float32))
        with engine.connect() as conn:
            pid = _pid(conn)
        capfd.readouterr()
        with pytest.raises(vs.ConnectionLostError) as caught:
            repo.bulk_add(
                _copy_records(admin, pid, terminate_at=3_000, total=10_000), chunk_rows=1_000
            )
        out, err = capfd.readouterr()
        assert err == ""  # psycopg2 printed the server's error and a SystemError here
        assert out == ""
        # What PyErr_Print records about what it printed is not left behind.
        assert not isinstance(getattr(sys, "last_value", None), SystemError)
        message = str(caught.value)
        assert "bulk_add" in message
        # What the failed ROLLBACK on the dead connection says, per driver.
        assert "connection already closed" not in message
        assert "the connection is lost" not in message
        if driver == "psycopg2":
            # psycopg2 received the server's FATAL message: its reason and SQLSTATE.
            assert "terminating connection due to administrator command" in message
            assert caught.value.sqlstate == "57P01"
        assert _count(engine) == 1  # none of the COPY survived
        repo.add("after", embedding=np.ones(DIM, dtype=np.float32))  # the pool recovered
        assert _count(engine) == 2
    finally:
        engine.dispose()
