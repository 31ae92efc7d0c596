"""pytest fixtures for apps that use vectorstore: a throwaway migrated database per test.

The design card says apps call the repository in their tests, against a real
PostgreSQL, not a mock.  This plugin makes that one fixture away::

    def test_search_finds_the_added_text(vectorstore_repo):
        vectorstore_repo.add("a cat on the mat")
        assert vectorstore_repo.nearest("cat", k=1)[0].document.text == "a cat on the mat"

Design decisions:

* **Loading it does nothing.**  The plugin is registered as a ``pytest11``
  entry point, so pytest loads it in every project that has vectorstore
  installed; importing it therefore only defines fixtures and one command-line
  option.  No server starts, no database is created and vectorstore itself is
  not imported until a test asks for one of the fixtures.
* **Migrate once, clone per test.**  The migrations run once per pytest
  session into a template database; each test gets ``CREATE DATABASE ...
  TEMPLATE`` (a file copy, milliseconds) and the database is dropped after the
  test, so tests are isolated even when they commit.
* **Which server:** ``--vectorstore-url URL``, else ``VECTORSTORE_TEST_DATABASE_URL``,
  else the embedded server (``VECTORSTORE_DATA_DIR`` or the platform default).
  The URL names a maintenance database on a server where the user may create
  databases; test databases are created beside it and dropped afterwards.

Fixtures (all prefixed ``vectorstore_`` so they never shadow an app's own):

=============================  =====================================================
``vectorstore_server_url``     session: the server's maintenance URL (override it in
                               a conftest.py to point elsewhere)
``vectorstore_url``            a fresh migrated database for this test (its URL)
``vectorstore_engine``         an Engine bound to it (disposed after the test)
``vectorstore_session``        a Session on it (rolled back and closed after the test)
``vectorstore_embedder``       the deterministic :class:`~vectorstore.HashingTestEmbedder`
``vectorstore_repo``           a :class:`~vectorstore.DocumentRepository` on the session,
                               collection ``"test"``, with the test embedder
=============================  =====================================================
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sqlalchemy import URL, Engine
    from sqlalchemy.orm import Session

    from .embedders import HashingTestEmbedder
    from .repository import DocumentRepository

__all__ = [
    "vectorstore_embedder",
    "vectorstore_engine",
    "vectorstore_repo",
    "vectorstore_server_url",
    "vectorstore_session",
    "vectorstore_url",
]

ENV_TEST_URL = "VECTORSTORE_TEST_DATABASE_URL"

# -- async fixtures (async_vectorstore_repo, ...): their own module, see its docstring --
from .pytest_async import (  # noqa: E402
    async_vectorstore_engine,
    async_vectorstore_repo,
    async_vectorstore_session,
    vectorstore_async_driver,
)

__all__ += [
    "async_vectorstore_engine",
    "async_vectorstore_repo",
    "async_vectorstore_session",
    "vectorstore_async_driver",
]
# -- end of the async fixtures -----------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vectorstore")
    group.addoption(
        "--vectorstore-url",
        default=None,
        metavar="URL",
        help=f"PostgreSQL server for vectorstore's test databases (default: ${ENV_TEST_URL}, "
        "else the embedded server)",
    )


def _admin_engine(server_url: URL) -> Engine:
    from sqlalchemy import create_engine, pool

    return create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _drop_database(server_url: URL, name: str) -> None:
    admin = _admin_engine(server_url)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def vectorstore_server_url(request: pytest.FixtureRequest) -> URL:
    """The maintenance URL of the server that holds the throwaway test databases."""
    from .config import normalize_url
    from .server import EmbeddedServer

    configured = request.config.getoption("--vectorstore-url") or os.environ.get(ENV_TEST_URL)
    if configured:
        return normalize_url(configured)
    return EmbeddedServer().start().set(database="postgres")


@pytest.fixture(scope="session")
def _vectorstore_template(vectorstore_server_url: URL) -> Iterator[str]:
    """A database migrated once per session; each test's database is a copy of it."""
    from .schema.migrate import migrate

    name = f"vectorstore_tpl_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine(vectorstore_server_url)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {_quote(name)}")
    finally:
        admin.dispose()
    try:
        migrate(vectorstore_server_url.set(database=name))
        yield name
    finally:
        _drop_database(vectorstore_server_url, name)


@pytest.fixture
def vectorstore_url(vectorstore_server_url: URL, _vectorstore_template: str) -> Iterator[URL]:
    """URL of a fresh database with vectorstore's schema, dropped after the test."""
    name = f"vectorstore_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(vectorstore_server_url)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f"CREATE DATABASE {_quote(name)} TEMPLATE {_quote(_vectorstore_template)}"
            )
    finally:
        admin.dispose()
    try:
        yield vectorstore_server_url.set(database=name)
    finally:
        _drop_database(vectorstore_server_url, name)


@pytest.fixture
def vectorstore_engine(vectorstore_url: URL) -> Iterator[Engine]:
    """An Engine on this test's database."""
    from .config import make_engine

    engine = make_engine(vectorstore_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def vectorstore_session(vectorstore_engine: Engine) -> Iterator[Session]:
    """A Session on this test's database; rolled back after the test."""
    from sqlalchemy.orm import Session

    with Session(vectorstore_engine) as session:
        yield session
        session.rollback()


@pytest.fixture
def vectorstore_embedder() -> HashingTestEmbedder:
    """The deterministic, torch-free test embedder (384 dimensions)."""
    from .embedders import HashingTestEmbedder

    return HashingTestEmbedder()


@pytest.fixture
def vectorstore_repo(
    vectorstore_session: Session, vectorstore_embedder: HashingTestEmbedder
) -> DocumentRepository[Any]:
    """A repository on the test session: collection ``"test"``, the test embedder."""
    from .repository import DocumentRepository

    return DocumentRepository(vectorstore_session, collection="test", embedder=vectorstore_embedder)
