"""The Flask app's routes: add one, add many, get one, search."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, jsonify, request

import vectorstore as vs

from . import MAX_K, repository, session

bp = Blueprint("documents", __name__)


def _body() -> Any:
    raw = request.get_data(as_text=True)
    if not raw:
        raise vs.ValidationError("a JSON body is required")
    return json.loads(raw)


def _doc_json(doc: vs.Document) -> dict[str, Any]:
    return {"id": doc.id, "external_id": doc.external_id, "text": doc.text,
            "metadata": doc.metadata_}  # fmt: skip


@bp.post("/documents")
def add_document() -> tuple[Any, int]:
    body = _body()
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise vs.ValidationError('the body must be an object with a "text" string')
    doc = repository().add(
        body["text"], metadata=body.get("metadata"), external_id=body.get("external_id")
    )
    session().commit()
    return jsonify(_doc_json(doc)), 201


@bp.post("/documents/bulk")
def add_documents() -> tuple[Any, int]:
    body = _body()
    records = body.get("documents") if isinstance(body, dict) else body
    if not isinstance(records, list) or not records:
        raise vs.ValidationError('the body must be a non-empty list (or {"documents": [...]})')
    on_conflict = request.args.get("on_conflict", "error")
    result = repository().bulk_add(records, on_conflict=on_conflict)  # type: ignore[arg-type]
    session().commit()
    return jsonify({"inserted": result.inserted, "skipped": result.skipped,
                    "updated": result.updated, "embedded": result.embedded}), 201  # fmt: skip


@bp.get("/documents/<int:doc_id>")
def get_document(doc_id: int) -> Any:
    return jsonify(_doc_json(repository().get(doc_id)))


def _where() -> dict[str, Any] | None:
    spec: dict[str, Any] = {}
    raw_filter = request.args.get("filter")
    if raw_filter:
        parsed = json.loads(raw_filter)
        if not isinstance(parsed, dict):
            raise vs.FilterError("filter must be a JSON object")
        spec.update(parsed)
    for item in request.args.getlist("where"):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise vs.FilterError(f"where expects key=value, got {item!r}")
        try:
            spec[key] = json.loads(value)
        except json.JSONDecodeError:
            spec[key] = value
    return spec or None


@bp.get("/search")
def search() -> Any:
    query = request.args.get("q", "")
    if not query.strip():
        raise vs.ValidationError("q (the query text) is required")
    try:
        k = int(request.args.get("k", "10"))
    except ValueError:
        raise vs.ValidationError("k must be an integer") from None
    if not 1 <= k <= MAX_K:
        raise vs.ValidationError(f"k must be between 1 and {MAX_K}")
    hybrid = request.args.get("hybrid", "false").lower() in ("1", "true", "yes")
    repo = repository()
    hits = (
        repo.hybrid(query, k=k, filter=_where())
        if hybrid
        else repo.nearest(query, k=k, filter=_where())
    )
    return jsonify({
        "query": query, "strategy": hits.strategy,
        "results": [{**_doc_json(h.document), "score": h.score, "distance": h.distance}
                    for h in hits],
    })  # fmt: skip
