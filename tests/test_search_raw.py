"""nearest's raw DB-API path (standalone repository, cached plan) on both drivers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import URL, Engine, create_engine, event, func, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

import vectorstore as vs
from vectorstore.query import raw as search_raw
from vectorstore.query.options import DEFAULT_EF_SEARCH, DEFAULT_FILTERED_EF_SEARCH

Repo = vs.DocumentRepository[vs.Document]
N = 600


@pytest.fixture
def loaded(any_driver_url: URL) -> Iterator[tuple[Engine, np.ndarray[Any, Any]]]:
    engine = vs.make_engine(any_driver_url, pool_size=1, max_overflow=0)
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="raw", embedding_model="x")
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((N, 384)).astype(np.float32)
    repo.bulk_add(
        [f"row {i}" for i in range(N)],
        embeddings=vectors,
        metadata=[{"tenth": i % 10, "half": i % 2, "name": f"n'{i}"} for i in range(N)],
        external_ids=[str(i) for i in range(N)],
    )
    with engine.begin() as conn:
        conn.execute(text("ANALYZE vectorstore_documents"))
    yield engine, vectors
    engine.dispose()


def _same(a: vs.ResultSet[Any], b: vs.ResultSet[Any]) -> None:
    assert a.strategy == b.strategy
    assert a.settings == b.settings
    assert [h.document.id for h in a] == [h.document.id for h in b]
    assert np.allclose([h.distance for h in a], [h.distance for h in b], atol=1e-6)
    for x, y in zip(a, b, strict=True):
        for key in ("id", "external_id", "text", "content_hash", "metadata_", "created_at",
                    "collection_id"):  # fmt: skip
            assert getattr(x.document, key) == getattr(y.document, key), key


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"k": 7, "offset": 3},
        {"filter": {"tenth": 3}},
        {"filter": {"half": 1}, "exact_threshold": 100},  # iterative scan
        {"filter": {"name": "n'5"}},  # a quote in a value: bound, not rendered
        {"filter": {"tenth": {"$gte": 8}}, "metric": "l2"},
        {"strategy": "exact", "with_embedding": True},
    ],
)
def test_the_raw_path_returns_what_the_session_path_returns(
    loaded: tuple[Engine, np.ndarray[Any, Any]], raw_calls: list[str], kwargs: dict[str, Any]
) -> None:
    engine, vectors = loaded
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="raw")
    repo.nearest(vectors[0], **kwargs)  # first call: catalog, sample
    raw_calls.clear()
    for i in (1, 5, 9):
        fast = repo.nearest(vectors[i], **kwargs)
        with Session(engine) as session:
            bound: Repo = vs.DocumentRepository(session, collection="raw")
            _same(fast, bound.nearest(vectors[i], **kwargs))
    assert len(raw_calls) == 3
    if kwargs.get("with_embedding"):
        assert np.allclose(np.asarray(fast[0].document.embedding), vectors[9], atol=1e-6)
    if "filter" in kwargs and "tenth" in kwargs["filter"] and kwargs["filter"]["tenth"] == 3:
        assert all(h.document.metadata_["tenth"] == 3 for h in fast)
        assert fast.returned == kwargs.get("k", 10)


def test_values_stay_bound_parameters_on_the_raw_path(
    loaded: tuple[Engine, np.ndarray[Any, Any]], raw_calls: list[str]
) -> None:
    engine, vectors = loaded
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="raw")
    repo.nearest(vectors[0], filter={"tenth": 1})
    hostile = "x'); DROP TABLE vectorstore_documents; --"
    raw_calls.clear()
    assert repo.nearest(vectors[0], filter={"name": hostile}).returned == 0
    assert repo.nearest(vectors[0], filter={"tenth": hostile}).returned == 0
    assert len(raw_calls) == 2
    compiled = search_raw.compiled_statements()
    assert compiled
    assert not [sql for sql in compiled if hostile in sql]
    assert repo.count() == N


def test_settings_do_not_leak_from_the_raw_path(
    loaded: tuple[Engine, np.ndarray[Any, Any]], raw_calls: list[str]
) -> None:
    engine, vectors = loaded  # one pooled connection
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="raw")
    repo.nearest(vectors[0], filter={"half": 1}, exact_threshold=10)
    raw_calls.clear()
    hits = repo.nearest(vectors[1], filter={"half": 1}, exact_threshold=10, ef_search=321)
    assert raw_calls == ["iterative"]
    assert hits.settings["hnsw.ef_search"] == "321"
    with engine.connect() as conn:
        for name in ("hnsw.ef_search", "enable_sort", "hnsw.iterative_scan"):
            value = conn.execute(text("SELECT current_setting(:n, true)"), {"n": name}).scalar()
            assert value != hits.settings[name], name


def test_an_instrumented_engine_keeps_sqlalchemys_path(
    loaded: tuple[Engine, np.ndarray[Any, Any]], raw_calls: list[str]
) -> None:
    engine, vectors = loaded
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="raw")
    repo.nearest(vectors[0])
    seen: list[str] = []

    def log(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", log)
    try:
        raw_calls.clear()
        assert repo.nearest(vectors[2], k=3)[0].document.external_id == "2"
        assert raw_calls == []
        assert len(seen) == 2  # the tracing hook saw the settings and the query
    finally:
        event.remove(engine, "before_cursor_execute", log)
    repo.nearest(vectors[2], k=3)
    assert raw_calls == ["index"]


def test_the_raw_path_retries_a_read_on_a_dead_connection_once(
    loaded: tuple[Engine, np.ndarray[Any, Any]], any_driver_url: URL, raw_calls: list[str]
) -> None:
    _, vectors = loaded
    engine = vs.make_engine(any_driver_url, pool_size=1, max_overflow=0, pool_pre_ping=False)
    admin = create_engine(any_driver_url, poolclass=NullPool)
    try:
        repo: Repo = vs.DocumentRepository.standalone(engine, collection="raw")
        repo.nearest(vectors[0])
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:p, 10000)"), {"p": pid})
        raw_calls.clear()
        hits = repo.nearest(vectors[4], k=2)
        assert hits[0].document.external_id == "4"
        assert raw_calls == ["index"]  # the first attempt raised; the retry succeeded
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()
        admin.dispose()


def test_a_server_error_on_the_raw_path_is_translated(
    loaded: tuple[Engine, np.ndarray[Any, Any]], raw_calls: list[str]
) -> None:
    engine, vectors = loaded
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="raw")
    repo.nearest(vectors[0])
    with engine.begin() as conn:  # the planner's catalog view is cached: the query fails
        conn.execute(text("ALTER TABLE vectorstore_documents RENAME TO gone"))
    try:
        with pytest.raises(vs.SchemaError):
            repo.nearest(vectors[1])
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE gone RENAME TO vectorstore_documents"))
    assert repo.nearest(vectors[1], k=1)[0].document.external_id == "1"


def test_filters_of_one_shape_get_their_own_values(
    loaded: tuple[Engine, np.ndarray[Any, Any]], raw_calls: list[str]
) -> None:
    engine, vectors = loaded
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="raw")
    repo.nearest(vectors[0], filter={"tenth": 0})
    raw_calls.clear()
    for _ in range(2):  # the second round is served from the per-filter memo
        for v in range(10):
            hits = repo.nearest(vectors[v], k=5, filter={"tenth": v})
            assert hits.returned == 5
            assert hits[0].document.external_id == str(v)
            assert {h.document.metadata_["tenth"] for h in hits} == {v}
    assert len(raw_calls) == 20
    # Values equal in Python but not in JSON are different filters.
    assert repo.nearest(vectors[1], filter={"half": 1}).returned == 10
    assert repo.nearest(vectors[1], filter={"half": True}).returned == 0
    assert repo.nearest(vectors[1], filter={"half": 1.0}).returned == 10
    assert repo.nearest(vectors[1], filter={"half": "1"}).returned == 0
    both = repo.nearest(vectors[2], filter={"tenth": {"$in": [2, 3]}})
    assert {h.document.metadata_["tenth"] for h in both} <= {2, 3}
    one = repo.nearest(vectors[2], filter={"tenth": {"$in": [3]}})
    assert {h.document.metadata_["tenth"] for h in one} == {3}


def test_the_pooled_connection_comes_back_as_it_went_out(
    loaded: tuple[Engine, np.ndarray[Any, Any]], raw_calls: list[str]
) -> None:
    """Reads run in autocommit (no BEGIN/COMMIT round trips); the pool must not notice,
    neither after a call nor after a call that failed on the server."""
    engine, vectors = loaded
    strict = vs.make_engine(engine.url, pool_size=1, max_overflow=0)

    @event.listens_for(strict, "connect")
    def _short_lock_wait(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET lock_timeout = '100ms'")
        cursor.close()
        dbapi_connection.commit()

    repo: Repo = vs.DocumentRepository.standalone(strict, collection="raw")
    try:
        repo.nearest(vectors[0], filter={"half": 1}, exact_threshold=10)  # caches warm
        raw_calls.clear()
        assert repo.nearest(vectors[1], filter={"half": 1}, exact_threshold=10).returned == 10
        assert raw_calls == ["iterative"]
        with engine.connect() as locker:
            locker.exec_driver_sql("LOCK TABLE vectorstore_documents IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(vs.VectorStoreError):
                repo.nearest(vectors[1], filter={"half": 1}, exact_threshold=10)
            locker.rollback()
        raw = strict.raw_connection()
        try:
            assert raw.dbapi_connection is not None
            assert raw.dbapi_connection.autocommit is False
        finally:
            raw.close()
        with Session(strict) as session:  # still transactional: a rollback undoes the write
            session.execute(text("UPDATE vectorstore_documents SET text = 'x' WHERE id = 1"))
            session.rollback()
        with strict.connect() as conn:
            edited = conn.exec_driver_sql("SELECT text FROM vectorstore_documents WHERE id = 1")
            assert edited.scalar_one() != "x"
        assert repo.nearest(vectors[2], k=3)[0].document.external_id == "2"
    finally:
        strict.dispose()


def test_the_server_runs_the_query_under_its_settings(
    loaded: tuple[Engine, np.ndarray[Any, Any]], raw_calls: list[str]
) -> None:
    """The settings and the query share one implicit transaction on both drivers
    (one message on psycopg2, one pipeline on psycopg 3): a filter that reads the
    setting back passes only if the server applied it to this very query."""
    engine, vectors = loaded
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="raw")
    repo.nearest(vectors[0])  # caches warm
    applied = func.current_setting("hnsw.ef_search") == "321"
    raw_calls.clear()
    hits = repo.nearest(vectors[3], k=5, strategy="iterative", ef_search=321, filter=applied)
    assert raw_calls == ["iterative"]
    assert hits.returned == 5
    assert hits.fallback_from is None
    assert hits[0].document.external_id == "3"
    with engine.connect() as conn:  # and it ended with that query
        assert conn.execute(text("SELECT current_setting('hnsw.ef_search')")).scalar() != "321"


def test_without_pipeline_mode_the_settings_still_reach_the_query(
    loaded: tuple[Engine, np.ndarray[Any, Any]], raw_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A psycopg 3 whose libpq has no pipeline mode runs the settings and the query in
    one explicit transaction: otherwise each would be its own and the query would run
    without the settings (psycopg2 sends one message and is unaffected)."""
    monkeypatch.setattr(search_raw, "_pipelines", lambda _connection: False)
    engine, vectors = loaded
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="raw")
    repo.nearest(vectors[0])  # caches warm
    applied = func.current_setting("hnsw.ef_search") == "322"
    raw_calls.clear()
    hits = repo.nearest(vectors[3], k=5, strategy="iterative", ef_search=322, filter=applied)
    assert raw_calls == ["iterative"]
    assert hits.returned == 5
    assert hits[0].document.external_id == "3"
    with engine.connect() as conn:  # and the transaction ended with the query
        assert conn.execute(text("SELECT current_setting('hnsw.ef_search')")).scalar() != "322"


