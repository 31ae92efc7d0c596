"""The async repository keeps the sync vocabulary of changes and filter-scoped reads.

Both async drivers (asyncpg, psycopg), bound to an AsyncSession (never
committed) and standalone.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncSession

import vectorstore as vs
from tests._aio import *  # noqa: F403 - the async fixtures
from tests.conftest import table_count

pytestmark = pytest.mark.anyio

ARepo = vs.AsyncDocumentRepository[vs.Document]


async def _seed(repo: ARepo, n: int) -> list[vs.Document]:
    return [
        await repo.add(f"text {i}", metadata={"i": i, "odd": bool(i % 2)}, external_id=f"e{i}")
        for i in range(n)
    ]


@pytest.mark.parametrize("bound", [True, False], ids=["session", "standalone"])
async def test_the_async_vocabulary(bound: bool, async_repo: ARepo, standalone_repo: ARepo) -> None:
    repo = async_repo if bound else standalone_repo
    docs = await _seed(repo, 7)
    assert await repo.count() == 7
    assert await repo.count({"odd": True}) == 3
    assert await repo.exists({"i": 6})
    assert not await repo.exists({"i": 60})
    got = await repo.get_many([docs[2].id], external_ids=["e0"])
    assert [d.external_id for d in got] == ["e2", "e0"]
    updated = await repo.update("e1", metadata={"tier": "gold"}, merge=True)
    assert updated.metadata_ == {"i": 1, "odd": True, "tier": "gold"}
    moved = await repo.update(docs[3].id, text="a brand new text")
    assert moved.text == "a brand new text"
    hits = await repo.nearest("a brand new text", k=1, strategy="exact")
    assert hits[0].document.id == docs[3].id
    assert await repo.update_where({"odd": True}, merge_metadata={"seen": 1}, batch_size=2) == 3
    assert await repo.count({"seen": 1}) == 3
    page = await repo.list(order_by="-id", limit=4)
    assert [d.id for d in page] == [d.id for d in docs[::-1][:4]]
    rest = await repo.list(order_by="-id", limit=4, after=page.next_after)
    assert [d.id for d in rest] == [d.id for d in docs[::-1][4:]]
    assert rest.next_after is None
    streamed = [d.id async for d in repo.iterate({"odd": False}, chunk=2)]
    assert streamed == [d.id for d in docs if d.metadata_["i"] % 2 == 0]
    assert await repo.delete_where({"odd": False}, batch_size=3) == 4
    assert await repo.count() == 3
    with pytest.raises(vs.DocumentNotFoundError):
        await repo.update(10**9, metadata={})
    with pytest.raises(vs.FilterError):
        await repo.delete_where({"i": {"$nope": 1}})
    with pytest.raises(vs.ValidationError):
        await repo.update_where(None, set_metadata={})
    assert await repo.count() == 3


async def test_async_changes_in_a_host_session_are_not_committed(
    async_repo: ARepo, async_session: AsyncSession, engine: Engine
) -> None:
    await _seed(async_repo, 3)
    await async_session.commit()
    assert await async_repo.update_where({}, set_metadata={"x": 1}) == 3
    assert await async_repo.delete_where({"x": 1}) == 3
    assert table_count(engine) == 3  # another connection still sees the committed rows
    await async_session.rollback()
    assert await async_repo.count({"x": 1}) == 0
