"""The async buffered writer: flushes by size, by age (a timer on the loop) and on exit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

import vectorstore as vs
from tests._aio import *  # noqa: F403 - the async fixtures
from tests.conftest import table_count

pytestmark = pytest.mark.anyio

ARepo = vs.AsyncDocumentRepository[vs.Document]


async def _until(condition: Any) -> None:
    """Poll a condition (never a timed assertion): up to 10 s of loop turns."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


async def test_flushes_by_size_and_on_exit(standalone_repo: ARepo, engine: Engine) -> None:
    async with standalone_repo.writer(max_rows=10, max_delay=None) as w:
        for i in range(25):
            await w.add(f"event {i}", metadata={"i": i})
        assert (w.flushes, w.pending) == (2, 5)
        assert table_count(engine) == 20
    assert table_count(engine) == 25
    assert w.inserted == 25


async def test_flushes_by_age_on_the_loop(standalone_repo: ARepo, engine: Engine) -> None:
    async with standalone_repo.writer(max_rows=1000, max_delay=0.05) as w:
        await w.add("lonely event")
        await _until(lambda: w.flushes == 1)
        assert w.pending == 0
        assert table_count(engine) == 1


async def test_many_tasks_write_every_record_once_in_order(
    standalone_repo: ARepo, engine: Engine
) -> None:
    async with standalone_repo.writer(max_rows=7, max_delay=0.01) as w:

        async def producer(n: int) -> None:
            for i in range(20):
                await w.add(f"task {n} event {i}", external_id=f"{n}:{i}")

        await asyncio.gather(*(producer(n) for n in range(12)))
    assert table_count(engine) == 240
    stored = [d.external_id for d in await standalone_repo.get_many(list(range(1, 241)))]
    for n in range(12):
        mine = [e for e in stored if e is not None and e.startswith(f"{n}:")]
        assert mine == [f"{n}:{i}" for i in range(20)]


async def test_a_failed_flush_hands_back_its_records(
    standalone_repo: ARepo, engine: Engine
) -> None:
    await standalone_repo.add("taken", external_id="dup")
    w = standalone_repo.writer(max_rows=3, max_delay=None)
    await w.add("fine", external_id="a")
    await w.add("clash", external_id="dup")
    with pytest.raises(vs.WriteError) as caught:
        await w.add("third", external_id="b")
    assert [r.external_id for r in caught.value.unwritten] == ["a", "dup", "b"]
    assert table_count(engine) == 1
    await w.close()


async def test_bad_records_and_options_are_refused(standalone_repo: ARepo) -> None:
    with pytest.raises(vs.ValidationError):
        standalone_repo.writer(max_rows=0)
    with pytest.raises(vs.ValidationError):
        standalone_repo.writer(on_conflict="merge")  # type: ignore[arg-type]
    async with standalone_repo.writer() as w:
        with pytest.raises(vs.ValidationError):
            await w.add("")
        assert w.pending == 0
    with pytest.raises(vs.WriteError):
        await w.add("after close")


async def test_a_bound_repository_writes_through_its_own_connections(
    async_repo: ARepo, async_engine: AsyncEngine, engine: Engine
) -> None:
    async with async_repo.writer(max_rows=5) as w:
        for i in range(5):
            await w.add(f"e{i}")
    assert table_count(engine) == 5  # committed, whatever the host session does
