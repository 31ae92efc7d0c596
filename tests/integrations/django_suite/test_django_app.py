"""The Django app in pytest-django's own style: plain ``django_db`` tests on one connection.

Run by ``tests/integrations/test_django.py`` (a pytest of its own, with
pytest-django on), once with psycopg 3 and once with psycopg2.  pytest-django
creates the test database with ``migrate``, which runs vectorstore's alembic
revisions through the app's Django migration; each ``django_db`` test runs in
a transaction rolled back at its end, and vectorstore's reads and writes run
in that same transaction.  The test database is dropped at the end: that
fails if any connection to it is still open.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import override_settings
from sqlalchemy import text

import vectorstore as vs
from tests.integrations.django_suite.testapp.models import Author, Book
from vectorstore.integrations import django as vectorstore
from vectorstore.schema.migrate import head_revision

DRIVER = os.environ.get("VS_DJANGO_DRIVER", "psycopg")


def documents_seen_by_django() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM vectorstore_documents")
        return int(cursor.fetchone()[0])


@pytest.mark.django_db
def test_django_rows_and_documents_in_one_test_see_each_other() -> None:
    author = Author.objects.create(name="Melville", country="us", extra={"born": 1819})
    book = Book.objects.create(title="Moby-Dick", year=1851, author=author)
    Book.objects.create(title="Typee", year=1846, author=author)
    with vectorstore.repository() as repo:
        doc = repo.add("a whale hunt on the open sea", metadata={"book_id": book.pk},
                       external_id="moby")  # fmt: skip
        assert doc.metadata_ == {"book_id": book.pk}  # JSONB decoded on Django's connection
    assert documents_seen_by_django() == 1  # ... and Django reads what vectorstore wrote
    assert Author.objects.get().extra == {"born": 1819}  # Django's own JSONField is untouched

    # vectorstore reads what Django wrote, uncommitted, in the same transaction: the join.
    BookRow = vectorstore.mapped(Book)
    with vectorstore.repository() as repo:
        hits = repo.nearest(
            "whales at sea", k=5, join=BookRow,
            join_on=BookRow.id == vs.Document.metadata_["book_id"].as_integer(),
            filter=BookRow.year < 1900,
        )  # fmt: skip
        assert [(h.document.external_id, h.extra.title) for h in hits] == [("moby", "Moby-Dick")]
        assert hits[0].extra.author_id == author.pk
        none = repo.nearest("whales at sea", k=5, join=BookRow,
                            join_on=BookRow.id == vs.Document.metadata_["book_id"].as_integer(),
                            filter=BookRow.year > 1900)  # fmt: skip
        assert none.returned == 0
    fetched = Book.objects.in_bulk([h.extra.id for h in hits])
    assert fetched[book.pk].title == "Moby-Dick"


@pytest.mark.django_db
def test_the_previous_tests_documents_were_rolled_back_with_its_transaction() -> None:
    assert documents_seen_by_django() == 0
    assert Author.objects.count() == 0
    with vectorstore.repository() as repo:
        assert repo.count() == 0


@pytest.mark.django_db
def test_writes_commit_and_roll_back_with_transaction_atomic() -> None:
    def write_then_fail() -> None:
        with transaction.atomic():
            Author.objects.create(name="gone", country="xx")
            with vectorstore.repository() as repo:
                repo.add("rolled back with the author")
            assert documents_seen_by_django() == 1
            raise RuntimeError("roll it all back")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert Author.objects.count() == 0
    assert documents_seen_by_django() == 0

    with transaction.atomic():
        Author.objects.create(name="kept", country="fr")
        with vectorstore.repository() as repo:
            repo.add("kept with the author", external_id="k1")
    assert Author.objects.count() == 1
    assert documents_seen_by_django() == 1


@pytest.mark.django_db
def test_a_failed_write_leaves_djangos_transaction_usable() -> None:
    with transaction.atomic():
        with vectorstore.repository() as repo:
            repo.add("first", external_id="same")
            with pytest.raises(vs.ConflictError):
                repo.add("second", external_id="same")
            with pytest.raises(vs.ValidationError):
                repo.add("", external_id="empty")
        Author.objects.create(name="after the failure", country="de")
    assert Author.objects.count() == 1
    assert documents_seen_by_django() == 1


@pytest.mark.django_db
def test_migrate_created_the_schema_with_its_own_version_table() -> None:
    with vectorstore.engine().connect() as conn:
        assert vs.current_revision(conn) == head_revision()
        assert vs.check_schema(conn) == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM django_migrations WHERE app = 'vectorstore'")
        assert [row[0] for row in cursor.fetchall()] == ["0001_initial"]
        cursor.execute("SELECT version_num FROM vectorstore_alembic_version")
        assert cursor.fetchone()[0] == head_revision()


@pytest.mark.django_db
def test_management_commands(tmp_path: Path) -> None:
    source = tmp_path / "books.jsonl"
    rows = [{"id": f"b{i}", "body": f"book number {i}", "lang": "en"} for i in range(12)]
    source.write_text("\n".join(json.dumps(r) for r in rows))
    out = io.StringIO()
    call_command("vectorstore_ingest", str(source), "--text-column", "body", "--id-column", "id",
                 "--metadata-columns", "lang", stdout=out)  # fmt: skip
    assert "inserted 12" in out.getvalue()
    assert documents_seen_by_django() == 12
    with pytest.raises(CommandError, match="nope"):
        call_command("vectorstore_ingest", str(source), "--text-column", "nope")
    with pytest.raises(CommandError, match="no such file"):
        call_command("vectorstore_ingest", str(tmp_path / "missing.csv"))
    assert documents_seen_by_django() == 12

    out = io.StringIO()
    call_command("vectorstore_stats", "--json", stdout=out)
    stats = json.loads(out.getvalue())
    assert stats["documents"] == 12
    assert [(c["name"], c["rows"]) for c in stats["collections"]] == [("books", 12)]

    out = io.StringIO()
    call_command("vectorstore_index", "--method", "ivfflat", "--lists", "2", "--name",
                 "books_ivf", stdout=out)  # fmt: skip
    assert "index books_ivf is ready" in out.getvalue()
    with vectorstore.repository() as repo:
        assert "books_ivf" in [i.name for i in repo.list_indexes()]
    call_command("vectorstore_index", "--drop", "books_ivf", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no ANN index named 'books_ivf'"):
        call_command("vectorstore_index", "--drop", "books_ivf")


def _other_client_backends() -> set[int]:
    """Client backends on this database besides Django's own connection.

    Client backends only: an autovacuum worker shows up with the database's
    name too (CI caught one once).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return {int(row[0]) for row in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_committed_writes_are_real_and_leave_no_connection_behind() -> None:
    # A backend whose client has just closed (an earlier test's) lingers in
    # pg_stat_activity for a moment: what counts is that no new one appears.
    before = _other_client_backends()
    with vectorstore.repository() as repo:
        repo.add("committed for real", external_id="real")
    # Checked before the standalone repository below opens a connection of its own.
    assert _other_client_backends() - before == set()  # only Django's own connection
    # Another connection (a standalone repository on the same database) sees the commit.
    with vs.DocumentRepository.standalone(vectorstore.database_url(), collection="books") as other:
        assert other.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_flush_after_a_transactional_test_emptied_vectorstores_tables_too() -> None:
    assert documents_seen_by_django() == 0
    with vectorstore.repository() as repo:
        assert repo.count() == 0


def test_database_url_uses_djangos_driver() -> None:
    url = vectorstore.database_url()
    assert url.drivername == f"postgresql+{DRIVER}"
    assert connection.Database.__name__.split(".")[0] == DRIVER


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ({"COLECTION": "typo"}, "unknown key"),
        ({"DATABASE": "nowhere"}, "not a DATABASES alias"),
        ({"EMBEDDER": vs.HashingTestEmbedder(16)}, "16-d vectors"),
        ({"MODEL": "vectorstore:Collection"}, "DocumentMixin"),
    ],
)
@pytest.mark.django_db
def test_bad_settings_are_one_clear_error(value: dict[str, object], needle: str) -> None:
    with override_settings(VECTORSTORE=value), pytest.raises(vs.ConfigurationError, match=needle):
        with vectorstore.repository():
            pass


