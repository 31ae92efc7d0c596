"""The embedded server: life cycle, reuse, and the permission policy under root."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import vectorstore as vs

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the policy under test is root's")


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temp folder the server's OS user can enter (tmp_path's parents are 0700)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="vs-server-test-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def test_start_stop_restart_keeps_data(open_tmp: Path) -> None:
    server = vs.EmbeddedServer(open_tmp / "pgdata")
    assert server.status().running is False
    url = server.start()
    try:
        status = server.status()
        assert status.running
        assert status.initialized
        assert status.pid is not None
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE kept (x int)"))
            conn.execute(text("INSERT INTO kept VALUES (42)"))
            version = conn.execute(
                text("SELECT default_version FROM pg_available_extensions WHERE name='vector'")
            ).scalar_one()
        engine.dispose()
        assert tuple(int(p) for p in version.split(".")) >= (0, 8, 0)
        assert server.start() == url  # a running server is reused
        assert server.stop() is True
        assert server.status().running is False
        assert server.stop() is False
        engine = create_engine(server.start())
        with engine.connect() as conn:
            assert conn.execute(text("SELECT x FROM kept")).scalar_one() == 42
        engine.dispose()
    finally:
        server.stop()


@root_only
def test_default_data_dir_for_root_is_outside_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = {**os.environ, "HOME": str(home)}
    env.pop("VECTORSTORE_DATA_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", "from vectorstore.server import default_data_dir as d; print(d())"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert not out.startswith(str(home))
    assert out.startswith("/var/lib/vectorstore")


@root_only
def test_a_closed_home_folder_is_refused_not_loosened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)
    data_dir = home / ".local" / "share" / "vectorstore" / "pgdata"
    before = stat.S_IMODE(home.stat().st_mode)
    with pytest.raises(vs.ServerError, match="cannot enter"):
        vs.EmbeddedServer(data_dir).start()
    assert stat.S_IMODE(home.stat().st_mode) == before == 0o700


@root_only
def test_starting_never_widens_parent_permissions(open_tmp: Path) -> None:
    parent = open_tmp / "apps"
    parent.mkdir(mode=0o751)
    parent.chmod(0o751)
    server = vs.EmbeddedServer(parent / "pgdata")
    server.start()
    try:
        assert stat.S_IMODE(parent.stat().st_mode) == 0o751
        assert stat.S_IMODE((parent / "pgdata").stat().st_mode) == 0o700
    finally:
        server.stop()
