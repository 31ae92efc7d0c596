"""The FastAPI app's routes: add one, add many, get one, search."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

import vectorstore as vs

from . import MAX_K, get_repository, get_session

router = APIRouter()

Session = Annotated[AsyncSession, Depends(get_session)]


def repository(request: Request, session: Session) -> vs.AsyncDocumentRepository[vs.Document]:
    return get_repository(request, session)


Repo = Annotated[vs.AsyncDocumentRepository[vs.Document], Depends(repository)]


class NewDocument(BaseModel):
    text: str
    metadata: dict[str, Any] | None = None
    external_id: str | None = None


def _doc_json(doc: vs.Document) -> dict[str, Any]:
    return {"id": doc.id, "external_id": doc.external_id, "text": doc.text,
            "metadata": doc.metadata_}  # fmt: skip


@router.post("/documents", status_code=201)
async def add_document(body: NewDocument, repo: Repo, session: Session) -> dict[str, Any]:
    doc = await repo.add(body.text, metadata=body.metadata, external_id=body.external_id)
    await session.commit()
    return _doc_json(doc)


@router.post("/documents/bulk", status_code=201)
async def add_documents(
    documents: list[NewDocument], repo: Repo, session: Session, on_conflict: str = "error"
) -> dict[str, int]:
    if not documents:
        raise vs.ValidationError("the body must be a non-empty list of documents")
    result = await repo.bulk_add([d.model_dump() for d in documents], on_conflict=on_conflict)
    await session.commit()
    return {"inserted": result.inserted, "skipped": result.skipped,
            "updated": result.updated, "embedded": result.embedded}  # fmt: skip


@router.get("/documents/{doc_id}")
async def get_document(doc_id: int, repo: Repo) -> dict[str, Any]:
    return _doc_json(await repo.get(doc_id))


def _where(raw_filter: str | None, where: list[str]) -> dict[str, Any] | None:
    spec: dict[str, Any] = {}
    if raw_filter:
        parsed = json.loads(raw_filter)
        if not isinstance(parsed, dict):
            raise vs.FilterError("filter must be a JSON object")
        spec.update(parsed)
    for item in where:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise vs.FilterError(f"where expects key=value, got {item!r}")
        try:
            spec[key] = json.loads(value)
        except json.JSONDecodeError:
            spec[key] = value
    return spec or None


@router.get("/search")
async def search(
    repo: Repo,
    q: str = "",
    k: int = 10,
    hybrid: bool = False,
    filter: str | None = None,
    where: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    if not q.strip():
        raise vs.ValidationError("q (the query text) is required")
    if not 1 <= k <= MAX_K:
        raise vs.ValidationError(f"k must be between 1 and {MAX_K}")
    spec = _where(filter, where or [])
    hits = await (repo.hybrid(q, k=k, filter=spec) if hybrid else repo.nearest(q, k=k, filter=spec))
    return {
        "query": q, "strategy": hits.strategy,
        "results": [{**_doc_json(h.document), "score": h.score, "distance": h.distance}
                    for h in hits],
    }  # fmt: skip
