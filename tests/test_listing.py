"""Filter-scoped reads: count, exists, get_many, list (keyset pages) and iterate.

Both drivers, bound to a caller's Session and standalone.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

import vectorstore as vs
from tests._changes import *  # noqa: F403 - the fixtures
from tests._changes import _seed

Repo = vs.DocumentRepository[vs.Document]


def test_count_and_exists_with_filters(any_repo: Repo) -> None:
    assert any_repo.count() == 0
    assert not any_repo.exists()
    _seed(any_repo, 10)
    assert any_repo.count() == 10
    assert any_repo.count({"kind": "odd"}) == 5
    assert any_repo.count({"i": {"$lt": 3}}) == 3
    assert any_repo.count(vs.Document.external_id == "e4") == 1
    assert any_repo.exists()
    assert any_repo.exists({"i": 9})
    assert not any_repo.exists({"i": 10})
    with pytest.raises(vs.FilterError, match=r"\$bad"):
        any_repo.count({"i": {"$bad": 1}})
    with pytest.raises(vs.FilterError):
        any_repo.exists({"i": {"$in": "not a list"}})


def test_get_many_by_ids_and_external_ids_in_the_order_asked(any_repo: Repo) -> None:
    docs = _seed(any_repo, 5)
    got = any_repo.get_many([docs[3].id, 10**9, docs[1].id], external_ids=["e4", "zz", "e3"])
    assert [d.external_id for d in got] == ["e3", "e1", "e4"]  # e3 once, at its first place
    assert [d.id for d in any_repo.get_many(external_ids=["e0"])] == [docs[0].id]
    assert any_repo.get_many() == []
    with pytest.raises(vs.ValidationError):
        any_repo.get_many(["1"])  # type: ignore[list-item]


@pytest.mark.parametrize("order_by", ["id", "-id", "created_at", "-created_at"])
def test_list_pages_cover_every_row_once_in_order(any_repo: Repo, order_by: str) -> None:
    _seed(any_repo, 11)
    seen: list[vs.Document] = []
    after = None
    pages = 0
    while True:
        page = any_repo.list(order_by=order_by, limit=3, after=after)
        assert len(page) <= 3
        seen.extend(page)
        pages += 1
        after = page.next_after
        if after is None:
            break
    assert pages == 4
    ids = [d.id for d in seen]
    assert len(set(ids)) == 11
    keys = [(d.created_at, d.id) if "created_at" in order_by else d.id for d in seen]
    assert keys == sorted(keys, reverse=order_by.startswith("-"))


def test_list_with_a_filter_and_a_full_last_page(any_repo: Repo) -> None:
    _seed(any_repo, 10)
    page = any_repo.list({"kind": "odd"}, limit=5)
    assert [d.metadata_["i"] for d in page] == [1, 3, 5, 7, 9]
    assert page.next_after is None  # exactly the limit: no empty next page
    assert any_repo.list({"kind": "none"}).items == []


def test_list_is_stable_under_concurrent_inserts(any_repo: Repo) -> None:
    docs = _seed(any_repo, 6)
    first = any_repo.list(limit=3)
    assert [d.id for d in first] == [d.id for d in docs[:3]]
    # rows written between two pages neither shift the next page nor repeat a row
    any_repo.delete([docs[0].id])
    added = any_repo.add("written while paging", external_id="late")
    rest: list[int] = []
    after = first.next_after
    while after is not None:
        page = any_repo.list(limit=3, after=after)
        rest.extend(d.id for d in page)
        after = page.next_after
    assert rest == [d.id for d in docs[3:]] + [added.id]
    newest = any_repo.list(order_by="-id", limit=2)
    assert [d.id for d in newest] == [added.id, docs[5].id]


BAD_LISTS: list[tuple[str, dict[str, Any], str]] = [
    ("order", {"order_by": "text"}, "order_by"),
    ("limit", {"limit": 0}, "limit"),
    ("limit type", {"limit": "5"}, "limit"),
    ("cursor junk", {"after": "!!not-a-cursor"}, "cursor"),
    ("cursor type", {"after": 5}, "cursor"),
    ("filter", {"filter": {"$or": []}}, r"\$or"),
]


@pytest.mark.parametrize(("case", "kwargs", "needle"), BAD_LISTS, ids=[c[0] for c in BAD_LISTS])
def test_bad_list_arguments_are_validation_errors(
    any_repo: Repo, case: str, kwargs: dict[str, Any], needle: str
) -> None:
    _seed(any_repo, 2)
    with pytest.raises(vs.ValidationError, match=needle):
        any_repo.list(**kwargs)


def test_a_cursor_only_fits_its_own_order(any_repo: Repo) -> None:
    _seed(any_repo, 4)
    cursor = any_repo.list(limit=2).next_after
    assert cursor is not None
    with pytest.raises(vs.ValidationError, match="ordered by '-created_at'"):
        any_repo.list(order_by="-created_at", after=cursor)


def test_iterate_streams_in_chunks(any_repo: Repo, mode: str) -> None:
    docs = _seed(any_repo, 10)
    assert [d.id for d in any_repo.iterate(chunk=3)] == [d.id for d in docs]
    assert [d.metadata_["i"] for d in any_repo.iterate({"kind": "even"}, chunk=2)] == [
        0, 2, 4, 6, 8,
    ]  # fmt: skip
    assert list(any_repo.iterate({"kind": "none"})) == []
    with pytest.raises(vs.ValidationError, match="chunk"):
        any_repo.iterate(chunk=0)
    # one statement per chunk, issued only as the caller consumes
    engine = any_repo._sessions.write_engine
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "ORDER BY" in statement:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        stream = any_repo.iterate(chunk=4)
        next(stream)
        assert len(statements) == 1
        rest = list(stream)
        assert len(rest) == 9
        assert len(statements) == 3  # 4 + 4 + 2: the short chunk ends the walk
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_reads_in_a_host_session_see_its_own_uncommitted_rows(session: Session, repo: Repo) -> None:
    _seed(repo, 3)
    assert repo.count() == 3
    assert len(repo.list().items) == 3
    assert len(list(repo.iterate(chunk=2))) == 3
    session.rollback()
    assert repo.count() == 0


def test_list_defers_the_embedding_unless_asked(session: Session, repo: Repo) -> None:
    _seed(repo, 2)
    session.expunge_all()
    lean = repo.list(limit=1).items[0]
    assert "embedding" not in lean.__dict__
    full = repo.list(limit=1, with_embedding=True, after=None).items[0]
    assert len(full.embedding) == vs.DEFAULT_DIMENSION
    streamed = next(repo.iterate(with_embedding=False))
    assert streamed.text
