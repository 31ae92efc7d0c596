"""Fixtures of the fault suite: one dedicated, killable server per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

import vectorstore as vs
from tests._dedicated import dedicated_server


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[vs.EmbeddedServer]:
    """A dedicated embedded server for this module; tests may SIGKILL it."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    with dedicated_server(name) as srv:
        yield srv


@pytest.fixture
def clean_server(server: vs.EmbeddedServer) -> vs.EmbeddedServer:
    """The module's server, running, with vectorstore's tables emptied."""
    server.start()
    engine = vs.make_engine(server.url())
    try:
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE vectorstore_documents, vectorstore_collections CASCADE"))
    finally:
        engine.dispose()
    return server
