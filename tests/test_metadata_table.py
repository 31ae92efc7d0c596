"""The ``metadata_index = "table"`` layout: a shadow table with the GIN index, kept by triggers.

Two models in one database hold the same rows: ``inline_docs`` (today's
schema) and ``shadow_docs`` (the layout).  The shadow must stay exact after
every kind of write (the repository's, raw SQL, COPY, a rollback), reads must
give the inline layout's results, and metadata updates must be HOT.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import URL, Engine, MetaData, text
from sqlalchemy.orm import DeclarativeBase, Session

import vectorstore as vs
from vectorstore.metadata_table import metadata_table, metadata_table_ddl
from vectorstore.models import NAMING_CONVENTION

DIM = 16


class _Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ShadowDoc(vs.DocumentMixin, _Base):
    __tablename__ = "shadow_docs"
    embedding_dimension = DIM
    metadata_index = "table"


class InlineDoc(vs.DocumentMixin, _Base):
    __tablename__ = "inline_docs"
    embedding_dimension = DIM


MODELS = (ShadowDoc, InlineDoc)


def _rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    cats = ("shoes", "hats", "bags", "socks")
    return [
        {
            "text": f"item {i} {cats[i % 4]} colour {i % 7}",
            "external_id": f"e{i}",
            "metadata": {"cat": cats[i % 4], "i": i, "bucket": i % 10, "tags": [f"t{i % 3}"]},
        }
        for i in range(start, start + n)
    ]


@pytest.fixture
def app_engine(engine: Engine) -> Engine:
    _Base.metadata.create_all(engine)
    return engine


@pytest.fixture
def driver_engine(any_driver_url: URL) -> Iterator[Engine]:
    eng = vs.make_engine(any_driver_url)
    _Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


def _drift(bind: Any) -> list[Any]:
    """Shadow rows that are missing, extra or differ from the documents (empty: exact)."""
    found = bind.execute(
        text(
            "SELECT d.id, s.document_id FROM shadow_docs d "
            "FULL JOIN shadow_docs_metadata s ON s.document_id = d.id "
            "WHERE d.id IS NULL OR s.document_id IS NULL "
            "OR s.metadata IS DISTINCT FROM d.metadata OR s.collection_id <> d.collection_id"
        )
    ).all()
    return list(found)


def _shadow_count(bind: Any) -> int:
    return int(bind.execute(text("SELECT count(*) FROM shadow_docs_metadata")).scalar_one())


def _repo(target: Session | Engine, model: Any = ShadowDoc, **kw: Any) -> Any:
    emb = vs.HashingTestEmbedder(dimension=DIM)
    if isinstance(target, Engine):
        return vs.DocumentRepository.standalone(
            target, collection="c", embedder=emb, model=model, **kw
        )
    return vs.DocumentRepository(target, collection="c", embedder=emb, model=model, **kw)


# -- the schema ------------------------------------------------------------------------
def test_the_layout_moves_the_gin_index_to_the_shadow_table(app_engine: Engine) -> None:
    with app_engine.connect() as conn:
        indexes = dict(
            conn.execute(
                text(
                    "SELECT indexname, tablename FROM pg_indexes "
                    "WHERE tablename IN ('shadow_docs', 'shadow_docs_metadata')"
                )
            ).all()
        )
        assert indexes["ix_shadow_docs_metadata"] == "shadow_docs_metadata"
        assert indexes["ix_shadow_docs_embedding_hnsw"] == "shadow_docs"
        assert not any(
            t == "shadow_docs" and "metadata" in name for name, t in indexes.items()
        )  # no index on the documents' metadata: updates can be HOT
        definition = conn.execute(
            text("SELECT pg_get_indexdef('ix_shadow_docs_metadata'::regclass)")
        ).scalar_one()
        assert "gin" in definition
        assert "jsonb_path_ops" in definition
        options = conn.execute(
            text("SELECT reloptions FROM pg_class WHERE relname = 'shadow_docs'")
        ).scalar_one()
        assert "fillfactor=80" in options
        triggers = set(
            conn.execute(
                text(
                    "SELECT tgname FROM pg_trigger WHERE tgrelid = 'shadow_docs'::regclass "
                    "AND NOT tgisinternal"
                )
            ).scalars()
        )
        assert triggers == {
            "vs_metadata_insert", "vs_metadata_update", "vs_metadata_delete",
            "vs_metadata_truncate",
        }  # fmt: skip
        inline = conn.execute(
            text("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'inline_docs'::regclass "
                 "AND NOT tgisinternal")
        ).scalar_one()  # fmt: skip
        assert inline == 0


def test_the_models_and_the_database_agree(app_engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with app_engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_object": lambda obj, name, type_, reflected, compare: (
                    type_ != "table" or name in {t.name for t in _Base.metadata.tables.values()}
                ),
            },
        )
        assert compare_metadata(context, _Base.metadata) == []
    assert vs.check_schema(app_engine) == []


def test_the_ddl_is_idempotent_and_drop_all_removes_the_functions(app_engine: Engine) -> None:
    with app_engine.begin() as conn:
        for sql in metadata_table_ddl(ShadowDoc.__table__):  # what an alembic revision runs
            conn.execute(text(sql))
    _Base.metadata.drop_all(app_engine)
    with app_engine.connect() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'shadow_docs_metadata_%'")
        ).scalar_one()
    assert left == 0


def test_unsupported_combinations_are_refused(app_engine: Engine) -> None:
    class Other(DeclarativeBase):
        metadata = MetaData(naming_convention=NAMING_CONVENTION)

    with pytest.raises(vs.ConfigurationError, match="partition_by_collection"):

        class Partitioned(vs.DocumentMixin, Other):
            __tablename__ = "part_docs"
            partition_by_collection = True
            metadata_index = "table"

    with pytest.raises(vs.ConfigurationError, match="metadata_index must be"):

        class Wrong(vs.DocumentMixin, Other):
            __tablename__ = "wrong_docs"
            metadata_index = "shadow"

    with Session(app_engine) as session:
        with pytest.raises(vs.ConfigurationError, match="row-level security"):
            vs.enable_row_level_security(session, ShadowDoc)
        enabled = session.execute(
            text("SELECT relrowsecurity FROM pg_class WHERE relname = 'shadow_docs'")
        ).scalar_one()
        assert enabled is False
    assert metadata_table(InlineDoc) is None


# -- the shadow stays exact ----------------------------------------------------------
@pytest.mark.parametrize("bound", [True, False], ids=["session", "standalone"])
def test_every_write_keeps_the_shadow_exact(driver_engine: Engine, bound: bool) -> None:
    engine = driver_engine
    session = Session(engine) if bound else None
    repo = _repo(session if session is not None else engine)

    def check() -> None:
        if session is not None:
            assert _drift(session) == []
            return
        with engine.connect() as conn:  # short: a big load locks the table
            assert _drift(conn) == []

    try:
        doc = repo.add("one", metadata={"cat": "hats", "i": -1})
        check()
        repo.bulk_add(_rows(40))  # small: COPY with every index kept
        check()
        repo.bulk_add(_rows(60, start=100), rebuild_index=True)  # big-load mode
        check()
        repo.ingest(iter(_rows(20, start=500)))
        check()
        repo.update(doc.id, metadata={"cat": "bags"})
        repo.update("e3", metadata={"extra": 1}, merge=True)
        repo.update("e4", text="a new text for four")  # text only: the shadow row stays
        check()
        assert repo.update_where({"bucket": 2}, merge_metadata={"v": 7}) == 12
        check()
        assert repo.delete_where({"cat": "socks", "i": {"$lt": 20}}) == 5
        check()
        repo.delete([doc.id])
        check()
        if session is not None:
            assert _shadow_count(session) == repo.count() == 115
            session.rollback()
            assert _shadow_count(session) == 0  # the whole host transaction went
        else:
            with engine.connect() as conn:
                assert _shadow_count(conn) == repo.count() == 115
    finally:
        if session is not None:
            session.close()


def test_raw_sql_and_a_rollback_keep_the_shadow_exact(app_engine: Engine) -> None:
    repo = _repo(app_engine)
    repo.bulk_add(_rows(30))
    with app_engine.begin() as conn:
        collection = conn.execute(text("SELECT id FROM vectorstore_collections")).scalar_one()
        conn.execute(
            text(
                "INSERT INTO shadow_docs (collection_id, text, content_hash, metadata, embedding) "
                "SELECT :c, 'raw ' || g, '\\x00'::bytea, jsonb_build_object('raw', g), "
                "array_fill(0.5, ARRAY[16])::vector FROM generate_series(1, 5) g"
            ),
            {"c": collection},
        )
        conn.execute(
            text("UPDATE shadow_docs SET metadata = metadata || '{\"x\": 1}' WHERE id % 2 = 0")
        )
        conn.execute(text("UPDATE shadow_docs SET text = text || '!'"))  # no metadata change
        conn.execute(text("UPDATE shadow_docs SET id = id + 1000 WHERE metadata ? 'raw'"))
        conn.execute(text("DELETE FROM shadow_docs WHERE id % 3 = 0"))
        assert _drift(conn) == []
    with app_engine.connect() as conn:
        before = _shadow_count(conn)
        conn.execute(text("DELETE FROM shadow_docs"))
        conn.execute(text("UPDATE shadow_docs SET metadata = '{}'"))
        conn.rollback()
        assert _shadow_count(conn) == before
        assert _drift(conn) == []
    with app_engine.begin() as conn:
        conn.execute(text("TRUNCATE shadow_docs"))
        assert _shadow_count(conn) == 0
    repo.bulk_add(_rows(5, start=900))
    with app_engine.connect() as conn:
        assert _drift(conn) == []
        assert _shadow_count(conn) == 5


def test_a_text_only_update_does_not_rewrite_the_shadow_row(app_engine: Engine) -> None:
    repo = _repo(app_engine)
    repo.bulk_add(_rows(10))
    with app_engine.begin() as conn:
        before = conn.execute(
            text("SELECT ctid::text FROM shadow_docs_metadata ORDER BY document_id")
        ).scalars().all()  # fmt: skip
        conn.execute(text("UPDATE shadow_docs SET text = text || '.'"))
        after = conn.execute(
            text("SELECT ctid::text FROM shadow_docs_metadata ORDER BY document_id")
        ).scalars().all()  # fmt: skip
    assert before == after  # IS DISTINCT FROM: no new row versions in the shadow


def test_dropping_the_collection_empties_its_shadow_rows(app_engine: Engine) -> None:
    _repo(app_engine).bulk_add(_rows(10))
    with app_engine.begin() as conn:
        conn.execute(text("DELETE FROM vectorstore_collections"))  # ON DELETE CASCADE
        assert _shadow_count(conn) == 0


# -- reads: the inline layout's results ------------------------------------------------
FILTERS: list[Any] = [
    {"cat": "hats"},
    {"cat": "hats", "bucket": 3},
    {"i": {"$lt": 50}, "cat": {"$in": ["bags", "socks"]}},
    {"$or": [{"cat": "shoes"}, {"bucket": {"$gte": 8}}]},
    {"$not": {"cat": "hats"}},
    {"tags": {"$contains": "t1"}, "external_id": {"$like": "e1%"}},
    {"id": {"$gt": 0}, "metadata": {"$contains": {"bucket": 4}}},
    {"i": {"$in": list(range(0, 300, 7))}},
    {"text": {"$like": "%colour 3"}},  # document columns only: no semi-join
]


@pytest.fixture
def loaded(app_engine: Engine) -> tuple[Any, Any]:
    repos = (_repo(app_engine, ShadowDoc), _repo(app_engine, InlineDoc))
    for repo in repos:
        repo.bulk_add(_rows(300))
    with app_engine.begin() as conn:
        for name in ("shadow_docs", "shadow_docs_metadata", "inline_docs"):
            conn.execute(text(f"ANALYZE {name}"))
    return repos


def _ext(hits: list[Any]) -> list[str]:
    return [h.document.external_id for h in hits]


@pytest.mark.parametrize("spec", FILTERS, ids=lambda s: json.dumps(s)[:40])
def test_reads_match_the_inline_layout(loaded: tuple[Any, Any], spec: Any) -> None:
    shadow, inline = loaded
    assert shadow.count(spec) == inline.count(spec) > 0
    assert shadow.exists(spec) is inline.exists(spec) is True
    page_s, page_i = shadow.list(spec, limit=7), inline.list(spec, limit=7)
    assert [d.external_id for d in page_s.items] == [d.external_id for d in page_i.items]
    nxt_s, nxt_i = (
        shadow.list(spec, limit=7, after=page_s.next_after),
        inline.list(spec, limit=7, after=page_i.next_after),
    )
    assert [d.external_id for d in nxt_s.items] == [d.external_id for d in nxt_i.items]
    assert [d.external_id for d in shadow.iterate(spec, chunk=50)] == [
        d.external_id for d in inline.iterate(spec, chunk=50)
    ]
    matching = {d.external_id for d in inline.iterate(spec, chunk=50)}
    exact = inline.nearest("item colour 3 hats", k=5, filter=spec, strategy="exact")
    got = shadow.nearest("item colour 3 hats", k=5, filter=spec, strategy="exact")
    assert _ext(got) == _ext(exact)
    for strategy in ("iterative", "auto"):
        # Two HNSW graphs (and ties between template texts) may order equal
        # distances differently: the same distances, every hit a match.
        for repo in loaded:
            hits = repo.nearest("item colour 3 hats", k=5, filter=spec, strategy=strategy)
            assert set(_ext(hits)) <= matching, strategy
            assert [round(h.distance, 5) for h in hits] == [round(h.distance, 5) for h in exact], (
                strategy
            )


def test_repeated_filter_shapes_bind_their_own_values(loaded: tuple[Any, Any]) -> None:
    """The raw path reuses a compiled statement per filter shape: the semi-join's values too."""
    shadow, inline = loaded
    for cat in ("hats", "bags", "shoes", "socks", "hats"):
        for spec in ({"cat": cat}, {"cat": cat, "i": {"$lt": 200}}):
            got = shadow.nearest("item colour 1", k=4, filter=spec, strategy="exact")
            want = inline.nearest("item colour 1", k=4, filter=spec, strategy="exact")
            assert _ext(got) == _ext(want)
            assert {h.document.metadata_["cat"] for h in got} == {cat}


