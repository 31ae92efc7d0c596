"""The pytest plugin's async fixtures (loaded by :mod:`vectorstore.pytest_plugin`).

For apps on the async API.  The fixtures are ``async def``: the tests that
use them run under an async test plugin, e.g. anyio's (installed with
anyio; mark the tests ``@pytest.mark.anyio``) or pytest-asyncio::

    import pytest

    @pytest.mark.anyio
    async def test_search(async_vectorstore_repo):
        await async_vectorstore_repo.add("a cat on the mat")
        hits = await async_vectorstore_repo.nearest("cat", k=1)
        assert hits[0].document.text == "a cat on the mat"

Like the sync fixtures they import vectorstore only when a test asks for one,
and each test gets its own freshly migrated database (``vectorstore_url``).

=================================  =================================================
``vectorstore_async_driver``       ``"asyncpg"``; override it (or parametrize it) in a
                                   conftest.py to test on ``"psycopg"`` (async)
``async_vectorstore_engine``       an AsyncEngine on this test's database (disposed
                                   after the test)
``async_vectorstore_session``      an AsyncSession on it (rolled back and closed after)
``async_vectorstore_repo``         an :class:`~vectorstore.AsyncDocumentRepository`
                                   on the session: collection ``"test"``, the test
                                   embedder
=================================  =================================================
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sqlalchemy import URL
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

    from .aio import AsyncDocumentRepository
    from .embedders import HashingTestEmbedder

__all__ = [
    "async_vectorstore_engine",
    "async_vectorstore_repo",
    "async_vectorstore_session",
    "vectorstore_async_driver",
]


@pytest.fixture
def vectorstore_async_driver() -> str:
    """The async driver of the async fixtures: ``"asyncpg"`` (or ``"psycopg"``)."""
    return "asyncpg"


@pytest.fixture
async def async_vectorstore_engine(
    vectorstore_url: URL, vectorstore_async_driver: str
) -> AsyncIterator[AsyncEngine]:
    """An AsyncEngine on this test's database."""
    from .aio import make_async_engine

    engine = make_async_engine(
        vectorstore_url.set(drivername=f"postgresql+{vectorstore_async_driver}")
    )
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def async_vectorstore_session(
    async_vectorstore_engine: AsyncEngine,
) -> AsyncIterator[AsyncSession]:
    """An AsyncSession on this test's database; rolled back after the test."""
    from sqlalchemy.ext.asyncio import AsyncSession

    async with AsyncSession(async_vectorstore_engine) as session:
        yield session
        await session.rollback()


@pytest.fixture
def async_vectorstore_repo(
    async_vectorstore_session: AsyncSession, vectorstore_embedder: HashingTestEmbedder
) -> AsyncDocumentRepository[Any]:
    """An async repository on the test session: collection ``"test"``, the test embedder."""
    from .aio import AsyncDocumentRepository

    return AsyncDocumentRepository(
        async_vectorstore_session, collection="test", embedder=vectorstore_embedder
    )
