"""Two views of the Django suite: add a book's document, search the books."""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from tests.integrations.django_suite.testapp.models import Book
from vectorstore.integrations import django as vectorstore


@csrf_exempt
def add(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body)
    book = Book.objects.get(pk=body["book"])
    with vectorstore.repository() as repo:
        doc = repo.add(body["text"], metadata={"book_id": book.pk}, external_id=body.get("id"))
    return JsonResponse({"id": doc.id}, status=201)


def search(request: HttpRequest) -> JsonResponse:
    row = vectorstore.mapped(Book)
    with vectorstore.repository() as repo:
        on = row.id == repo.model.metadata_["book_id"].as_integer()
        hits = repo.nearest(request.GET["q"], k=3, join=row, join_on=on)
    return JsonResponse({"titles": [h.extra.title for h in hits]})


urlpatterns = [path("add", add), path("search", search)]
