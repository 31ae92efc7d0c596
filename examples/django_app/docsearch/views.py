"""Views: add a document, search.  vectorstore's errors become JSON through the shipped
middleware (400 bad input, 404, 409, 503); each view's work is one ``repository()`` block,
so it commits (or rolls back) with Django's transaction."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

import vectorstore as vs
from vectorstore.integrations import django as vectorstore


@csrf_exempt
@require_POST
def add_document(request: HttpRequest) -> JsonResponse:
    try:
        body = json.loads(request.body or b"null")
    except json.JSONDecodeError as exc:
        raise vs.ValidationError(f"malformed JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise vs.ValidationError('the body must be an object with a "text" string')
    with vectorstore.repository() as repo:
        doc = repo.add(
            body["text"], metadata=body.get("metadata"), external_id=body.get("external_id")
        )
    return JsonResponse({"id": doc.id, "external_id": doc.external_id}, status=201)


@require_GET
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
    with vectorstore.repository() as repo:
        hits = repo.nearest(query, k=k, filter=spec or None)
    return JsonResponse({
        "query": query, "strategy": hits.strategy,
        "results": [{"id": h.document.id, "external_id": h.document.external_id,
                     "text": h.document.text, "metadata": h.document.metadata_,
                     "score": h.score} for h in hits],
    })  # fmt: skip
