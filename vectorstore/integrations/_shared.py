"""What the framework integrations share: one embedder per process and model, model paths."""

from __future__ import annotations

import importlib
import threading
from typing import Any

import vectorstore as vs

__all__ = [
    "ERROR_STATUS",
    "check_dimension",
    "document_model",
    "embedder_from",
    "error_body",
    "error_status",
    "shared_embedder",
]

#: HTTP status per error class; the most specific class listed wins (500 otherwise).
ERROR_STATUS: dict[type[vs.VectorStoreError], int] = {
    vs.ValidationError: 400,
    vs.CollectionNotFoundError: 404,
    vs.DocumentNotFoundError: 404,
    vs.ConflictError: 409,
    vs.ConnectionLostError: 503,
    vs.ServerError: 503,
    vs.QueryTimeoutError: 503,
    vs.ConcurrencyError: 503,
    vs.ReadOnlyError: 503,
    vs.StorageFullError: 503,
}


def error_status(exc: vs.VectorStoreError) -> int:
    """The HTTP status an error maps to (500 for anything not in :data:`ERROR_STATUS`)."""
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 500


def error_body(exc: vs.VectorStoreError) -> tuple[int, dict[str, str], dict[str, str]]:
    """Status, JSON body and headers of the response for ``exc``.

    Messages that can name hosts, sockets or server internals (connection
    errors, a full disk, anything unexpected) are replaced by a generic line:
    the caller logs the real one.  A 503 carries ``Retry-After``.
    """
    status = error_status(exc)
    headers = {"Retry-After": "1" if exc.retryable else "5"} if status == 503 else {}
    kind, message = type(exc).__name__, str(exc)
    if isinstance(exc, (vs.ConnectionLostError, vs.ServerError)):
        kind, message = "DatabaseUnavailable", "the database cannot be reached; retry later"
    elif isinstance(exc, vs.StorageFullError) or status == 500:
        message = "the vector store failed; see the server's log"
    return status, {"error": kind, "message": message}, headers


_lock = threading.Lock()
_embedders: dict[tuple[str, str | None], vs.Embedder] = {}


def shared_embedder(model: str, device: str | None = None) -> vs.Embedder:
    """The process's one embedder for ``model`` (created on first use, then reused).

    Every app and request of a process that asks for the same model and device
    gets the same object, so sentence-transformers loads the model once (on
    the first ``embed``, not here).  ``"hashing"`` is the torch-free test embedder.
    """
    from vectorstore.embedders import embedder_for

    key = (model, device)
    with _lock:
        found = _embedders.get(key)
        if found is None:
            found = _embedders[key] = embedder_for(model, device=device)
        return found


def embedder_from(value: Any, device: str | None, setting: str) -> vs.Embedder:
    """An embedder from a setting: a model name (shared per process) or an Embedder."""
    if isinstance(value, str) and value:
        return shared_embedder(value, device)
    if all(hasattr(value, name) for name in ("model_name", "dimension", "embed")):
        embedder: vs.Embedder = value
        return embedder
    raise vs.ConfigurationError(
        f"{setting} must be a model name or an object with model_name, dimension and embed()"
    )


def document_model(value: Any, setting: str) -> type[Any]:
    """The document class a setting names: None (Document), a class, or "pkg.module:Class"."""
    if value is None:
        return vs.Document
    if isinstance(value, str):
        module, _, name = value.partition(":")
        try:
            value = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise vs.ConfigurationError(
                f"{setting} {value!r}: cannot import it ('package.module:Class')"
            ) from exc
    if not (isinstance(value, type) and issubclass(value, vs.DocumentMixin)):
        raise vs.ConfigurationError(f"{setting} must be a class using vectorstore.DocumentMixin")
    return value


def check_dimension(embedder: vs.Embedder, model: type[Any], setting: str) -> None:
    """Refuse an embedder whose vectors do not fit the model's embedding column."""
    from vectorstore.models import embedding_dimension

    dimension = embedding_dimension(model)
    if embedder.dimension != dimension:
        raise vs.ConfigurationError(
            f"{setting} {embedder.model_name!r} makes {embedder.dimension}-d vectors but "
            f"{model.__name__}.embedding is {dimension}-d"
        )
