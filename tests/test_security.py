"""Security: identifiers, credentials, and a least-privilege role.

A dedicated embedded server is set up like a production database (see
``docs/security.md``): password authentication (SCRAM) for two roles,

* ``vs_owner`` owns the database and runs the migrations (tables, indexes);
* ``vs_app`` may only read and write vectorstore's tables;

and the superuser creates the pgvector extension once (pgvector is not a
"trusted" extension, so only a superuser can).  The tests prove the app role
can run add, bulk_add (both COPY paths), nearest and delete, and cannot create
extensions, indexes or tables, or run the migrations; and that a password in
the database URL never shows up in logs, exception messages, tracebacks or
reprs - whether the connection works, the password is wrong, or the server is
unreachable.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import URL, create_engine, text
from sqlalchemy.pool import NullPool

import vectorstore as vs
from tests._dedicated import dedicated_server

DB = "appdb"
OWNER, OWNER_PW = "vs_owner", "Owner-Pa55-9f3d1c"
APP, APP_PW = "vs_app", "App-Pa55-77c0e2b4"
WRONG_PW = "Wrong-Pa55-b01dface"
SECRETS = (OWNER_PW, APP_PW, WRONG_PW)

# The app role's grants: data only, nothing on the schema beyond USAGE.
APP_GRANTS = f"""
GRANT CONNECT ON DATABASE {DB} TO {APP};
GRANT USAGE ON SCHEMA public TO {APP};
GRANT SELECT, INSERT, UPDATE, DELETE ON vectorstore_collections, vectorstore_documents TO {APP};
GRANT SELECT ON vectorstore_alembic_version TO {APP};
GRANT SELECT, UPDATE (switched_at) ON vectorstore_aliases TO {APP};
"""


def _role_url(server: vs.EmbeddedServer, user: str, password: str, driver: str = "psycopg2") -> URL:
    return URL.create(
        f"postgresql+{driver}",
        username=user,
        password=password,
        database=DB,
        query={"host": str(server.socket_dir)},
    )


@pytest.fixture(scope="module")
def server() -> Iterator[vs.EmbeddedServer]:
    with dedicated_server("security", migrate=False) as srv:
        admin = create_engine(srv.url("postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as conn:
            conn.execute(text(f"CREATE ROLE {OWNER} LOGIN PASSWORD '{OWNER_PW}'"))
            conn.execute(text(f"CREATE ROLE {APP} LOGIN PASSWORD '{APP_PW}'"))
            conn.execute(text(f"CREATE DATABASE {DB} OWNER {OWNER}"))
        admin.dispose()
        # The superuser's one step inside the database: pgvector is not a trusted extension.
        su = create_engine(srv.url(DB), poolclass=NullPool)
        with su.begin() as conn:
            conn.execute(text("CREATE EXTENSION vector"))
        su.dispose()
        _require_passwords(srv)
        vs.migrate(_role_url(srv, OWNER, OWNER_PW))
        owner = create_engine(_role_url(srv, OWNER, OWNER_PW), poolclass=NullPool)
        with owner.begin() as conn:
            conn.execute(text(APP_GRANTS))
        owner.dispose()
        yield srv


def _require_passwords(server: vs.EmbeddedServer) -> None:
    """SCRAM for the two roles over the socket; the superuser keeps trust (tests only)."""
    hba = server.data_dir / "pg_hba.conf"
    rules = f"local all {OWNER},{APP} scram-sha-256\n"
    hba.write_text(rules + hba.read_text())
    su = create_engine(server.url("postgres"), poolclass=NullPool)
    with su.connect() as conn:
        assert conn.execute(text("SELECT pg_reload_conf()")).scalar_one() is True
        errors = conn.execute(
            text("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL")
        )
        assert errors.scalar_one() == 0
    su.dispose()


def _no_secret(*texts: str) -> None:
    for blob in texts:
        for secret in SECRETS:
            assert secret not in blob


def _full_text(exc: BaseException) -> str:
    """Message, repr and the whole traceback, chained causes included."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


