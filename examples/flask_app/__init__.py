"""A Flask app that stores and searches documents: a thin user of the shipped extension.

Run it (the embedded server and the real model by default; migrate first)::

    flask --app examples.flask_app vectorstore upgrade
    flask --app examples.flask_app vectorstore ingest notes.csv --id-column id
    flask --app examples.flask_app run          # then open http://127.0.0.1:5000/

    curl -X POST localhost:5000/documents -H 'content-type: application/json' \\
         -d '{"text": "a cat on the mat", "metadata": {"kind": "pet"}}'
    curl 'localhost:5000/search?q=kitten&k=5&where=kind=pet'

Everything vectorstore-specific (engine, one embedder per process, a session
and repository per request, JSON errors, the ``flask vectorstore`` commands)
comes from :class:`vectorstore.integrations.flask.VectorStore`; this package
only has its routes (``views.py``: JSON API and the HTML search page) and the
JSON form of errors that are not vectorstore's (malformed JSON, 404 routes).
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Flask, jsonify
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

import vectorstore as vs
from vectorstore.integrations.flask import VectorStore

__all__ = ["create_app", "repository", "session", "store"]

MAX_K = 100

store = VectorStore(json_errors=True)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app.

    Config keys are the extension's (``VECTORSTORE_DATABASE_URL``,
    ``VECTORSTORE_COLLECTION``, ``VECTORSTORE_EMBEDDER``, ...); the URL defaults
    to ``$VECTORSTORE_DATABASE_URL``, else the embedded server.  Environment
    variables prefixed ``FLASKAPP_`` are read too.
    """
    app = Flask(__name__)
    app.config.from_prefixed_env("FLASKAPP")
    app.config.update(config or {})
    if not (app.config.get("VECTORSTORE_DATABASE_URL") or app.config.get("VECTORSTORE_ENGINE")):
        app.config["VECTORSTORE_DATABASE_URL"] = (
            os.environ.get("VECTORSTORE_DATABASE_URL") or vs.resolve_url()
        )
    store.init_app(app)
    _register_errors(app)
    from .views import bp

    app.register_blueprint(bp)
    return app


def session() -> Session:
    """This request's Session (the extension's)."""
    return store.session


def repository() -> vs.DocumentRepository[Any]:
    """A repository bound to this request's session (the extension's)."""
    return store.repository


def _register_errors(app: Flask) -> None:
    # vectorstore's own errors are the extension's (json_errors=True); these are the app's.
    @app.errorhandler(json.JSONDecodeError)
    def bad_json(exc: json.JSONDecodeError) -> tuple[Any, int]:
        body = {"error": "ValidationError", "message": f"malformed JSON: {exc.msg}"}
        return jsonify(body), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Any, int]:
        body = {"error": exc.name.replace(" ", ""), "message": exc.description or exc.name}
        return jsonify(body), exc.code or 500