def test_a_database_that_is_not_postgresql_is_refused() -> None:
    with pytest.raises(vs.ConfigurationError, match="needs PostgreSQL"):
        vectorstore.engine("lite")


@pytest.mark.django_db
def test_a_session_on_djangos_connection_for_own_queries() -> None:
    author = Author.objects.create(name="Verne", country="fr")
    with vectorstore.session() as session:
        row = session.execute(text("SELECT name FROM testapp_author WHERE id = :id"),
                              {"id": author.pk}).one()  # fmt: skip
    assert row.name == "Verne"


@pytest.mark.django_db
def test_migrate_upgrades_a_schema_left_behind_by_an_older_release() -> None:
    with vectorstore.engine().connect() as conn:
        vs.downgrade(conn, "0001")  # as if an older vectorstore had migrated this database
        assert vs.current_revision(conn) == "0001"
    call_command("migrate", verbosity=0)  # no Django migration to apply; vectorstore's run
    with vectorstore.engine().connect() as conn:
        assert vs.current_revision(conn) == head_revision()
        assert vs.check_schema(conn) == []


@pytest.mark.django_db(transaction=True)
def test_unapplying_the_migration_removes_the_schema_and_migrate_restores_it() -> None:
    out = io.StringIO()
    call_command("migrate", "vectorstore", "zero", stdout=out, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('vectorstore_documents'), "
                       "to_regclass('testapp_book')")  # fmt: skip
        assert cursor.fetchone() == (None, None)  # the app that depends on it went too
    call_command("migrate", stdout=out, verbosity=0)
    with vectorstore.engine().connect() as conn:
        assert vs.current_revision(conn) == head_revision()
    with vectorstore.repository() as repo:
        repo.add("the schema is back")
        assert repo.count() == 1


@pytest.mark.django_db
def test_views_through_the_test_client_in_the_test_transaction(client: Any) -> None:
    author = Author.objects.create(name="Melville", country="us")
    book = Book.objects.create(title="Moby-Dick", year=1851, author=author)
    body = {"book": book.pk, "text": "a whale hunt", "id": "w1"}
    created = client.post("/add", json.dumps(body), content_type="application/json")
    assert created.status_code == 201
    again = client.post("/add", json.dumps(body), content_type="application/json")
    assert again.status_code == 409  # the middleware's JSON error
    assert again.json()["error"] == "ConflictError"
    empty = client.post("/add", json.dumps({**body, "text": "", "id": "w2"}),
                        content_type="application/json")  # fmt: skip
    assert empty.status_code == 400
    assert client.get("/search", {"q": "whale"}).json() == {"titles": ["Moby-Dick"]}
    assert documents_seen_by_django() == 1


@pytest.mark.django_db
def test_the_apps_migrations_match_its_models() -> None:
    out = io.StringIO()
    call_command("makemigrations", "vectorstore", "testapp", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