# -- least privilege ----------------------------------------------------------------------
@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_app_role_can_write_and_search(server: vs.EmbeddedServer, driver: str) -> None:
    engine = vs.make_engine(_role_url(server, APP, APP_PW, driver))
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection=f"app-{driver}", embedder=vs.HashingTestEmbedder()
    )
    try:
        repo.add("a single document", external_id="one")
        repo.bulk_add([{"text": f"bulk {i}", "external_id": f"b{i}"} for i in range(20)])
        result = repo.bulk_add(
            [{"text": "bulk 0 again", "external_id": "b0"}, {"text": "new", "external_id": "n"}],
            on_conflict="update",  # the staging path: a TEMP table, allowed to PUBLIC
        )
        assert (result.inserted, result.updated) == (1, 1)
        hits = repo.nearest("bulk", k=5, filter={"$not": {"external_id": "one"}})
        assert len(hits) == 5
        assert repo.delete(external_ids=["n"]) == 1
        assert repo.count() == 21
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == APP
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
        "DROP EXTENSION vector CASCADE",
        "CREATE INDEX app_ix ON vectorstore_documents USING hnsw (embedding vector_l2_ops)",
        "DROP INDEX ix_vectorstore_documents_embedding_hnsw",
        "CREATE TABLE app_table (id int)",
        "ALTER TABLE vectorstore_documents ADD COLUMN x int",
        "TRUNCATE vectorstore_documents",
        "DROP TABLE vectorstore_documents",
    ],
)
def test_app_role_cannot_change_the_schema(server: vs.EmbeddedServer, ddl: str) -> None:
    engine = create_engine(_role_url(server, APP, APP_PW), poolclass=NullPool)
    try:
        with pytest.raises(vs.DatabaseError) as caught, vs.errors.db_errors("ddl as the app role"):
            with engine.begin() as conn:
                conn.execute(text(ddl))
        assert caught.value.sqlstate == "42501"  # insufficient_privilege
    finally:
        engine.dispose()


def test_app_role_cannot_run_migrations(server: vs.EmbeddedServer) -> None:
    with pytest.raises(vs.VectorStoreError):
        vs.downgrade(_role_url(server, APP, APP_PW), "base")
    assert vs.current_revision(_role_url(server, APP, APP_PW)) is not None


def test_migration_role_can_create_indexes(server: vs.EmbeddedServer) -> None:
    engine = create_engine(_role_url(server, OWNER, OWNER_PW), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("CREATE INDEX owner_ix ON vectorstore_documents USING btree (created_at)")
            )
            conn.execute(text("DROP INDEX owner_ix"))
    finally:
        engine.dispose()


# -- credentials never leak -----------------------------------------------------------------
@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    names = ["sqlalchemy.engine", "sqlalchemy.pool", "sqlalchemy.dialects", "vectorstore"]
    loggers = [logging.getLogger(n) for n in names]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    for lg, level in zip(loggers, old, strict=True):
        lg.setLevel(level)


def test_a_working_password_never_appears_in_logs_or_reprs(
    server: vs.EmbeddedServer, debug_logs: pytest.LogCaptureFixture
) -> None:
    url = _role_url(server, APP, APP_PW)
    engine = vs.make_engine(url, echo="debug", echo_pool="debug")
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection="logs", embedder=vs.HashingTestEmbedder()
    )
    try:
        repo.add("logged document")
        hits = repo.nearest("logged", k=1)
        shown = [
            repr(engine), str(engine.url), repr(engine.url), repr(repo), repr(repo.collection),
            repr(hits), repr(hits[0].document), str(vs.normalize_url(url)),
            repr(vs.resolve_url(url)),
        ]  # fmt: skip
        _no_secret(*shown, debug_logs.text)
        assert "logged document" in debug_logs.text  # the logs were really captured
    finally:
        engine.dispose()


def test_a_wrong_password_never_appears_in_errors_or_logs(
    server: vs.EmbeddedServer, debug_logs: pytest.LogCaptureFixture
) -> None:
    engine = vs.make_engine(_role_url(server, APP, WRONG_PW), echo="debug")
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection="denied", embedding_model="m"
    )
    try:
        # The driver reports a failed login without a SQLSTATE, so it is classified
        # as a connection failure; the message says what happened.
        with pytest.raises(vs.DatabaseError, match="password authentication failed") as caught:
            repo.count()
        _no_secret(_full_text(caught.value), debug_logs.text)
    finally:
        engine.dispose()
    log = Path(server.log_file).read_text(errors="replace")
    assert "password authentication failed" in log
    _no_secret(log)


