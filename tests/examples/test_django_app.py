"""The Django example through Django's test client and call_command, on a real database.

Django is configured once for this module with the example project's settings;
each test points ``DATABASES`` at its own throwaway database from vectorstore's
pytest plugin (``override_settings``), and the app builds its SQLAlchemy engine
from those settings, as it does in production.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL, Engine

from tests.conftest import table_count

django = pytest.importorskip("django")
# Configure Django for this module without leaving DJANGO_SETTINGS_MODULE in the
# environment: the suite's subprocesses (a user's pytest, with pytest-django
# installed) must not inherit it.
_previous = os.environ.get("DJANGO_SETTINGS_MODULE")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.project.settings")
django.setup()
if _previous is None:
    del os.environ["DJANGO_SETTINGS_MODULE"]

from django.core.management import CommandError, call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from examples.django_app.docsearch import store  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def django_db(url: URL) -> dict[str, Any]:
    host = url.query.get("host") or url.host
    port = url.query.get("port") or url.port
    return {
        "ENGINE": "django.db.backends.postgresql", "NAME": url.database, "HOST": host,
        "PORT": str(port or ""), "USER": url.username, "PASSWORD": url.password or "",
    }  # fmt: skip


@contextmanager
def database_settings(db: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Point DATABASES["default"] at ``db`` (Django warns against override_settings for it,
    so the dict is swapped in place and Django's connection closed, to reconnect there)."""
    from django.conf import settings

    saved = dict(settings.DATABASES["default"])
    store.dispose_all()
    settings.DATABASES["default"].update(db)
    try:
        with override_settings(VECTORSTORE={"COLLECTION": "documents", "EMBEDDER": "hashing"}):
            yield db
    finally:
        store.dispose_all()
        settings.DATABASES["default"].update(saved)


@pytest.fixture
def settings_for(vectorstore_url: URL) -> Iterator[dict[str, Any]]:
    with database_settings(django_db(vectorstore_url)) as db:
        yield db


@pytest.fixture
def client(settings_for: dict[str, Any]) -> Client:
    return Client()


def test_engine_is_built_from_django_settings(
    settings_for: dict[str, Any], vectorstore_url: URL
) -> None:
    url = store.database_url()
    assert url.database == vectorstore_url.database
    from django.db import connection

    # The driver Django's backend loaded (psycopg 3 when installed, else psycopg2).
    assert url.drivername == f"postgresql+{connection.Database.__name__.split('.')[0]}"
    assert store.engine() is store.engine()
    with store.engine().connect() as conn:
        assert conn.exec_driver_sql("SELECT current_database()").scalar() == url.database


def test_a_posted_document_is_found_by_meaning_and_by_filter(
    client: Client, vectorstore_engine: Engine
) -> None:
    for text, kind in [("the cat sleeps on the mat", "pet"), ("bond yields rose", "finance")]:
        body = json.dumps({"text": text, "metadata": {"kind": kind}})
        done = client.post("/documents", data=body, content_type="application/json")
        assert done.status_code == 201, done.content
    assert table_count(vectorstore_engine) == 2
    found = client.get("/search", {"q": "cat on a mat", "k": 1})
    assert found.status_code == 200
    assert found.json()["results"][0]["text"] == "the cat sleeps on the mat"
    filtered = client.get("/search", {"q": "cat on a mat", "where": "kind=finance"})
    assert [r["metadata"]["kind"] for r in filtered.json()["results"]] == ["finance"]


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/documents", "{bad", 400, "Expecting"),
        ("/documents", json.dumps({"nope": 1}), 400, '"text" string'),
        ("/documents", json.dumps({"text": "x", "metadata": [1]}), 400, "metadata"),
    ],
)
def test_bad_input_is_400_and_writes_nothing(
    client: Client, vectorstore_engine: Engine, path: str, body: str, status: int, needle: str
) -> None:
    done = client.post(path, data=body, content_type="application/json")
    assert done.status_code == status
    assert needle in done.json()["message"]
    assert table_count(vectorstore_engine) == 0


def test_malformed_search_requests_are_400_json_errors(client: Client) -> None:
    assert client.get("/search").status_code == 400
    assert client.get("/search", {"q": "x", "k": "many"}).status_code == 400
    assert client.get("/search", {"q": "x", "where": "broken"}).status_code == 400
    assert client.post("/search").status_code == 405


def test_duplicate_external_id_is_409(client: Client, vectorstore_engine: Engine) -> None:
    body = json.dumps({"text": "one", "external_id": "e1"})
    assert client.post("/documents", data=body, content_type="application/json").status_code == 201
    again = client.post("/documents", data=body, content_type="application/json")
    assert again.status_code == 409
    assert table_count(vectorstore_engine) == 1


def test_a_database_that_is_down_is_503() -> None:
    closed = Path(tempfile.mkdtemp(prefix="vs-django-down-", dir="/tmp"))
    try:
        db = {"ENGINE": "django.db.backends.postgresql", "NAME": "x", "HOST": str(closed),
              "PORT": "", "USER": "postgres", "PASSWORD": ""}  # fmt: skip
        with database_settings(db):
            done = Client().get("/search", {"q": "cats"})
        assert done.status_code == 503
        assert str(closed) not in done.json()["message"]
    finally:
        store.dispose_all()
        shutil.rmtree(closed, ignore_errors=True)


def test_ingest_file_command(settings_for: dict[str, Any], vectorstore_engine: Engine,
                             tmp_path: Path) -> None:  # fmt: skip
    source = tmp_path / "docs.jsonl"
    rows = [{"id": f"d{i}", "body": f"document number {i}", "lang": "en"} for i in range(25)]
    source.write_text("\n".join(json.dumps(r) for r in rows))
    out = io.StringIO()
    call_command("ingest_file", str(source), "--text-column", "body", "--id-column", "id",
                 "--metadata-columns", "lang", stdout=out)  # fmt: skip
    assert "inserted 25" in out.getvalue()
    assert table_count(vectorstore_engine) == 25
    out = io.StringIO()
    call_command("ingest_file", str(source), "--text-column", "body", "--id-column", "id",
                 stdout=out)  # fmt: skip
    assert "inserted 0, skipped 25" in out.getvalue()

    with pytest.raises(CommandError, match="no text column 'nope'"):
        call_command("ingest_file", str(source), "--text-column", "nope")
    with pytest.raises(CommandError, match="no such file"):
        call_command("ingest_file", str(tmp_path / "missing.csv"))
    with pytest.raises(CommandError, match=r"expected \.csv"):
        call_command("ingest_file", str(tmp_path / "x.txt"))
    assert table_count(vectorstore_engine) == 25


def test_manage_py_runs_the_command_as_users_do(
    settings_for: dict[str, Any], vectorstore_engine: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "docs.csv"
    source.write_text("text,external_id\nfirst row,a\nsecond row,b\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VECTORSTORE_", "DJANGO_"))}
    env.update(DJANGO_DB_NAME=settings_for["NAME"], DJANGO_DB_HOST=settings_for["HOST"],
               DJANGO_DB_PORT=settings_for["PORT"], DJANGO_DB_USER=settings_for["USER"],
               VECTORSTORE_MODEL="hashing")  # fmt: skip
    manage = ROOT / "examples" / "django_app" / "manage.py"
    done = subprocess.run([sys.executable, str(manage), "ingest_file", str(source)],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "inserted 2" in done.stdout
    assert table_count(vectorstore_engine) == 2
