"""A SQLAlchemy Session per request, closed (rolled back if uncommitted) at the end."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from sqlalchemy.orm import Session

from . import store


class VectorstoreSessionMiddleware:
    """Sets ``request.vectorstore_session``; it connects only when a view uses it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with Session(store.engine()) as session:
            request.vectorstore_session = session  # type: ignore[attr-defined]
            return self.get_response(request)
