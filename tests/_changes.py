"""Fixtures of the change and listing tests: a repository on each driver, bound or standalone.

Imported by the test modules (``from tests._changes import *``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

import vectorstore as vs

__all__ = ["any_repo", "mode"]

Repo = vs.DocumentRepository[vs.Document]


@pytest.fixture(params=["session", "standalone"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def any_repo(any_driver_url: Any, mode: str) -> Iterator[Repo]:
    """A repository on each driver, bound to a Session of ours or standalone."""
    engine = vs.make_engine(any_driver_url)
    embedder = vs.HashingTestEmbedder()
    if mode == "standalone":
        repo: Repo = vs.DocumentRepository.standalone(engine, collection="c", embedder=embedder)
        yield repo
    else:
        with Session(engine) as session:
            yield vs.DocumentRepository(session, collection="c", embedder=embedder)
            session.rollback()
    engine.dispose()


def _seed(repo: Repo, n: int = 10) -> list[vs.Document]:
    return [
        repo.add(
            f"document number {i} about {'cats' if i % 2 else 'stocks'}",
            metadata={"i": i, "kind": "odd" if i % 2 else "even", "keep": True},
            external_id=f"e{i}",
        )
        for i in range(n)
    ]
