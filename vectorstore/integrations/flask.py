"""The Flask extension: ``VectorStore(app)`` or ``ext.init_app(app)``.

::

    from flask import Flask
    from vectorstore.integrations.flask import VectorStore

    vectorstore = VectorStore()

    def create_app() -> Flask:
        app = Flask(__name__)
        app.config["VECTORSTORE_DATABASE_URL"] = "postgresql://app@db/app"
        vectorstore.init_app(app, json_errors=True)
        return app

    @app.post("/notes")
    def add_note():
        doc = vectorstore.repository.add(request.json["text"])
        vectorstore.session.commit()          # the view owns the transaction
        return {"id": doc.id}, 201

Design decisions:

* **Configuration comes from ``app.config``** (the keys are in
  :data:`CONFIG_DEFAULTS`), or from a Flask-SQLAlchemy ``db`` handed to
  :meth:`VectorStore.init_app`, whose engine and request-scoped session are
  then shared: vectorstore's writes and the app's ORM writes are one
  transaction.  Bad configuration is one clear error when the app is created
  (:class:`~vectorstore.ConfigurationError`, or
  :class:`~vectorstore.ExtensionMissingError` for a server without pgvector),
  never a surprise at the first request.  A database that cannot be reached at
  start-up is only logged: it may come up later, and requests then get 503.
* **Nothing heavy per request.**  The engine is built once per app, and the
  embedder once per process (a model name maps to one embedder shared by every
  app of the process, :func:`shared_embedder`); sentence-transformers loads the
  model on its first ``embed``, not when the app is created.
* **A repository per request, on the request's Session.**  ``ext.session`` is
  Flask-SQLAlchemy's ``db.session`` when there is one, else a Session of our
  own opened on first use and closed at the end of the app context (rolling
  back whatever the view did not commit).  ``ext.repository`` is bound to it
  and never commits: the view does.
* **Migrations run from the CLI, never at app creation** (``flask vectorstore
  upgrade``), so N workers starting at once do not race to migrate.
* **JSON errors are opt-in** (``json_errors=True`` or
  ``VECTORSTORE_JSON_ERRORS``): vectorstore's error tree maps to 400 (bad
  input), 404 (no such collection or document), 409 (a duplicate external id)
  and 503 (the database is unreachable, timed out, read-only or asks for a
  retry, with ``Retry-After`` when the error is retryable).  Messages of
  connection errors stay in the log: they can name hosts.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g, jsonify
from sqlalchemy import URL, Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs

from ._flask_state import EXTENSION as _EXTENSION
from ._flask_state import State as _State
from ._flask_state import current_state
from ._shared import (
    ERROR_STATUS,
    check_dimension,
    document_model,
    embedder_from,
    error_body,
    error_status,
    shared_embedder,
)

__all__ = [
    "CONFIG_DEFAULTS",
    "ERROR_STATUS",
    "VectorStore",
    "error_status",
    "shared_embedder",
]

#: The configuration keys the extension reads, with their defaults.
CONFIG_DEFAULTS: dict[str, Any] = {
    # A URL (str or sqlalchemy.URL); ignored when an engine or a Flask-SQLAlchemy db is given.
    "VECTORSTORE_DATABASE_URL": None,
    # An existing Engine to use instead of a URL.
    "VECTORSTORE_ENGINE": None,
    "VECTORSTORE_COLLECTION": "documents",
    # An Embedder, or a model name ("hashing" is the torch-free test embedder).
    "VECTORSTORE_EMBEDDER": vs.DEFAULT_MODEL_NAME,
    "VECTORSTORE_DEVICE": None,
    # A DocumentMixin class, or its import path "package.module:Class".
    "VECTORSTORE_MODEL": None,
    "VECTORSTORE_JSON_ERRORS": False,
    # Connect once when the app is created to check pgvector and the collection.
    "VECTORSTORE_CHECK_DATABASE": True,
}

_SESSION_KEY = "_vectorstore_session"
_REPOSITORY_KEY = "_vectorstore_repository"


class VectorStore:
    """vectorstore for a Flask app (or for several, with :meth:`init_app`).

    Args:
        app: the app to initialise now (or call :meth:`init_app` later).
        db: a Flask-SQLAlchemy ``SQLAlchemy`` object: its engine and its
            request-scoped session are shared.
        json_errors: register JSON error handlers (default:
            ``app.config["VECTORSTORE_JSON_ERRORS"]``).
        embedder: an embedder to use instead of ``VECTORSTORE_EMBEDDER``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: Any = None,
        json_errors: bool | None = None,
        embedder: vs.Embedder | None = None,
    ) -> None:
        self._db = db
        self._json_errors = json_errors
        self._embedder = embedder
        if app is not None:
            self.init_app(app)

    # -- set-up --------------------------------------------------------------------
    def init_app(
        self,
        app: Flask,
        *,
        db: Any = None,
        json_errors: bool | None = None,
    ) -> None:
        """Configure ``app``: engine, embedder, checks, teardown, CLI, error handlers.

        Raises:
            ConfigurationError: no database configured, an embedder whose
                dimension differs from the document model's or from the
                collection's, an unknown model path.
            ExtensionMissingError: the server has no pgvector.
        """
        for key, value in CONFIG_DEFAULTS.items():
            app.config.setdefault(key, value)
        db = db if db is not None else self._db
        engine, owns_engine = _engine(app, db)
        try:
            state = self._configure(app, engine, owns_engine, db)
        except BaseException:
            if owns_engine:
                engine.dispose()  # a refused configuration leaves no pool behind
            raise
        app.extensions[_EXTENSION] = state
        app.teardown_appcontext(_close_session)
        from ._flask_cli import cli

        app.cli.add_command(cli)
        wanted = json_errors if json_errors is not None else self._json_errors
        if wanted if wanted is not None else app.config["VECTORSTORE_JSON_ERRORS"]:
            app.register_error_handler(vs.VectorStoreError, _json_error)

    def _configure(self, app: Flask, engine: Engine, owns_engine: bool, db: Any) -> _State:
        model = document_model(app.config["VECTORSTORE_MODEL"], "VECTORSTORE_MODEL")
        embedder = self._embedder or embedder_from(
            app.config["VECTORSTORE_EMBEDDER"], app.config["VECTORSTORE_DEVICE"],
            "VECTORSTORE_EMBEDDER",
        )  # fmt: skip
        check_dimension(embedder, model, "VECTORSTORE_EMBEDDER")
        collection = app.config["VECTORSTORE_COLLECTION"]
        if not isinstance(collection, str) or not collection:
            raise vs.ConfigurationError("VECTORSTORE_COLLECTION must be a non-empty string")
        state = _State(engine, embedder, model, collection, db, owns_engine)
        if app.config["VECTORSTORE_CHECK_DATABASE"]:
            _check_database(app, state)
        return state

    # -- per app / per request -----------------------------------------------------
    @staticmethod
    def _state() -> _State:
        return current_state()

    @property
    def engine(self) -> Engine:
        """The current app's Engine."""
        return self._state().engine

    @property
    def embedder(self) -> vs.Embedder:
        """The current app's embedder (one per process and model)."""
        return self._state().embedder

    @property
    def session(self) -> Session:
        """The request's Session: Flask-SQLAlchemy's, or ours (closed at teardown)."""
        state = self._state()
        if state.db is not None:
            shared: Session = state.db.session()
            return shared
        opened: Session | None = g.get(_SESSION_KEY)
        if opened is None:
            opened = state.sessions()
            setattr(g, _SESSION_KEY, opened)
        return opened

    @property
    def repository(self) -> vs.DocumentRepository[Any]:
        """The request's repository on :attr:`session`, for ``VECTORSTORE_COLLECTION``."""
        found: vs.DocumentRepository[Any] | None = g.get(_REPOSITORY_KEY)
        if found is None:
            found = self.repository_for()
            setattr(g, _REPOSITORY_KEY, found)
        return found

    def repository_for(self, collection: str | None = None) -> vs.DocumentRepository[Any]:
        """A new repository on the request's Session, for ``collection`` (default: the app's)."""
        state = self._state()
        return vs.DocumentRepository(
            self.session,
            collection=collection or state.collection,
            embedder=state.embedder,
            model=state.model,
        )

    def standalone(self, collection: str | None = None) -> vs.DocumentRepository[Any]:
        """A repository that owns its transactions (CLI jobs, background threads)."""
        state = self._state()
        return vs.DocumentRepository.standalone(
            state.engine,
            collection=collection or state.collection,
            embedder=state.embedder,
            model=state.model,
        )


