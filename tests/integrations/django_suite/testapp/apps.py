from __future__ import annotations

from django.apps import AppConfig


class TestappConfig(AppConfig):
    name = "tests.integrations.django_suite.testapp"
    label = "testapp"
    default_auto_field = "django.db.models.BigAutoField"
