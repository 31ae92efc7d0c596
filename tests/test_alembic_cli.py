"""The ``alembic`` command itself, as a subprocess, against a database on the test server.

Two histories: vectorstore's own (``alembic.ini`` at the repository root,
version table ``vectorstore_alembic_version``) and an app's that shares the
database (``examples/alembic_app``, version table ``alembic_version``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import URL, Engine, inspect

import vectorstore as vs
from vectorstore.schema.migrate import head_revision

ROOT = Path(__file__).resolve().parents[1]
ALEMBIC = Path(sys.executable).with_name("alembic")
APP = ROOT / "examples" / "alembic_app"


def alembic(*args: str, url: URL, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECTORSTORE_")}
    return subprocess.run(
        [str(ALEMBIC), "-x", f"url={url.render_as_string(hide_password=False)}", *args],
        cwd=cwd, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_check_downgrade_with_the_alembic_cli(db_url: URL, engine: Engine) -> None:
    done = alembic("check", url=db_url)
    assert done.returncode == 0, done.stderr
    assert "No new upgrade operations detected" in done.stdout + done.stderr

    done = alembic("downgrade", "base", url=db_url)
    assert done.returncode == 0, done.stderr
    assert not {t for t in tables(engine) if t.startswith("vectorstore_") and "version" not in t}
    assert vs.current_revision(db_url) is None

    # `alembic check` can fail: at base the database is behind the scripts.
    done = alembic("check", url=db_url)
    assert done.returncode != 0
    assert "not up to date" in done.stdout + done.stderr

    done = alembic("upgrade", "head", url=db_url)
    assert done.returncode == 0, done.stderr
    assert {"vectorstore_collections", "vectorstore_documents",
            "vectorstore_alembic_version"} <= tables(engine)  # fmt: skip
    assert vs.current_revision(db_url) == head_revision()
    assert alembic("current", url=db_url).stdout.split()[0] == head_revision()
    assert alembic("check", url=db_url).returncode == 0


def test_an_app_with_its_own_history_shares_the_database(db_url: URL, engine: Engine) -> None:
    # vectorstore's tables are already there (the test database is migrated); the
    # app's history runs beside them with its own version table.
    done = alembic("upgrade", "head", url=db_url, cwd=APP)
    assert done.returncode == 0, done.stderr
    assert {"app_products", "app_product_docs", "alembic_version",
            "vectorstore_alembic_version"} <= tables(engine)  # fmt: skip
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "a002"
    assert vs.current_revision(db_url) == head_revision()

    # Neither history reports the other's tables as drift.
    done = alembic("check", url=db_url, cwd=APP)
    assert done.returncode == 0, done.stdout + done.stderr
    assert alembic("check", url=db_url).returncode == 0

    # The app's foreign key to vectorstore's collections works.
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO vectorstore_collections (name, embedding_model, dimension) "
            "VALUES ('shop', 'm', 384)"
        )
        conn.exec_driver_sql(
            "INSERT INTO app_products (sku, title, collection_id) "
            "SELECT 'p1', 'Lamp', id FROM vectorstore_collections WHERE name = 'shop'"
        )

    done = alembic("downgrade", "base", url=db_url, cwd=APP)
    assert done.returncode == 0, done.stderr
    assert not {"app_products", "app_product_docs"} & tables(engine)
    assert vs.current_revision(db_url) == head_revision(), "vectorstore's schema is untouched"