# -- set-up helpers -----------------------------------------------------------------
def _engine(app: Flask, db: Any) -> tuple[Engine, bool]:
    engine, owned = _configured_engine(app, db)
    if engine.dialect.name != "postgresql":
        raise vs.ConfigurationError(
            f"vectorstore needs PostgreSQL with pgvector, but the configured engine is "
            f"{engine.dialect.name!r}"
        )
    return engine, owned


def _configured_engine(app: Flask, db: Any) -> tuple[Engine, bool]:
    if db is not None:
        with app.app_context():
            shared: Engine = db.engine
        return shared, False
    given = app.config["VECTORSTORE_ENGINE"]
    if given is not None:
        if not isinstance(given, Engine):
            raise vs.ConfigurationError("VECTORSTORE_ENGINE must be a sqlalchemy Engine")
        return given, False
    url = app.config["VECTORSTORE_DATABASE_URL"]
    if url is None or (isinstance(url, str) and not url.strip()):
        raise vs.ConfigurationError(
            "VECTORSTORE_DATABASE_URL is not set: set it in app.config (e.g. "
            "'postgresql://user:pass@host/db'), pass VectorStore(db=...) with "
            "Flask-SQLAlchemy, or set VECTORSTORE_ENGINE"
        )
    if not isinstance(url, (str, URL)):
        raise vs.ConfigurationError("VECTORSTORE_DATABASE_URL must be a string or a sqlalchemy URL")
    return vs.make_engine(url), True


