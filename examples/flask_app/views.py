"""The Flask app's routes: a JSON API (add one, add many, get one, search) and a search page."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, jsonify, render_template, request

import vectorstore as vs

from . import MAX_K, store

bp = Blueprint("documents", __name__, template_folder="templates")


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
    doc = store.repository.add(
        body["text"], metadata=body.get("metadata"), external_id=body.get("external_id")
    )
    store.session.commit()
    return jsonify(_doc_json(doc)), 201


@bp.post("/documents/bulk")
def add_documents() -> tuple[Any, int]:
    body = _body()
    records = body.get("documents") if isinstance(body, dict) else body
    if not isinstance(records, list) or not records:
        raise vs.ValidationError('the body must be a non-empty list (or {"documents": [...]})')
    on_conflict = request.args.get("on_conflict", "error")
    result = store.repository.bulk_add(records, on_conflict=on_conflict)  # type: ignore[arg-type]
    store.session.commit()
    return jsonify({"inserted": result.inserted, "skipped": result.skipped,
                    "updated": result.updated, "embedded": result.embedded}), 201  # fmt: skip


@bp.get("/documents/<int:doc_id>")
def get_document(doc_id: int) -> Any:
    return jsonify(_doc_json(store.repository.get(doc_id)))


def _where(args: Any) -> dict[str, Any] | None:
    spec: dict[str, Any] = {}
    raw_filter = args.get("filter")
    if raw_filter:
        parsed = json.loads(raw_filter)
        if not isinstance(parsed, dict):
            raise vs.FilterError("filter must be a JSON object")
        spec.update(parsed)
    for item in args.getlist("where"):
        if not item:
            continue  # an empty field of the search page's form
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise vs.FilterError(f"where expects key=value, got {item!r}")
        try:
            spec[key] = json.loads(value)
        except json.JSONDecodeError:
            spec[key] = value
    return spec or None


def _search(args: Any) -> tuple[str, vs.ResultSet[Any]]:
    query = args.get("q", "")
    if not query.strip():
        raise vs.ValidationError("q (the query text) is required")
    try:
        k = int(args.get("k", "10"))
    except ValueError:
        raise vs.ValidationError("k must be an integer") from None
    if not 1 <= k <= MAX_K:
        raise vs.ValidationError(f"k must be between 1 and {MAX_K}")
    hybrid = args.get("hybrid", "false").lower() in ("1", "true", "yes", "on")
    repo = store.repository
    where = _where(args)
    if hybrid:
        return query, repo.hybrid(query, k=k, filter=where)
    return query, repo.nearest(query, k=k, filter=where)


@bp.get("/search")
def search() -> Any:
    query, hits = _search(request.args)
    return jsonify({
        "query": query, "strategy": hits.strategy,
        "results": [{**_doc_json(h.document), "score": h.score, "distance": h.distance}
                    for h in hits],
    })  # fmt: skip


@bp.get("/")
def search_page() -> Any:
    """The HTML search page: a form, then a table of results (no JavaScript)."""
    args = request.args
    context: dict[str, Any] = {"args": args, "hits": None, "error": None}
    if args.get("q", "").strip():
        try:
            context["query"], context["hits"] = _search(args)
        except vs.ValidationError as exc:
            context["error"] = str(exc)
        except json.JSONDecodeError as exc:
            context["error"] = f"malformed JSON filter: {exc.msg}"
    status = 400 if context["error"] else 200
    return render_template("search.html", **context), status


@bp.get("/doc/<int:doc_id>")
def document_page(doc_id: int) -> Any:
    """One document as an HTML page (the search results link here)."""
    return render_template("document.html", doc=store.repository.get(doc_id))
