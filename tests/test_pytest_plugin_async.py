"""The pytest plugin's async fixtures, run the way users run them (pytest in their project)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.conftest import url_for
from tests.test_pytest_plugin import run_pytest, throwaway_databases

USER_TESTS = '''
import pytest

import vectorstore as vs

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_async_repository_fixture(async_vectorstore_repo, async_vectorstore_session):
    await async_vectorstore_repo.add("a cat on the mat")
    await async_vectorstore_repo.add("bond yields rose")
    hits = await async_vectorstore_repo.nearest("cat", k=1)
    assert hits[0].document.text == "a cat on the mat"
    assert async_vectorstore_session.bind.dialect.driver == "asyncpg"


async def test_each_test_gets_a_fresh_database(async_vectorstore_repo):
    assert await async_vectorstore_repo.count() == 0


class TestOnPsycopgAsync:
    @pytest.fixture
    def vectorstore_async_driver(self):
        return "psycopg"

    async def test_the_driver_can_be_chosen(self, async_vectorstore_repo, async_vectorstore_engine):
        assert async_vectorstore_engine.dialect.driver == "psycopg"
        await async_vectorstore_repo.bulk_add(["one", "two"])
        assert await async_vectorstore_repo.count() == 2
'''


def test_async_fixtures_work_and_clean_up(tmp_path: Path) -> None:
    (tmp_path / "test_user_async_app.py").write_text(textwrap.dedent(USER_TESTS))
    before = throwaway_databases()
    server = url_for("postgres").render_as_string(hide_password=False)
    done = run_pytest(tmp_path, "--vectorstore-url", server, "-W", "error")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
    assert throwaway_databases() <= before
    listed = run_pytest(tmp_path, "--fixtures")
    for name in ("async_vectorstore_repo", "async_vectorstore_session",
                 "async_vectorstore_engine", "vectorstore_async_driver"):  # fmt: skip
        assert name in listed.stdout