def test_changes_by_filter_match_the_inline_layout(loaded: tuple[Any, Any]) -> None:
    shadow, inline = loaded
    deleted = []
    for repo in loaded:
        assert repo.update_where({"cat": "bags"}, merge_metadata={"cat": "hats"}) == 75
        assert repo.update_where({"cat": "bags"}, merge_metadata={"cat": "hats"}) == 0
        # hats: i = 1 (mod 4), so bucket 1 or 3 is i = 1, 13 (mod 20); former bags are even
        assert repo.count({"cat": "hats", "bucket": {"$in": [1, 3]}}) == 30
        deleted.append(repo.delete_where({"cat": "hats", "bucket": {"$in": [1, 3]}}, batch_size=7))
    assert deleted == [30, 30]
    assert shadow.count({"cat": "hats"}) == inline.count({"cat": "hats"}) == 120
    with shadow._sessions.read("check") as session:
        assert _drift(session) == []


def _plan_nodes(plan: Any) -> list[tuple[str, str]]:
    found = []
    stack = [plan]
    while stack:
        node = stack.pop()
        found.append((node.get("Node Type", ""), node.get("Index Name", "")))
        stack.extend(node.get("Plans", []))
    return found


def _explain(
    engine: Engine, stmt: Any, *, bitmaps: bool = False, ordered: bool = False
) -> list[tuple[str, str]]:
    from vectorstore.query.statement import Explain

    with Session(engine) as session:
        session.execute(text("SET LOCAL enable_seqscan = off"))  # a table of 300 rows
        if bitmaps:  # at 300 rows a plain scan of the shadow's primary key costs less
            session.execute(text("SET LOCAL enable_indexscan = off"))
        if ordered:  # at 300 rows sorting every row costs less than walking the graph
            session.execute(text("SET LOCAL enable_sort = off"))
            session.execute(text("SET LOCAL enable_bitmapscan = off"))
        plan = session.execute(Explain(stmt)).scalar_one()
    return _plan_nodes(plan[0]["Plan"])


