"""The Flask extension through Flask's test client and CLI runner, against a real database."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import pytest
from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import URL, Engine, String, create_engine, pool, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import vectorstore as vs
from tests.conftest import table_count, url_for
from vectorstore.integrations.flask import VectorStore, error_status, shared_embedder


def make_app(url: URL | str | None, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(
        {"VECTORSTORE_DATABASE_URL": url, "VECTORSTORE_EMBEDDER": "hashing", **config}
    )
    return app


def routes(app: Flask, ext: VectorStore) -> None:
    @app.post("/notes")
    def add_note() -> tuple[Any, int]:
        body = request.get_json()
        doc = ext.repository.add(body["text"], external_id=body.get("id"))
        if body.get("commit", True):
            ext.session.commit()
        return {"id": doc.id}, 201

    @app.get("/notes/<int:doc_id>")
    def get_note(doc_id: int) -> Any:
        return {"text": ext.repository.get(doc_id).text}

    @app.get("/search")
    def search() -> Any:
        hits = ext.repository.nearest(request.args["q"], k=3)
        return {"texts": [h.document.text for h in hits], "strategy": hits.strategy}

    @app.get("/same")
    def same() -> Any:
        return {
            "repository": ext.repository is ext.repository,
            "bound": ext.repository.owns_transactions is False,
            "session": ext.session is ext.session,
        }


@pytest.fixture(params=["psycopg2", "psycopg"])
def app(
    vectorstore_url: URL, request: pytest.FixtureRequest
) -> Iterator[tuple[Flask, VectorStore]]:
    app = make_app(vectorstore_url.set(drivername=f"postgresql+{request.param}"))
    ext = VectorStore(app, json_errors=True)
    routes(app, ext)
    yield app, ext
    app.extensions["vectorstore"].engine.dispose()


def test_a_request_scoped_repository_writes_and_reads_in_the_request_session(
    app: tuple[Flask, VectorStore], vectorstore_engine: Engine
) -> None:
    flask_app, _ = app
    client = flask_app.test_client()
    created = client.post("/notes", json={"text": "the cat sleeps on the mat", "id": "n1"})
    assert created.status_code == 201
    assert table_count(vectorstore_engine) == 1  # committed by the view: visible elsewhere
    assert client.get(f"/notes/{created.get_json()['id']}").get_json()["text"].startswith("the cat")
    found = client.get("/search?q=cat on the mat").get_json()
    assert found["texts"][0] == "the cat sleeps on the mat"
    assert found["strategy"]
    assert client.get("/same").get_json() == {"repository": True, "bound": True, "session": True}


def test_what_the_view_did_not_commit_is_rolled_back_at_teardown(
    app: tuple[Flask, VectorStore], vectorstore_engine: Engine
) -> None:
    client = app[0].test_client()
    assert (
        client.post("/notes", json={"text": "kept only if committed", "commit": False}).status_code
        == 201
    )
    assert table_count(vectorstore_engine) == 0
    with vectorstore_engine.connect() as conn:
        # ... and nothing is left open on the server: no idle transaction of ours.
        idle = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND state LIKE 'idle in transaction%'")
        ).scalar_one()  # fmt: skip
    assert idle == 0


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/notes", {"text": ""}, 400, "ValidationError"),
        ("/notes/999999", None, 404, "DocumentNotFoundError"),
        ("/notes", {"text": "again", "id": "dup"}, 409, "ConflictError"),
    ],
)
def test_json_errors_map_the_error_tree_to_statuses(
    app: tuple[Flask, VectorStore], vectorstore_engine: Engine, path: str,
    body: dict[str, Any] | None, status: int, error: str,
) -> None:  # fmt: skip
    client = app[0].test_client()
    assert client.post("/notes", json={"text": "first", "id": "dup"}).status_code == 201
    response = client.post(path, json=body) if body is not None else client.get(path)
    assert response.status_code == status
    assert response.get_json()["error"] == error
    assert response.get_json()["message"]
    assert table_count(vectorstore_engine) == 1


def test_json_errors_are_opt_in(vectorstore_url: URL) -> None:
    app = make_app(vectorstore_url)
    ext = VectorStore(app)
    routes(app, ext)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    try:
        client = app.test_client()
        missing = client.get("/notes/999999")
        assert missing.status_code == 500
        assert missing.get_json() is None
    finally:
        app.extensions["vectorstore"].engine.dispose()


def test_error_statuses_cover_the_tree() -> None:
    assert error_status(vs.FilterError("x")) == 400
    assert error_status(vs.DimensionMismatchError("x")) == 400
    assert error_status(vs.CollectionNotFoundError("x")) == 404
    assert error_status(vs.ConflictError("x")) == 409
    for exc in (vs.ConnectionLostError("x"), vs.QueryTimeoutError("x"),
                vs.ConcurrencyError("x"), vs.ReadOnlyError("x"), vs.ServerError("x")):  # fmt: skip
        assert error_status(exc) == 503
    assert error_status(vs.SchemaError("x")) == 500


def test_a_database_that_is_down_is_503_without_its_address(tmp_path: Path) -> None:
    closed = Path(tempfile.mkdtemp(prefix="vs-ext-down-", dir="/tmp"))
    try:
        app = make_app(f"postgresql://postgres@/vectorstore?host={closed}")
        ext = VectorStore(app, json_errors=True)  # the start-up check only logs
        routes(app, ext)
        response = app.test_client().get("/search?q=cats")
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert response.get_json()["error"] == "DatabaseUnavailable"
        assert str(closed) not in response.get_data(as_text=True)
        app.extensions["vectorstore"].engine.dispose()
    finally:
        shutil.rmtree(closed, ignore_errors=True)


# -- Flask-SQLAlchemy -------------------------------------------------------------------
class AppBase(DeclarativeBase):
    pass


class Note(AppBase):
    __tablename__ = "ext_notes"
    slug: Mapped[str] = mapped_column(String, primary_key=True)


@pytest.fixture(params=["psycopg2", "psycopg"])
def fsa_app(
    vectorstore_url: URL, request: pytest.FixtureRequest
) -> Iterator[tuple[Flask, VectorStore, SQLAlchemy]]:
    db = SQLAlchemy(model_class=AppBase)
    app = Flask(__name__)
    url = vectorstore_url.set(drivername=f"postgresql+{request.param}")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url.render_as_string(hide_password=False),
        VECTORSTORE_EMBEDDER="hashing",
    )
    db.init_app(app)
    ext = VectorStore(app, db=db, json_errors=True)
    with app.app_context():
        db.create_all()

    @app.post("/both")
    def both() -> tuple[Any, int]:
        body = flask.request.get_json()
        db.session.add(Note(slug=body["slug"]))
        ext.repository.add(f"note {body['slug']}", external_id=body["slug"])
        assert ext.session is db.session()
        if body.get("fail"):
            db.session.rollback()
            return {"rolled": True}, 200
        db.session.commit()
        return {}, 201

    yield app, ext, db
    with app.app_context():
        db.engine.dispose()


def test_flask_sqlalchemy_session_and_engine_are_shared(
    fsa_app: tuple[Flask, VectorStore, SQLAlchemy], vectorstore_engine: Engine
) -> None:
    app, ext, db = fsa_app
    with app.app_context():
        assert ext.engine is db.engine
    client = app.test_client()
    assert client.post("/both", json={"slug": "a"}).status_code == 201
    assert client.post("/both", json={"slug": "b", "fail": True}).get_json() == {"rolled": True}
    # One transaction: the app's row and the document were committed, or rolled back, together.
    assert table_count(vectorstore_engine, "ext_notes") == 1
    assert table_count(vectorstore_engine) == 1


# -- bad configuration is one error at start-up -----------------------------------------
def test_a_missing_url_is_one_clear_error() -> None:
    with pytest.raises(vs.ConfigurationError, match="VECTORSTORE_DATABASE_URL is not set"):
        VectorStore(make_app(None))


def test_an_embedder_of_the_wrong_dimension_is_refused(vectorstore_url: URL) -> None:
    app = make_app(vectorstore_url, VECTORSTORE_EMBEDDER=vs.HashingTestEmbedder(128))
    with pytest.raises(
        vs.ConfigurationError, match=r"128-d vectors but Document\.embedding is 384-d"
    ):
        VectorStore(app)


def test_a_collection_of_another_model_is_refused(
    vectorstore_url: URL, vectorstore_engine: Engine
) -> None:
    with vs.DocumentRepository.standalone(
        vectorstore_engine, collection="documents", embedding_model="other-model"
    ) as repo:
        repo.bulk_add([{"text": "x", "embedding": [0.1] * 384}])
    with pytest.raises(vs.ConfigurationError, match="other-model"):
        VectorStore(make_app(vectorstore_url))


def test_an_engine_without_pgvector_is_refused() -> None:
    app = make_app(None, VECTORSTORE_ENGINE=create_engine("sqlite://"))
    with pytest.raises(vs.ConfigurationError, match=r"needs PostgreSQL with pgvector.*'sqlite'"):
        VectorStore(app)


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("VECTORSTORE_MODEL", "nowhere.at_all:Doc", "cannot import"),
        ("VECTORSTORE_MODEL", "vectorstore:Collection", "DocumentMixin"),
        ("VECTORSTORE_EMBEDDER", 42, "model name or an object"),
        ("VECTORSTORE_COLLECTION", "", "non-empty"),
        ("VECTORSTORE_ENGINE", "postgresql://x", "must be a sqlalchemy Engine"),
    ],
)
def test_other_bad_settings_are_refused(
    vectorstore_url: URL, key: str, value: Any, needle: str
) -> None:
    with pytest.raises(vs.ConfigurationError, match=needle):
        VectorStore(make_app(vectorstore_url, **{key: value}))


def test_the_model_is_shared_per_process_and_not_loaded_at_start_up(vectorstore_url: URL) -> None:
    apps = [make_app(vectorstore_url, VECTORSTORE_EMBEDDER=vs.DEFAULT_MODEL_NAME,
                     VECTORSTORE_CHECK_DATABASE=False) for _ in range(2)]  # fmt: skip
    exts = [VectorStore(a) for a in apps]
    embedders = []
    for app, ext in zip(apps, exts, strict=True):
        with app.app_context():
            embedders.append(ext.embedder)
    assert embedders[0] is embedders[1] is shared_embedder(vs.DEFAULT_MODEL_NAME)
    assert isinstance(embedders[0], vs.SentenceTransformerEmbedder)
    assert not embedders[0].loaded
    for app in apps:
        app.extensions["vectorstore"].engine.dispose()


# -- `flask vectorstore ...` -------------------------------------------------------------
@pytest.fixture
def empty_url() -> Iterator[URL]:
    """A database without vectorstore's schema."""
    name = f"vs_flask_cli_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        url_for("postgres"), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield url_for(name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_the_cli_migrates_ingests_and_reports(empty_url: URL, tmp_path: Path) -> None:
    app = make_app(empty_url)
    VectorStore(app)
    engine = app.extensions["vectorstore"].engine
    try:
        with engine.connect() as conn:  # creating the app migrated nothing
            assert (
                conn.execute(text("SELECT to_regclass('vectorstore_documents')")).scalar() is None
            )
        runner = app.test_cli_runner()
        current = runner.invoke(args=["vectorstore", "current"])
        assert current.exit_code == 0
        assert "no vectorstore schema" in current.output
        check = runner.invoke(args=["vectorstore", "check"])
        assert check.exit_code == 1

        upgraded = runner.invoke(args=["vectorstore", "upgrade"])
        assert upgraded.exit_code == 0, upgraded.output
        head = vs.current_revision(engine)
        assert head is not None
        assert f"schema at revision {head}" in upgraded.output
        assert "(head)" in runner.invoke(args=["vectorstore", "current"]).output
        check = runner.invoke(args=["vectorstore", "check"])
        assert check.exit_code == 0, check.output

        source = tmp_path / "notes.csv"
        source.write_text("id,text,kind\nn1,a cat on the mat,pet\nn2,bond yields rose,finance\n")
        ingested = runner.invoke(args=["vectorstore", "ingest", str(source), "--id-column", "id",
                                       "--metadata-columns", "kind"])  # fmt: skip
        assert ingested.exit_code == 0, ingested.output
        assert "2 inserted" in ingested.output
        again = runner.invoke(args=["vectorstore", "ingest", str(source), "--id-column", "id"])
        assert "0 inserted" in again.output
        assert table_count(engine) == 2

        stats = runner.invoke(args=["vectorstore", "stats", "--json"])
        assert stats.exit_code == 0
        report = json.loads(stats.output)
        assert report["documents"] == 2
        assert [c["name"] for c in report["collections"]] == ["documents"]
        assert "documents" in runner.invoke(args=["vectorstore", "stats"]).output

        missing = runner.invoke(args=["vectorstore", "ingest", str(tmp_path / "nope.csv")])
        assert missing.exit_code == 1
        assert "no such file" in missing.output
        bad = runner.invoke(args=["vectorstore", "ingest", str(source), "--text-column", "nope"])
        assert bad.exit_code == 1
        assert "nope" in bad.output
        assert table_count(engine) == 2
    finally:
        engine.dispose()
