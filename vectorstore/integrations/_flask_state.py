"""What one app's vectorstore extension holds, and how a request or a command finds it.

Its own module so that the extension (:mod:`.flask`) and its command group
(:mod:`._flask_cli`) both stand on it without importing each other.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

import vectorstore as vs

__all__ = ["EXTENSION", "State", "current_state"]

#: The key of the extension's state in ``app.extensions``.
EXTENSION = "vectorstore"


class State:
    """What one app's extension holds: engine, sessions, embedder, document model."""

    def __init__(
        self,
        engine: Engine,
        embedder: vs.Embedder,
        model: type[Any],
        collection: str,
        db: Any,
        owns_engine: bool,
    ) -> None:
        self.engine = engine
        self.embedder = embedder
        self.model = model
        self.collection = collection
        self.db = db
        self.owns_engine = owns_engine
        self.sessions = sessionmaker(engine)


def current_state() -> State:
    """The current app's state.

    Raises:
        ConfigurationError: the extension is not initialised on this app.
    """
    try:
        state: State = current_app.extensions[EXTENSION]
    except KeyError:
        raise vs.ConfigurationError(
            "vectorstore is not initialised on this app: call VectorStore(app) "
            "or vectorstore.init_app(app)"
        ) from None
    return state