def test_the_exact_strategy_reads_the_shadow_gin_and_ann_scans_the_hnsw(
    loaded: tuple[Any, Any], app_engine: Engine
) -> None:
    shadow = loaded[0]
    exact = shadow.nearest_query("item", k=5, filter={"cat": "hats"}, strategy="exact")
    nodes = _explain(app_engine, exact, bitmaps=True)
    assert ("Bitmap Index Scan", "ix_shadow_docs_metadata") in nodes
    for spec in (None, {"bucket": {"$gte": 1}}):  # unfiltered and broad: the HNSW index
        ann = shadow.nearest_query("item", k=5, filter=spec, strategy="index")
        assert "shadow_docs_metadata" not in str(ann.compile(app_engine))  # no semi-join
        nodes = _explain(app_engine, ann, ordered=True)
        assert ("Index Scan", "ix_shadow_docs_embedding_hnsw") in nodes
        assert not any(name == "ix_shadow_docs_metadata" for _, name in nodes)
    report = shadow.explain("item", k=5, filter={"cat": "hats", "i": 4}, strategy="exact")
    assert "shadow_docs_metadata" in json.dumps(report.plan)


# -- HOT ---------------------------------------------------------------------------
def _hot_updates(engine: Engine, table: str) -> tuple[int, int]:
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = conn.execute(
            text("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = :t"),
            {"t": table},
        ).one()
    return int(row[0]), int(row[1])


