"""``vectorstore search``: one query through the repository, as plain dictionaries.

The CLI prints these as a table or as JSON; the ranking itself (nearest,
filters, hybrid) belongs to the repository and the search modules.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from .embedders import Embedder
from .repository import DocumentRepository

__all__ = ["run_search"]


def run_search(
    engine: Engine,
    query: str,
    *,
    collection: str,
    embedder: Embedder,
    k: int,
    filter: dict[str, Any] | None = None,
    hybrid: bool = False,
) -> list[dict[str, Any]]:
    """Search ``collection`` for ``query``; one dictionary per hit, best first."""
    with Session(engine) as session:
        repo: DocumentRepository[Any] = DocumentRepository(
            session, collection=collection, embedder=embedder, create=False
        )
        options: dict[str, Any] = {}
        if filter is not None:
            options["filter"] = filter
        if hybrid:
            options["hybrid"] = True
        hits = repo.nearest(query, k=k, **options)
        return [
            {
                "id": hit.document.id,
                "external_id": hit.document.external_id,
                "score": round(float(hit.score), 6),
                "distance": round(float(hit.distance), 6),
                "metadata": hit.document.metadata_,
                "text": hit.document.text,
            }
            for hit in hits
        ]