def test_an_unreachable_server_error_hides_the_password(tmp_path: Path) -> None:
    url = URL.create(
        "postgresql+psycopg2",
        username=APP,
        password=APP_PW,
        database=DB,
        query={"host": str(tmp_path / "no-server-here")},
    )
    engine = vs.make_engine(url)
    try:
        with pytest.raises(vs.ConnectionLostError) as caught:
            vs.DocumentRepository.standalone(engine, collection="c", embedding_model="m").count()
        _no_secret(_full_text(caught.value))
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://{APP}:{APP_PW}@localhost/db",
        f"postgresql+pg8000://{APP}:{APP_PW}@localhost/db",
        f"postgresql://{APP}:{APP_PW}@localhost:notaport/db",
        f"not a url {APP_PW}",
    ],
    ids=["other-backend", "other-driver", "bad-port", "garbage"],
)
def test_configuration_errors_hide_the_password(url: str) -> None:
    with pytest.raises(vs.ConfigurationError) as caught:
        vs.make_engine(url)
    _no_secret(_full_text(caught.value))


def test_cli_never_prints_the_password(
    server: vs.EmbeddedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from vectorstore.cli import main

    good = _role_url(server, APP, APP_PW).render_as_string(hide_password=False)
    bad = _role_url(server, APP, WRONG_PW).render_as_string(hide_password=False)
    assert main(["--database-url", good, "stats"]) == 0
    assert main(["--database-url", bad, "stats"]) == 1
    assert main(["--database-url", bad, "search", "anything", "-c", "logs"]) == 1
    assert main(["--database-url", good, "db", "current"]) == 0
    out = capsys.readouterr()
    assert "error:" in out.err
    _no_secret(out.out, out.err)


# -- values are bound, identifiers quoted ------------------------------------------------
def test_values_are_bound_parameters(server: vs.EmbeddedServer) -> None:
    """Every user value reaches the server as a parameter, never inside the SQL text."""
    marker = "Bound-Value-5ecf00d"
    statements: list[str] = []
    engine = vs.make_engine(_role_url(server, APP, APP_PW))

    from sqlalchemy import event

    @event.listens_for(engine, "before_cursor_execute")
    def _record(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        engine, collection=f"col-{marker}", embedder=vs.HashingTestEmbedder()
    )
    try:
        repo.add(f"text {marker}", metadata={f"key-{marker}": marker}, external_id=marker)
        repo.bulk_add([{"text": f"bulk {marker}", "external_id": f"x{marker}"}], on_conflict="skip")
        repo.nearest(np.ones(vs.DEFAULT_DIMENSION), k=3, filter={f"key-{marker}": marker})
        repo.nearest(
            "text", k=3, filter={"external_id": {"$in": [marker]}, "text": {"$like": marker}}
        )
        repo.get_by_external_id(marker)
        repo.delete(external_ids=[marker])
        assert statements
        for sql in statements:
            assert marker not in sql
    finally:
        engine.dispose()


def test_app_model_identifiers_are_quoted_in_copy(server: vs.EmbeddedServer) -> None:
    """A valid but reserved/mixed-case table name works because names are quoted."""
    from sqlalchemy.orm import DeclarativeBase

    class AppBase(DeclarativeBase):
        pass

    class SelectDoc(vs.DocumentMixin, AppBase):
        __tablename__ = "Select"  # a reserved word, mixed case: must be quoted everywhere

    owner = vs.make_engine(_role_url(server, OWNER, OWNER_PW))
    try:
        AppBase.metadata.create_all(owner)
        repo: vs.DocumentRepository[SelectDoc] = vs.DocumentRepository.standalone(
            owner, collection="quoted", model=SelectDoc, embedder=vs.HashingTestEmbedder()
        )
        repo.bulk_add(["one", "two"])
        repo.bulk_add([{"text": "three", "external_id": "3"}], on_conflict="skip")
        assert repo.count() == 3
        assert len(repo.nearest("one", k=2)) == 2
        AppBase.metadata.drop_all(owner)
    finally:
        owner.dispose()