def test_metadata_equalities_of_any_keys_share_one_statement(
    loaded: tuple[Engine, np.ndarray[Any, Any]], raw_calls: list[str]
) -> None:
    """Top-level metadata equalities compile to one ``metadata @> :doc`` whatever the
    keys and values: compiled once, each call sends only its own document."""
    engine, vectors = loaded
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="raw")
    repo.nearest(vectors[0], k=3, filter={"tenth": 0})
    search_raw.clear_caches()
    raw_calls.clear()
    for v in range(10):
        hits = repo.nearest(vectors[v], k=3, filter={"tenth": v, "half": v % 2})
        assert hits[0].document.external_id == str(v)
        assert all(h.document.metadata_["tenth"] == v for h in hits)
    assert repo.nearest(vectors[1], k=3, filter={"tenth": 1, "half": 0}).returned == 0
    assert repo.nearest(vectors[1], k=3, filter={"x' OR 1=1 --": 1}).returned == 0
    assert repo.nearest(vectors[4], k=3, filter={"name": "n'4"})[0].document.external_id == "4"
    assert len(raw_calls) == 13
    compiled = search_raw.compiled_statements()
    assert len(compiled) == 1  # all exact here (600 rows): one statement for every filter
    statement = compiled[0]
    assert "@>" in statement
    assert "tenth" not in statement
    assert "n'4" not in statement


def test_a_filtered_iterative_scan_widens_ef_search_by_default(
    loaded: tuple[Engine, np.ndarray[Any, Any]],
) -> None:
    engine, vectors = loaded
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="raw")
    plain = repo.nearest(vectors[0], k=5)
    assert plain.settings["hnsw.ef_search"] == str(DEFAULT_EF_SEARCH)
    filtered = repo.nearest(vectors[0], k=5, filter={"half": 0}, exact_threshold=10)
    assert filtered.strategy == "iterative"
    assert filtered.settings["hnsw.ef_search"] == str(DEFAULT_FILTERED_EF_SEARCH)
    assert DEFAULT_FILTERED_EF_SEARCH > DEFAULT_EF_SEARCH
    chosen = repo.nearest(vectors[0], k=5, filter={"half": 0}, exact_threshold=10, ef_search=64)
    assert chosen.settings["hnsw.ef_search"] == "64"