def test_metadata_updates_are_hot_on_this_layout_only(
    loaded: tuple[Any, Any], app_engine: Engine
) -> None:
    tables = ("shadow_docs", "inline_docs")
    before = {t: _hot_updates(app_engine, t) for t in tables}
    with app_engine.connect() as conn:
        session = Session(bind=conn)
        for model in (ShadowDoc, InlineDoc):
            repo = _repo(session, model)
            assert repo.update_where({"bucket": 5}, merge_metadata={"v": 1}) == 30
            repo.update("e7", metadata={"v": 2}, merge=True)
        session.commit()
        # This backend's counters reach the shared statistics when it goes idle
        # after its next transaction, before the reply: forced, not rate-limited.
        conn.execute(text("SELECT pg_stat_force_next_flush()"))
        conn.commit()
        session.close()
    after = {t: _hot_updates(app_engine, t) for t in tables}
    (upd_s, hot_s), (upd_i, hot_i) = (
        tuple(a - b for a, b in zip(after[t], before[t], strict=True)) for t in tables
    )
    assert upd_s == upd_i == 31
    assert hot_s == 31  # a fresh table at fillfactor 80: room on every page
    assert hot_i == 0  # the GIN index on metadata rules HOT out


def test_batches_from_the_shadow_go_past_candidates_the_other_conjuncts_reject(
    loaded: tuple[Any, Any],
) -> None:
    """A change's batches read candidate ids from the shadow (the metadata conjuncts only).

    A batch whose 7 candidates all fail the filter's document-column part
    changes nothing and must not end the call: rows further on still match.
    """
    changed = []
    for repo in loaded:
        ids = sorted(d.id for d in repo.iterate({"cat": "hats"}, chunk=100))
        spec = {"cat": "hats", "id": {"$gt": ids[40]}}  # the first 41 candidates fail
        assert repo.count(spec) == 34
        changed.append(repo.update_where(spec, merge_metadata={"late": True}, batch_size=7))
        assert repo.count({"late": True}) == 34
        assert repo.delete_where({"late": True, "external_id": {"$ne": "e1"}}, batch_size=7) == 34
        assert repo.count({"cat": "hats"}) == 41
    assert changed == [34, 34]
    with loaded[0]._sessions.read("check") as session:
        assert _drift(session) == []


