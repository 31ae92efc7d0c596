"""Fixtures of the async tests: each test database through each async driver.

Imported by the async test modules (``from tests._aio import *``).  The tests
run on asyncio through anyio's pytest plugin (``@pytest.mark.anyio``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import vectorstore as vs
from tests.conftest import url_for

ASYNC_DRIVERS = ["asyncpg", "psycopg"]

__all__ = [
    "ASYNC_DRIVERS",
    "anyio_backend",
    "async_engine",
    "async_repo",
    "async_session",
    "async_url",
    "standalone_repo",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=ASYNC_DRIVERS)
def async_url(postgresql: Any, request: pytest.FixtureRequest) -> URL:
    """The test database through each async driver in turn."""
    return url_for(postgresql.info.dbname, request.param)


@pytest.fixture
async def async_engine(async_url: URL) -> AsyncIterator[AsyncEngine]:
    engine = vs.make_async_engine(async_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def async_session(async_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(async_engine) as session:
        yield session
        await session.rollback()


@pytest.fixture
def async_repo(
    async_session: AsyncSession, embedder: vs.HashingTestEmbedder
) -> vs.AsyncDocumentRepository[vs.Document]:
    return vs.AsyncDocumentRepository(async_session, collection="test", embedder=embedder)


@pytest.fixture
def standalone_repo(
    async_engine: AsyncEngine, embedder: vs.HashingTestEmbedder
) -> vs.AsyncDocumentRepository[vs.Document]:
    return vs.AsyncDocumentRepository.standalone(
        async_engine, collection="test", embedder=embedder
    )
