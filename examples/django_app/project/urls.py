"""URL routes of the example project."""

from __future__ import annotations

from django.urls import path

from examples.django_app.docsearch import views

urlpatterns = [
    path("documents", views.add_document, name="add-document"),
    path("search", views.search, name="search"),
]