def _check_database(app: Flask, state: _State) -> None:
    """pgvector on the server, and a collection that matches the embedder, if it exists."""
    from vectorstore.errors import db_errors

    try:
        with db_errors("check the database"), state.engine.connect() as conn:
            available = conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            ).first()
    except (vs.ConnectionLostError, vs.ServerError) as exc:
        app.logger.warning("vectorstore: the database could not be checked at start-up: %s", exc)
        return
    if available is None:
        raise vs.ExtensionMissingError(
            "the database configured for vectorstore has no pgvector extension: install "
            "pgvector on that PostgreSQL server (e.g. the postgresql-<version>-pgvector "
            "package), then run `flask vectorstore upgrade`"
        )
    with state.sessions() as session:
        repo = vs.DocumentRepository(
            session, collection=state.collection, embedder=state.embedder, model=state.model,
            create=False,
        )  # fmt: skip
        try:
            info = repo.collection
        except (vs.CollectionNotFoundError, vs.ConnectionLostError):
            return
        except vs.SchemaError as exc:
            if isinstance(exc, vs.ExtensionMissingError):
                raise
            return  # not migrated yet: `flask vectorstore upgrade` comes next
        except vs.ValidationError as exc:
            raise vs.ConfigurationError(
                f"VECTORSTORE_COLLECTION {state.collection!r}: {exc}"
            ) from exc
    if info.dimension != state.embedder.dimension:
        raise vs.ConfigurationError(
            f"collection {info.name!r} stores {info.dimension}-d vectors but the embedder makes "
            f"{state.embedder.dimension}-d ones"
        )


def _close_session(_exc: BaseException | None) -> None:
    g.pop(_REPOSITORY_KEY, None)
    opened: Session | None = g.pop(_SESSION_KEY, None)
    if opened is not None:
        opened.close()  # rolls back whatever the view did not commit


def _json_error(exc: vs.VectorStoreError) -> tuple[Any, int, dict[str, str]]:
    status, body, headers = error_body(exc)
    if status >= 500:
        current_app.logger.warning("vectorstore error %s: %s", type(exc).__name__, exc)
    return jsonify(body), status, headers
