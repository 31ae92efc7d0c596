"""A Flask app that stores and searches documents with vectorstore.

Run it (the embedded server and the real model by default)::

    flask --app examples.flask_app run

    curl -X POST localhost:5000/documents -H 'content-type: application/json' \\
         -d '{"text": "a cat on the mat", "metadata": {"kind": "pet"}}'
    curl 'localhost:5000/search?q=kitten&k=5&where=kind=pet'

Design decisions:

* **App factory.**  :func:`create_app` builds one Engine and one embedder per
  app (the model loads once), never at import time.
* **A session per request.**  The first use in a request opens a Session
  (:func:`session`); teardown closes it, rolling back anything the view did
  not commit.  The repository works inside that session and never commits:
  the view decides (``session().commit()`` after a successful write).
* **Errors are JSON with the right status.**  Bad input (vectorstore's
  ``ValidationError`` and its subclasses, a malformed body) is 400, a missing
  document or collection 404, a duplicate external id 409, and a database
  that cannot be reached 503.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, current_app, g, jsonify
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException

import vectorstore as vs

__all__ = ["create_app", "repository", "session"]

MAX_K = 100


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app.

    Config keys: ``VECTORSTORE_DATABASE_URL`` (default: the environment, else the
    embedded server), ``VECTORSTORE_COLLECTION`` (default ``"documents"``),
    ``VECTORSTORE_EMBEDDER`` (an :class:`~vectorstore.Embedder`; default the
    real all-MiniLM-L6-v2), ``VECTORSTORE_MIGRATE`` (run the migrations at
    start-up, default True).
    """
    app = Flask(__name__)
    app.config.update(
        VECTORSTORE_DATABASE_URL=None,
        VECTORSTORE_COLLECTION="documents",
        VECTORSTORE_EMBEDDER=None,
        VECTORSTORE_MIGRATE=True,
    )
    app.config.from_prefixed_env("FLASKAPP")
    app.config.update(config or {})

    url = app.config["VECTORSTORE_DATABASE_URL"]
    engine = vs.make_engine(url)
    if app.config["VECTORSTORE_MIGRATE"]:
        vs.migrate(engine)
    embedder = app.config["VECTORSTORE_EMBEDDER"] or vs.SentenceTransformerEmbedder()
    app.extensions["vectorstore"] = {
        "engine": engine,
        "sessions": sessionmaker(engine),
        "embedder": embedder,
    }

    @app.teardown_appcontext
    def close_session(_exc: BaseException | None) -> None:
        opened: Session | None = g.pop("vectorstore_session", None)
        if opened is not None:
            opened.close()  # rolls back whatever the view did not commit

    _register_errors(app)
    from .views import bp

    app.register_blueprint(bp)
    return app


def session() -> Session:
    """This request's Session (opened on first use, closed at teardown)."""
    if "vectorstore_session" not in g:
        g.vectorstore_session = current_app.extensions["vectorstore"]["sessions"]()
    opened: Session = g.vectorstore_session
    return opened


def repository() -> vs.DocumentRepository[vs.Document]:
    """A repository bound to this request's session."""
    ext = current_app.extensions["vectorstore"]
    return vs.DocumentRepository(
        session(), collection=current_app.config["VECTORSTORE_COLLECTION"],
        embedder=ext["embedder"],
    )  # fmt: skip


def _error(status: int, kind: str, message: str) -> tuple[Any, int]:
    return jsonify({"error": kind, "message": message}), status


def _register_errors(app: Flask) -> None:
    @app.errorhandler(vs.ValidationError)
    def bad_input(exc: vs.ValidationError) -> tuple[Any, int]:
        return _error(400, type(exc).__name__, str(exc))

    @app.errorhandler(json.JSONDecodeError)
    def bad_json(exc: json.JSONDecodeError) -> tuple[Any, int]:
        return _error(400, "ValidationError", f"malformed JSON: {exc.msg}")

    @app.errorhandler(vs.DocumentNotFoundError)
    @app.errorhandler(vs.CollectionNotFoundError)
    def not_found(exc: vs.VectorStoreError) -> tuple[Any, int]:
        return _error(404, type(exc).__name__, str(exc))

    @app.errorhandler(vs.ConflictError)
    def conflict(exc: vs.ConflictError) -> tuple[Any, int]:
        return _error(409, "ConflictError", str(exc))

    @app.errorhandler(vs.ConnectionLostError)
    @app.errorhandler(vs.ServerError)
    def unavailable(exc: vs.VectorStoreError) -> tuple[Any, int]:
        # The driver's message can name hosts and sockets: keep it in the log only.
        current_app.logger.warning("database unavailable: %s", exc)
        return _error(503, "DatabaseUnavailable", "the database cannot be reached; retry later")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Any, int]:
        return _error(exc.code or 500, exc.name.replace(" ", ""), exc.description or exc.name)
