"""Migrations: upgrade/downgrade cycles, drift check, importable autogenerate, pgvector checks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, inspect, text

import vectorstore as vs
from vectorstore.schema.alembic_hooks import require_pgvector
from vectorstore.schema.migrate import head_revision

OUR_TABLES = {"vectorstore_collections", "vectorstore_documents", "vectorstore_alembic_version"}


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_downgrade_upgrade(engine: Engine) -> None:
    assert _tables(engine) >= OUR_TABLES
    assert vs.current_revision(engine) == head_revision()
    vs.downgrade(engine, "base")
    assert _tables(engine) & OUR_TABLES <= {"vectorstore_alembic_version"}
    assert vs.current_revision(engine) is None
    vs.migrate(engine)
    assert _tables(engine) >= OUR_TABLES
    assert vs.current_revision(engine) == head_revision()
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("vectorstore_documents")}
    assert {
        "ix_vectorstore_documents_embedding_hnsw",
        "ix_vectorstore_documents_metadata",
        "ix_vectorstore_documents_text_search",
        "ix_vectorstore_documents_collection_id_content_hash",
    } <= indexes


def _metadata_index(engine: Engine) -> str:
    sql = "SELECT pg_get_indexdef('ix_vectorstore_documents_metadata'::regclass)"
    with engine.connect() as conn:
        return str(conn.execute(text(sql)).scalar_one())


def _text_search_index(engine: Engine) -> str:
    sql = "SELECT pg_get_indexdef('ix_vectorstore_documents_text_search'::regclass)"
    with engine.connect() as conn:
        return str(conn.execute(text(sql)).scalar_one())


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("vectorstore_documents")}


def test_step_by_step_revisions(engine: Engine) -> None:
    assert "jsonb_path_ops" in _metadata_index(engine)
    assert "to_tsvector('english'::regconfig, text)" in _text_search_index(engine)
    assert "text_search" not in _columns(engine)
    vs.downgrade(engine, "0001")
    columns = {c["name"] for c in inspect(engine).get_columns("vectorstore_documents")}
    assert "text_search" not in columns
    assert "jsonb_path_ops" not in _metadata_index(engine)
    vs.migrate(engine, "0002")
    columns = {c["name"] for c in inspect(engine).get_columns("vectorstore_documents")}
    assert "text_search" in columns
    assert "jsonb_path_ops" not in _metadata_index(engine)
    vs.migrate(engine, "0003")
    assert "jsonb_path_ops" in _metadata_index(engine)
    assert "(text_search)" in _text_search_index(engine)
    vs.migrate(engine, "0004")
    assert "text_search" not in _columns(engine)
    assert "to_tsvector('english'::regconfig, text)" in _text_search_index(engine)
    assert vs.check_schema(engine) == []


def test_0004_keeps_the_rows_and_their_full_text_matches(engine: Engine) -> None:
    """Rows written under 0003 (stored tsvector) match the same queries after 0004, and back."""
    vs.downgrade(engine, "0003")
    query = (
        "SELECT external_id FROM vectorstore_documents WHERE {doc} @@ "
        "websearch_to_tsquery('english', 'running shoes') ORDER BY external_id"
    )
    with engine.begin() as conn:
        cid = conn.execute(
            text("INSERT INTO vectorstore_collections (name, embedding_model, dimension) "
                 "VALUES ('c', 'm', 384) RETURNING id")
        ).scalar_one()  # fmt: skip
        for ext, body in [("a", "red running shoes"), ("b", "shoes for running"),
                          ("c", "bread recipes")]:  # fmt: skip
            conn.execute(
                text("INSERT INTO vectorstore_documents (collection_id, external_id, text, "
                     "content_hash, embedding) VALUES (:c, :e, :t, '\\x00', :v)"),
                {"c": cid, "e": ext, "t": body, "v": "[" + ",".join(["0.1"] * 384) + "]"},
            )  # fmt: skip
        before = conn.execute(text(query.format(doc="text_search"))).scalars().all()
    assert before == ["a", "b"]
    vs.migrate(engine)
    with engine.connect() as conn:
        expression = "to_tsvector('english'::regconfig, text)"
        assert conn.execute(text(query.format(doc=expression))).scalars().all() == before
    vs.downgrade(engine, "0003")
    with engine.connect() as conn:
        assert conn.execute(text(query.format(doc="text_search"))).scalars().all() == before
    vs.migrate(engine)
    assert vs.check_schema(engine) == []


def test_models_and_migrations_agree(engine: Engine) -> None:
    assert vs.check_schema(engine) == []


def test_a_changed_text_search_index_is_drift(engine: Engine) -> None:
    """The expression index is compared, not skipped: another expression is reported."""
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_vectorstore_documents_text_search"))
        conn.execute(
            text("CREATE INDEX ix_vectorstore_documents_text_search ON vectorstore_documents "
                 "USING gin (to_tsvector('simple'::regconfig, text))")
        )  # fmt: skip
    assert any("text_search" in repr(d) for d in vs.check_schema(engine))
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_vectorstore_documents_text_search"))
    assert any("text_search" in repr(d) for d in vs.check_schema(engine))


def test_drift_is_detected(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE vectorstore_documents ADD COLUMN stray integer"))
    diffs = vs.check_schema(engine)
    assert any("stray" in repr(d) for d in diffs)


def test_an_apps_own_tables_are_not_drift(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE products (id int primary key, asin text)"))
    assert vs.check_schema(engine) == []


def test_autogenerated_revision_with_a_vector_column_is_importable(
    db_url: URL, tmp_path: Path
) -> None:
    """A changed model autogenerates a revision that imports and applies."""
    versions = tmp_path / "versions"
    versions.mkdir()
    script = textwrap.dedent(
        f"""
        import importlib.util, sys
        from alembic import command
        from pgvector.sqlalchemy import Vector
        from sqlalchemy import Integer, create_engine
        from sqlalchemy.orm import Mapped, mapped_column
        import vectorstore as vs
        from vectorstore.schema.migrate import _config

        class Extra(vs.Base):
            __tablename__ = "vectorstore_extra"
            id: Mapped[int] = mapped_column(Integer, primary_key=True)
            embedding: Mapped[list[float]] = mapped_column(Vector(8))

        engine = create_engine({db_url.render_as_string(hide_password=False)!r})
        with engine.begin() as conn:
            cfg = _config(conn)
            loc = cfg.get_main_option("script_location") + "/versions"
            cfg.set_main_option("version_locations", loc + ":" + {str(versions)!r})
            script = command.revision(cfg, "add extra", autogenerate=True,
                                      version_path={str(versions)!r})
        path = script.path
        source = open(path).read()
        assert "Vector(8)" in source, source
        spec = importlib.util.spec_from_file_location("generated_rev", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        with engine.begin() as conn:
            cfg = _config(conn)
            loc = cfg.get_main_option("script_location") + "/versions"
            cfg.set_main_option("version_locations", loc + ":" + {str(versions)!r})
            command.upgrade(cfg, "head")
        print("OK")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "OK" in done.stdout
    engine = vs.make_engine(db_url)
    cols = {c["name"]: c for c in inspect(engine).get_columns("vectorstore_extra")}
    engine.dispose()
    assert "embedding" in cols


def _fake_catalog(engine: Engine, version: str | None) -> None:
    """Shadow pg_available_extensions (search_path puts `fake` before pg_catalog)."""
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA fake"))
        if version is None:
            conn.execute(
                text(
                    "CREATE VIEW fake.pg_available_extensions AS SELECT name, default_version, "
                    "installed_version FROM pg_catalog.pg_available_extensions WHERE false"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE VIEW fake.pg_available_extensions AS SELECT 'vector'::name AS name, "
                    f"'{version}'::text AS default_version, NULL::text AS installed_version"
                )
            )


@pytest.mark.parametrize(("version", "message"), [(None, "not installed"), ("0.4.4", "too old")])
def test_server_without_usable_pgvector_fails_with_install_advice(
    engine: Engine, db_url: URL, version: str | None, message: str
) -> None:
    vs.downgrade(engine, "base")
    with engine.begin() as conn:
        conn.execute(text("DROP EXTENSION vector"))
    _fake_catalog(engine, version)
    shadowed = db_url.update_query_dict({"options": "-csearch_path=fake,pg_catalog,public"})
    with pytest.raises(vs.ExtensionMissingError, match=message):
        vs.migrate(shadowed)
    assert not (_tables(engine) & {"vectorstore_collections", "vectorstore_documents"})
    with engine.connect() as conn:
        installed = conn.execute(
            text("SELECT count(*) FROM pg_extension WHERE extname = 'vector'")
        ).scalar_one()
    assert installed == 0


def test_require_pgvector_reports_installed_version(engine: Engine) -> None:
    with engine.begin() as conn:
        version = require_pgvector(conn)
    assert tuple(int(x) for x in version.split(".")[:2]) >= (0, 5)


def test_migrate_runs_the_scripts_shipped_in_the_package() -> None:
    from vectorstore.schema.migrate import migrations_dir

    folder = migrations_dir()
    assert (folder / "env.py").exists()
    assert (folder / "versions" / "0001_initial.py").exists()
