"""A FastAPI app that stores and searches documents with vectorstore's async API.

Run it (the embedded server and the real model by default)::

    uvicorn examples.fastapi_app:app

    curl -X POST localhost:8000/documents -H 'content-type: application/json' \\
         -d '{"text": "a cat on the mat", "metadata": {"kind": "pet"}}'
    curl 'localhost:8000/search?q=kitten&k=5&where=kind=pet'

Design decisions:

* **App factory and lifespan.**  :func:`create_app` builds nothing; the
  lifespan creates the AsyncEngine (and runs the migrations) at start-up and
  disposes of it at shutdown.  The embedder is made once per app.
* **An AsyncSession per request, injected.**  :func:`get_session` is a
  dependency that opens a session for the request and closes it afterwards,
  rolling back what the route did not commit; :func:`get_repository` binds an
  :class:`~vectorstore.AsyncDocumentRepository` to it.  The repository never
  commits: the route does (``await session.commit()``) after a write.
* **Nothing blocks the loop.**  The repository embeds texts in a worker
  thread and runs its SQL through the async driver (see ``docs/async.md``).
* **Errors are JSON with the right status**, as in the Flask example: bad
  input 400, missing 404, duplicate external id 409, database down 503.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import vectorstore as vs

__all__ = ["app", "create_app", "get_repository", "get_session"]

MAX_K = 100
log = logging.getLogger(__name__)


def create_app(
    url: Any = None,
    *,
    collection: str = "documents",
    embedder: vs.Embedder | None = None,
    migrate: bool = True,
) -> FastAPI:
    """Build the app; the engine is created by its lifespan.

    Args:
        url: the database (``postgresql+asyncpg://`` or ``postgresql+psycopg://``);
            default: ``VECTORSTORE_DATABASE_URL``, else the embedded server.
        collection: the collection the routes use.
        embedder: default the real all-MiniLM-L6-v2 (loaded on first use).
        migrate: run the migrations at start-up.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = vs.make_async_engine(url)
        if migrate:
            # alembic on the async engine: its sync API through run_sync (alembic's recipe).
            async with engine.begin() as conn:
                await conn.run_sync(vs.migrate)
        app.state.engine = engine
        app.state.sessions = async_sessionmaker(engine, expire_on_commit=False)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(title="vectorstore example", lifespan=lifespan)
    app.state.collection = collection
    app.state.embedder = embedder or vs.SentenceTransformerEmbedder()
    _register_errors(app)
    from .routes import router

    app.include_router(router)
    return app


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """This request's AsyncSession (closed after the response; uncommitted work rolled back)."""
    async with request.app.state.sessions() as session:
        yield session


def get_repository(
    request: Request, session: AsyncSession
) -> vs.AsyncDocumentRepository[vs.Document]:
    """A repository bound to this request's session."""
    state = request.app.state
    return vs.AsyncDocumentRepository(session, collection=state.collection, embedder=state.embedder)


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": kind, "message": message}, status_code=status)


def _register_errors(app: FastAPI) -> None:
    async def bad_input(_: Request, exc: Exception) -> JSONResponse:
        return _error(400, type(exc).__name__, str(exc))

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return _error(404, type(exc).__name__, str(exc))

    async def conflict(_: Request, exc: Exception) -> JSONResponse:
        return _error(409, "ConflictError", str(exc))

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        # The driver's message can name hosts and sockets: keep it in the log only.
        log.warning("database unavailable: %s", exc)
        return _error(503, "DatabaseUnavailable", "the database cannot be reached; retry later")

    app.add_exception_handler(vs.ValidationError, bad_input)
    app.add_exception_handler(json.JSONDecodeError, bad_input)
    app.add_exception_handler(vs.DocumentNotFoundError, not_found)
    app.add_exception_handler(vs.CollectionNotFoundError, not_found)
    app.add_exception_handler(vs.ConflictError, conflict)
    app.add_exception_handler(vs.ConnectionLostError, unavailable)
    app.add_exception_handler(vs.ServerError, unavailable)


def __getattr__(name: str) -> Any:
    # ``uvicorn examples.fastapi_app:app``: built on first access, never at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