def test_reads_and_changes_through_psycopg_3(driver_engine: Engine) -> None:
    """The semi-join, the ``ANY(ARRAY(...))`` of exact rankings and shadow-picked batches."""
    _Base.metadata.create_all(driver_engine)
    shadow, inline = _repo(driver_engine, ShadowDoc), _repo(driver_engine, InlineDoc)
    for repo in (shadow, inline):
        repo.bulk_add(_rows(120))
    for spec in ({"cat": "hats"}, {"cat": {"$in": ["bags", "socks"]}, "i": {"$lt": 90}}):
        assert shadow.count(spec) == inline.count(spec) > 0
        got = shadow.nearest("item colour 2", k=6, filter=spec, strategy="exact")
        want = inline.nearest("item colour 2", k=6, filter=spec, strategy="exact")
        # template texts tie: the same distances, every hit a match
        assert [round(h.distance, 5) for h in got] == [round(h.distance, 5) for h in want]
        assert set(_ext(got)) <= {d.external_id for d in inline.iterate(spec)}
    for repo in (shadow, inline):
        assert repo.update_where({"cat": "hats"}, merge_metadata={"v": 1}, batch_size=4) == 30
        assert repo.delete_where({"v": 1, "i": {"$gte": 60}}, batch_size=4) == 15
    with driver_engine.connect() as conn:
        assert _drift(conn) == []


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_async_repository_on_the_layout(
    anyio_backend: str, app_engine: Engine, postgresql: Any
) -> None:
    from tests.conftest import url_for

    engine = vs.make_async_engine(url_for(postgresql.info.dbname, "asyncpg"))
    try:
        repo: Any = vs.AsyncDocumentRepository.standalone(
            engine, collection="c", embedder=vs.HashingTestEmbedder(dimension=DIM), model=ShadowDoc
        )
        await repo.bulk_add(_rows(40))
        assert await repo.update_where({"cat": "shoes"}, merge_metadata={"v": 2}) == 10
        assert await repo.count({"v": 2}) == 10
        hits = await repo.nearest("item colour 3", k=3, filter={"v": 2}, strategy="exact")
        assert {h.document.metadata_["cat"] for h in hits} == {"shoes"}
        assert await repo.delete_where({"v": 2}) == 10
    finally:
        await engine.dispose()
    with app_engine.connect() as conn:
        assert _drift(conn) == []
        assert _shadow_count(conn) == 30
