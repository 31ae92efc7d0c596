"""The wheel ships the migrations, py.typed, and runs them without the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, inspect

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (found,) = out.glob("vectorstore-*.whl")
    return found


def test_wheel_contains_migrations_and_typing_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "vectorstore/py.typed" in names
    assert "vectorstore/_migrations/env.py" in names
    assert "vectorstore/_migrations/script.py.mako" in names
    assert "vectorstore/_migrations/versions/0001_initial.py" in names
    assert "vectorstore/_migrations/versions/0002_full_text_search.py" in names
    # Every module of the package ships (the subpackages are listed by hand in
    # pyproject.toml; an editable install would hide one that is left out).
    package = Path(__file__).resolve().parents[1] / "vectorstore"
    modules = {f"vectorstore/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")}
    assert modules <= names, sorted(modules - names)


def test_migrate_from_the_unpacked_wheel(
    wheel: Path, tmp_path: Path, db_url: URL, engine: Engine
) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    import vectorstore as vs

    vs.downgrade(engine, "base")
    code = (
        "import sys, vectorstore; from vectorstore.schema.migrate import migrations_dir;"
        f"assert vectorstore.__file__.startswith({str(site)!r}), vectorstore.__file__;"
        f"assert str(migrations_dir()).startswith({str(site)!r}), migrations_dir();"
        f"vectorstore.migrate({db_url.render_as_string(hide_password=False)!r}); print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "vectorstore_documents" in inspect(engine).get_table_names()
