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
``vectorstore_url``            a fresh migrated database for this test (its URL; ``str()``
                               of it is the full connection string, for tools that want one)
``vectorstore_load``           session: what else goes into the template database, once
                               (override it: the app's own schema, see below)
``vectorstore_engine``         an Engine bound to it (disposed after the test)
``vectorstore_session``        a Session on it (rolled back and closed after the test)
``vectorstore_embedder``       the deterministic :class:`~vectorstore.HashingTestEmbedder`
``vectorstore_repo``           a :class:`~vectorstore.DocumentRepository` on the session,
                               collection ``"test"``, with the test embedder
=============================  =====================================================

The app's own schema, once per session: override ``vectorstore_load`` in a
``conftest.py``.  Each item runs once on the template database, after
vectorstore's migrations, so every test's copy has it::

    @pytest.fixture(scope="session")
    def vectorstore_load():
        return [
            AppBase.metadata.create_all,      # a callable receiving the template's Engine
            "alembic.ini",                    # or the app's alembic config: upgrade head
        ]

An alembic config (a path to an ``.ini`` file, or an ``alembic.config.Config``)
is upgraded to head with the template's URL both as ``-x url=...`` and as
``sqlalchemy.url`` (percent signs escaped), whichever the app's ``env.py`` reads.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sqlalchemy import URL, Engine
    from sqlalchemy.orm import Session

    from .embedders import HashingTestEmbedder
    from .repository import DocumentRepository

__all__ = [
    "Loader",
    "vectorstore_embedder",
    "vectorstore_engine",
    "vectorstore_load",
    "vectorstore_repo",
    "vectorstore_server_url",
    "vectorstore_session",
    "vectorstore_url",
]

ENV_TEST_URL = "VECTORSTORE_TEST_DATABASE_URL"

#: What ``vectorstore_load`` may list: a callable receiving the template's Engine,
#: or an alembic config (a path to its ``.ini`` file, or an ``alembic.config.Config``).
Loader = Any

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
def _vectorstore_template(
    vectorstore_server_url: URL, vectorstore_load: Sequence[Loader]
) -> Iterator[str]:
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
        _load_template(vectorstore_server_url.set(database=name), vectorstore_load)
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
        yield _plain_string_url(vectorstore_server_url.set(database=name))
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


# -- the app's own schema in the template database (vectorstore_load) ------------------
@pytest.fixture(scope="session")
def vectorstore_load() -> Sequence[Loader]:
    """What runs once on the template database after vectorstore's migrations (override it)."""
    return ()


def _load_template(url: URL, loaders: Sequence[Loader]) -> None:
    """Run each loader of ``vectorstore_load`` on the template database, in order."""
    if not loaders:
        return
    from alembic.config import Config

    from .config import make_engine
    from .errors import ConfigurationError

    engine = make_engine(url)
    try:
        for loader in loaders:
            if isinstance(loader, (str, Path, Config)):
                _alembic_upgrade(loader, url)
            elif callable(loader):
                loader(engine)
            else:
                raise ConfigurationError(
                    f"vectorstore_load: {loader!r} is neither a callable taking an Engine "
                    "nor an alembic config"
                )
    finally:
        engine.dispose()


def _alembic_upgrade(config: Any, url: URL) -> None:
    """``alembic upgrade head`` of an app's config on ``url`` (as ``-x url`` and sqlalchemy.url)."""
    import argparse

    from alembic import command
    from alembic.config import Config

    from .alembic import set_url
    from .errors import ConfigurationError

    if not isinstance(config, Config):
        path = Path(config)
        if not path.is_file():
            raise ConfigurationError(f"vectorstore_load: no alembic config at {path}")
        config = Config(str(path))
    rendered = url.render_as_string(hide_password=False)
    config.cmd_opts = argparse.Namespace(x=[f"url={rendered}"])
    set_url(config, url)
    command.upgrade(config, "head")


# -- vectorstore_url as a plain string -------------------------------------------------
def _plain_string_url(url: URL) -> URL:
    """``url``, whose ``str()`` is the whole connection string (password included).

    SQLAlchemy masks the password in ``str(url)``; a test database's URL is
    handed to tools (a subprocess, Django's settings, ``alembic -x url=``) that
    need the real one.  ``repr()`` still masks it, so assertion messages do not
    show it.
    """
    cls: Any = _test_url_class()
    plain: URL = cls(*url)
    return plain


@functools.cache
def _test_url_class() -> type[Any]:
    from sqlalchemy import URL as SAURL

    class TestDatabaseURL(SAURL):
        __slots__ = ()

        def __str__(self) -> str:
            return self.render_as_string(hide_password=False)

    return TestDatabaseURL
