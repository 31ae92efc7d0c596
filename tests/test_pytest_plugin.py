"""vectorstore's pytest plugin, run the way users run it: pytest in their own project.

Each test writes a small test file into a temporary folder (outside this suite,
so only the installed plugin provides fixtures) and runs pytest on it in a
subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.conftest import url_for

USER_TESTS = '''
import vectorstore as vs
from vectorstore.schema.migrate import head_revision


def test_repository_fixture(vectorstore_repo, vectorstore_session):
    vectorstore_repo.add("a cat on the mat", metadata={"kind": "pet"})
    vectorstore_repo.add("bond yields rose")
    vectorstore_session.commit()
    hits = vectorstore_repo.nearest("cat", k=1)
    assert hits[0].document.text == "a cat on the mat"


def test_each_test_gets_a_fresh_database(vectorstore_repo):
    assert vectorstore_repo.count() == 0


def test_database_is_migrated(vectorstore_url, vectorstore_engine):
    assert vs.current_revision(vectorstore_engine) == head_revision()
    assert vectorstore_url.database.startswith("vectorstore_test_")


def test_embedder_is_deterministic(vectorstore_embedder):
    assert isinstance(vectorstore_embedder, vs.HashingTestEmbedder)
    a, b = vectorstore_embedder.embed(["same text", "same text"])
    assert (a == b).all()
'''


def run_pytest(folder: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VECTORSTORE_", "DJANGO_"))}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def throwaway_databases() -> set[str]:
    admin = create_engine(url_for("postgres"))
    try:
        with admin.connect() as conn:
            rows = conn.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE 'vectorstore_t%'")
            )
            prefixes = ("vectorstore_test_", "vectorstore_tpl_")
            return {r[0] for r in rows if r[0].startswith(prefixes)}
    finally:
        admin.dispose()


def test_fixtures_give_each_test_a_migrated_database_and_clean_up(tmp_path: Path) -> None:
    (tmp_path / "test_user_app.py").write_text(textwrap.dedent(USER_TESTS))
    before = throwaway_databases()
    server = url_for("postgres").render_as_string(hide_password=False)
    done = run_pytest(tmp_path, "--vectorstore-url", server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout
    assert throwaway_databases() <= before, "test and template databases are dropped"

    # The environment variable works as well as the option.
    done = run_pytest(tmp_path, VECTORSTORE_TEST_DATABASE_URL=server)
    assert done.returncode == 0, done.stdout + done.stderr


def test_loading_the_plugin_starts_nothing(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    data_dir = tmp_path / "never-created"
    done = run_pytest(tmp_path, VECTORSTORE_DATA_DIR=str(data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert not data_dir.exists(), "no embedded server was started"
    helped = run_pytest(tmp_path, "--help")
    assert "--vectorstore-url" in helped.stdout, "the plugin loads from its entry point"
    done = run_pytest(tmp_path, "--fixtures")
    for name in ("vectorstore_repo", "vectorstore_session", "vectorstore_engine",
                 "vectorstore_url", "vectorstore_embedder"):  # fmt: skip
        assert name in done.stdout


APP_CONFTEST = '''
import pytest
from sqlalchemy import Column, MetaData, Table, Text

LOG = {log!r}
app_metadata = MetaData()
Table("app_notes", app_metadata, Column("slug", Text, primary_key=True))


def create_app_tables(engine):
    with open(LOG, "a") as log:
        log.write("loaded\\n")
    app_metadata.create_all(engine)


@pytest.fixture(scope="session")
def vectorstore_load():
    return [create_app_tables, {ini!r}]
'''

APP_TESTS = '''
import subprocess
import sys

from sqlalchemy import create_engine, inspect


def tables(url):
    engine = create_engine(str(url))  # a plain string, password and all
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_apps_schema_is_in_every_database(vectorstore_url):
    assert {"app_notes", "app_products", "app_product_docs", "alembic_version",
            "vectorstore_documents"} <= tables(vectorstore_url)


def test_again_in_a_fresh_copy(vectorstore_url, vectorstore_engine):
    with vectorstore_engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO app_notes VALUES ('x')")
    assert "app_notes" in tables(vectorstore_url)


def test_the_url_is_a_plain_string_for_tools(vectorstore_url):
    code = "import sys, sqlalchemy as sa; e = sa.create_engine(sys.argv[1]); e.connect().close()"
    subprocess.run([sys.executable, "-c", code, str(vectorstore_url)], check=True)
    assert f"{vectorstore_url}" == vectorstore_url.render_as_string(hide_password=False)
    assert vectorstore_url.database.startswith("vectorstore_test_")
'''


def test_the_apps_own_schema_is_loaded_into_the_template_once(tmp_path: Path) -> None:
    import shutil

    app = tmp_path / "alembic_app"
    shutil.copytree(Path(__file__).resolve().parents[1] / "examples" / "alembic_app", app,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    log = tmp_path / "loads.log"
    (tmp_path / "conftest.py").write_text(
        APP_CONFTEST.format(log=str(log), ini=str(app / "alembic.ini"))
    )
    (tmp_path / "test_app_schema.py").write_text(APP_TESTS)
    before = throwaway_databases()
    server = url_for("postgres").render_as_string(hide_password=False)
    done = run_pytest(tmp_path, "--vectorstore-url", server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
    assert log.read_text() == "loaded\n", "loaded once per session, into the template"
    assert throwaway_databases() <= before


def test_a_bad_loader_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n@pytest.fixture(scope='session')\n"
        "def vectorstore_load():\n    return ['/nowhere/alembic.ini']\n"
    )
    (tmp_path / "test_x.py").write_text("def test_x(vectorstore_url):\n    pass\n")
    server = url_for("postgres").render_as_string(hide_password=False)
    done = run_pytest(tmp_path, "--vectorstore-url", server)
    assert done.returncode != 0
    assert "no alembic config at /nowhere/alembic.ini" in done.stdout
