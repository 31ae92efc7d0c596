"""App configuration of the docsearch example app."""

from __future__ import annotations

from django.apps import AppConfig


class DocsearchConfig(AppConfig):
    name = "examples.django_app.docsearch"
    label = "docsearch"
    default_auto_field = "django.db.models.BigAutoField"
