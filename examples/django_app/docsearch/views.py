"""Views: add a document, search. Errors are JSON: 400 bad input, 404, 409, 503."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

import vectorstore as vs

from . import store

_STATUS: list[tuple[type[Exception], int]] = [
    (vs.ValidationError, 400),
    (json.JSONDecodeError, 400),
    (vs.CollectionNotFoundError, 404),
    (vs.DocumentNotFoundError, 404),
    (vs.ConflictError, 409),
    (vs.ConnectionLostError, 503),
    (vs.ServerError, 503),
]


def json_errors(view: Callable[..., JsonResponse]) -> Callable[..., JsonResponse]:
    """Turn vectorstore's errors into JSON responses with the matching status."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        try:
            return view(request, *args, **kwargs)
        except Exception as exc:
            for kind, status in _STATUS:
                if isinstance(exc, kind):
                    message = str(exc) if status != 503 else "the database cannot be reached"
                    return JsonResponse(
                        {"error": type(exc).__name__, "message": message}, status=status
                    )
            raise

    return wrapper


@csrf_exempt
@require_POST
@json_errors
def add_document(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body or b"null")
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise vs.ValidationError('the body must be an object with a "text" string')
    session = request.vectorstore_session  # type: ignore[attr-defined]
    doc = store.repository(session).add(
        body["text"], metadata=body.get("metadata"), external_id=body.get("external_id")
    )
    session.commit()
    return JsonResponse({"id": doc.id, "external_id": doc.external_id}, status=201)


@require_GET
@json_errors
def search(request: HttpRequest) -> JsonResponse:
    query = request.GET.get("q", "")
    if not query.strip():
        raise vs.ValidationError("q (the query text) is required")
    try:
        k = int(request.GET.get("k", "10"))
    except ValueError:
        raise vs.ValidationError("k must be an integer") from None
    spec: dict[str, Any] = {}
    for item in request.GET.getlist("where"):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise vs.FilterError(f"where expects key=value, got {item!r}")
        spec[key] = value
    session = request.vectorstore_session  # type: ignore[attr-defined]
    hits = store.repository(session).nearest(query, k=k, filter=spec or None)
    return JsonResponse({
        "query": query, "strategy": hits.strategy,
        "results": [{"id": h.document.id, "external_id": h.document.external_id,
                     "text": h.document.text, "metadata": h.document.metadata_,
                     "score": h.score} for h in hits],
    })  # fmt: skip
