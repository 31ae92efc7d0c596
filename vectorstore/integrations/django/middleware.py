"""``VectorStoreErrorsMiddleware``: vectorstore's errors as JSON responses (opt-in).

Add ``"vectorstore.integrations.django.middleware.VectorStoreErrorsMiddleware"``
to ``MIDDLEWARE``.  The error tree maps as in the Flask extension: 400 bad
input, 404 no such collection or document, 409 a duplicate external id, 503
the database is unreachable, timed out, read-only or asks for a retry (with
``Retry-After``); connection messages stay in the log (they can name hosts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

import vectorstore as vs
from vectorstore.integrations._shared import error_body

__all__ = ["VectorStoreErrorsMiddleware"]

_log = logging.getLogger("vectorstore.integrations.django")


class VectorStoreErrorsMiddleware:
    """Turn a :class:`~vectorstore.VectorStoreError` raised by a view into a JSON response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        if not isinstance(exception, vs.VectorStoreError):
            return None
        status, body, headers = error_body(exception)
        if status >= 500:
            _log.warning("vectorstore error %s: %s", type(exception).__name__, exception)
        response = JsonResponse(body, status=status)
        for key, value in headers.items():
            response[key] = value
        return response
