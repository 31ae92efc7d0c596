"""Where the example gets vectorstore from: the shipped Django app, nothing of its own.

``vectorstore.integrations.django`` builds the SQLAlchemy engine on Django's own
connection (``DATABASES``), reads ``settings.VECTORSTORE``, makes the embedder
once per process and gives a repository per block of work, in
``transaction.atomic()``.  These names are kept for the example's views,
command and tests.
"""

from __future__ import annotations

from django.db import connections

from vectorstore.integrations.django import database_url, engine, repository

__all__ = ["database_url", "dispose_all", "engine", "repository"]


def dispose_all() -> None:
    """Close Django's connections (tests that point DATABASES elsewhere, forking workers)."""
    connections.close_all()
