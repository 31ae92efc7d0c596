"""``vectorstore.alembic``: an app's own env.py autogenerates importable DocumentMixin revisions.

The example app (``examples/alembic_app``) is copied to a temporary folder
with only its first revision; ``alembic revision --autogenerate`` then writes
the ``DocumentMixin`` table from the models as they are now, and the test
imports it, upgrades, checks, uses the table through a repository and
downgrades: the hooks are proved against whatever the mixin declares.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config
from sqlalchemy import URL, Engine, inspect
from sqlalchemy.orm import Session

import vectorstore as vs
import vectorstore.alembic as vs_alembic
from vectorstore.schema.migrate import head_revision

ROOT = Path(__file__).resolve().parents[1]
ALEMBIC = Path(sys.executable).with_name("alembic")
APP = ROOT / "examples" / "alembic_app"


def alembic(*args: str, url: URL, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECTORSTORE_")}
    return subprocess.run(
        [str(ALEMBIC), "-x", f"url={url.render_as_string(hide_password=False)}", *args],
        cwd=cwd, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


@pytest.fixture
def app_copy(tmp_path: Path) -> Path:
    target = tmp_path / "app"
    shutil.copytree(APP, target, ignore=shutil.ignore_patterns("__pycache__"))
    for revision in (target / "migrations" / "versions").glob("a00[2-9]_*.py"):
        revision.unlink()
    return target


def test_autogenerate_writes_an_importable_documentmixin_revision_that_upgrades_and_checks(
    app_copy: Path, db_url: URL, engine: Engine
) -> None:
    assert alembic("upgrade", "head", url=db_url, cwd=app_copy).returncode == 0
    done = alembic("revision", "--autogenerate", "-m", "docs", "--rev-id", "t002",
                   url=db_url, cwd=app_copy)  # fmt: skip
    assert done.returncode == 0, done.stderr
    revision = next((app_copy / "migrations" / "versions").glob("t002_*.py"))
    source = revision.read_text()
    assert "from pgvector.sqlalchemy import Vector" in source
    assert "Vector(384)" in source
    assert "pgvector.sqlalchemy.vector" not in source
    assert "postgresql_using='hnsw'" in source
    assert "postgresql_using='gin'" in source
    assert "vectorstore_documents" not in source  # vectorstore's own tables stay in its history
    spec = importlib.util.spec_from_file_location("t002", revision)
    assert spec is not None
    assert spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # importable as written

    done = alembic("upgrade", "head", url=db_url, cwd=app_copy)
    assert done.returncode == 0, done.stderr
    done = alembic("check", url=db_url, cwd=app_copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No new upgrade operations detected" in done.stdout + done.stderr
    assert vs.check_schema(db_url) == []  # ... and vectorstore's history is clean too
    indexes = {i["name"] for i in inspect(engine).get_indexes("app_product_docs")}
    assert "ix_app_product_docs_embedding_hnsw" in indexes

    sys.path.insert(0, str(app_copy))
    try:
        models: Any = importlib.import_module("app_models")
        with Session(engine) as session:
            repo = vs.DocumentRepository(session, collection="products", model=models.ProductDoc,
                                         embedder=vs.HashingTestEmbedder())  # fmt: skip
            repo.add("a brass desk lamp", external_id="lamp")
            assert repo.nearest("desk lamp", k=1)[0].document.external_id == "lamp"
            session.commit()
        # A run-time per-collection index is not drift either.
        with vs.DocumentRepository.standalone(engine, collection="products",
                                              model=models.ProductDoc) as repo:  # fmt: skip
            repo.create_index(vs.IndexSpec(per_collection=True))
        assert alembic("check", url=db_url, cwd=app_copy).returncode == 0
    finally:
        sys.path.remove(str(app_copy))
        sys.modules.pop("app_models", None)

    done = alembic("downgrade", "base", url=db_url, cwd=app_copy)
    assert done.returncode == 0, done.stderr
    assert "app_product_docs" not in inspect(engine).get_table_names()
    assert vs.current_revision(db_url) == head_revision()


def test_the_example_apps_committed_history_upgrades_and_checks(db_url: URL) -> None:
    assert alembic("upgrade", "head", url=db_url, cwd=APP).returncode == 0
    done = alembic("check", url=db_url, cwd=APP)
    assert done.returncode == 0, done.stdout + done.stderr
    assert alembic("downgrade", "base", url=db_url, cwd=APP).returncode == 0


def test_urls_with_percent_survive_set_main_option(db_url: URL) -> None:
    rendered = db_url.render_as_string(hide_password=False)
    assert "%2F" in rendered  # the embedded server's socket folder, percent-encoded
    config = Config()
    with pytest.raises(ValueError, match="interpolation"):
        config.set_main_option("sqlalchemy.url", rendered)
    vs_alembic.set_url(config, db_url)
    assert config.get_main_option("sqlalchemy.url") == rendered
    secret = URL.create("postgresql+psycopg2", username="u", password="p%40ss", host="h")
    vs_alembic.set_url(config, secret)
    assert config.get_main_option("sqlalchemy.url") == secret.render_as_string(hide_password=False)


def test_the_hooks_leave_vectorstores_objects_out_and_chain_the_apps() -> None:
    documents = vs.Document.__table__
    assert not vs_alembic.include_object(documents, "vectorstore_documents", "table", False, None)
    assert not vs_alembic.include_object(
        "vectorstore_alembic_version", "vectorstore_alembic_version", "table", True, None
    )
    index = next(iter(documents.indexes))
    assert not vs_alembic.include_object(index, index.name, "index", False, None)
    assert vs_alembic.include_object(None, "app_products", "table", False, None)
    assert not vs_alembic.include_object(None, "vsx_app_docs_7", "index", True, None)

    seen: dict[str, Any] = {}

    class Context:
        def configure(self, **options: Any) -> None:
            seen.update(options)

    vs_alembic.configure(
        Context(), target_metadata=None, connection="c",
        include_object=lambda obj, name, *rest: name != "app_secret",
        render_item=lambda type_, obj, ctx: "Mine()" if obj == "mine" else False,
    )  # fmt: skip
    assert seen["connection"] == "c"
    assert seen["compare_type"] is True
    assert seen["include_object"](None, "app_products", "table", False, None)
    assert not seen["include_object"](None, "app_secret", "table", False, None)
    assert not seen["include_object"](None, "vectorstore_collections", "table", False, None)
    assert seen["render_item"]("type", "mine", None) == "Mine()"
    assert seen["render_item"]("type", "other", None) is False
