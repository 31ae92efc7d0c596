"""The FastAPI example through httpx.AsyncClient on the ASGI app, against a real database.

The app's lifespan (engine start and stop) runs around each test, as a server
would run it; both async drivers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import URL, Engine

import vectorstore as vs
from examples.fastapi_app import create_app
from tests.conftest import table_count

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["asyncpg", "psycopg"])
async def app(
    vectorstore_url: URL, vectorstore_embedder: vs.HashingTestEmbedder, request: Any
) -> AsyncIterator[FastAPI]:
    app = create_app(
        vectorstore_url.set(drivername=f"postgresql+{request.param}"),
        embedder=vectorstore_embedder,
    )
    async with app.router.lifespan_context(app):
        yield app
    assert app.state.engine.sync_engine.pool.checkedout() == 0


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        yield client


async def test_add_then_get_then_search(
    client: httpx.AsyncClient, vectorstore_engine: Engine
) -> None:
    created = await client.post(
        "/documents", json={"text": "the cat sleeps on the mat", "metadata": {"kind": "pet"},
                            "external_id": "cat"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    await client.post("/documents", json={"text": "bond yields rose", "metadata": {"kind": "fin"}})
    assert table_count(vectorstore_engine) == 2  # the route committed
    doc = (await client.get(f"/documents/{created.json()['id']}")).json()
    assert doc["external_id"] == "cat"
    found = (await client.get("/search", params={"q": "the cat sleeps", "k": 1})).json()
    assert found["results"][0]["external_id"] == "cat"
    pets = (await client.get("/search", params={"q": "anything", "where": "kind=fin"})).json()
    assert [r["text"] for r in pets["results"]] == ["bond yields rose"]
    fused = (await client.get("/search", params={"q": "cat", "hybrid": "true"})).json()
    assert fused["strategy"] == "hybrid"


async def test_bulk_and_conflicts(client: httpx.AsyncClient, vectorstore_engine: Engine) -> None:
    docs = [{"text": f"doc {i}", "external_id": f"d{i}"} for i in range(20)]
    done = await client.post("/documents/bulk", json=docs)
    assert done.json() == {"inserted": 20, "skipped": 0, "updated": 0, "embedded": 20}
    again = await client.post("/documents/bulk", json=docs[:3])
    assert again.status_code == 409
    skipped = await client.post("/documents/bulk", params={"on_conflict": "skip"}, json=docs[:3])
    assert skipped.json()["skipped"] == 3
    assert table_count(vectorstore_engine) == 20


async def test_errors_are_json_with_the_right_status(
    client: httpx.AsyncClient, vectorstore_engine: Engine
) -> None:
    assert (await client.post("/documents", json={"text": ""})).status_code == 400
    assert (await client.get("/search", params={"q": "x", "k": 0})).status_code == 400
    assert (await client.get("/search", params={"q": "x", "filter": "{bad"})).status_code == 400
    assert (await client.get("/search", params={"q": "x", "filter": '{"a": {"$re": 1}}'})
            ).status_code == 400  # fmt: skip
    missing = await client.get("/documents/12345")
    assert missing.status_code == 404
    assert missing.json()["error"] == "DocumentNotFoundError"
    await client.post("/documents", json={"text": "one", "external_id": "x"})
    dup = await client.post("/documents", json={"text": "two", "external_id": "x"})
    assert dup.status_code == 409
    assert table_count(vectorstore_engine) == 1


async def test_concurrent_requests_share_the_pool(
    client: httpx.AsyncClient, vectorstore_engine: Engine
) -> None:
    import asyncio

    replies = await asyncio.gather(
        *(client.post("/documents", json={"text": f"req {i}"}) for i in range(30))
    )
    assert [r.status_code for r in replies] == [201] * 30
    searches = await asyncio.gather(
        *(client.get("/search", params={"q": f"req {i}", "k": 1}) for i in range(30))
    )
    assert [s.json()["results"][0]["text"] for s in searches] == [f"req {i}" for i in range(30)]
    assert table_count(vectorstore_engine) == 30
