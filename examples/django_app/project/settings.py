"""Settings of the example project: PostgreSQL from the environment, vectorstore beside it.

The database is the one Django itself uses (``DATABASES["default"]``): the
shipped app ``vectorstore.integrations.django`` runs vectorstore on Django's own
connection and transaction, and ``manage.py migrate`` creates its tables.
Environment: ``DATABASE_URL`` (``postgresql://user:pass@host:port/name``, a
unix socket folder as ``?host=/path``), or ``DJANGO_DB_NAME``, ``DJANGO_DB_HOST``,
``DJANGO_DB_PORT``, ``DJANGO_DB_USER``, ``DJANGO_DB_PASSWORD``.
"""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
ROOT_URLCONF = "examples.django_app.project.urls"
INSTALLED_APPS = ["vectorstore.integrations.django", "examples.django_app.docsearch"]
MIDDLEWARE = ["vectorstore.integrations.django.middleware.VectorStoreErrorsMiddleware"]
USE_TZ = True


def _database(url: str | None) -> dict[str, str]:
    if url:
        from sqlalchemy import make_url

        parsed = make_url(url)
        host = parsed.query.get("host")
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parsed.database or "",
            "HOST": str(host if isinstance(host, str) else parsed.host or ""),
            "PORT": str(parsed.port or parsed.query.get("port") or ""),
            "USER": parsed.username or "",
            "PASSWORD": parsed.password or "",
        }
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("DJANGO_DB_NAME", "vectorstore"),
        "HOST": os.environ.get("DJANGO_DB_HOST", ""),
        "PORT": os.environ.get("DJANGO_DB_PORT", ""),
        "USER": os.environ.get("DJANGO_DB_USER", "postgres"),
        "PASSWORD": os.environ.get("DJANGO_DB_PASSWORD", ""),
    }


DATABASES = {"default": _database(os.environ.get("DATABASE_URL"))}

# vectorstore: which collection, and which embedding model ("hashing" is the
# deterministic test embedder; anything else is a sentence-transformers model).
VECTORSTORE = {
    "COLLECTION": "documents",
    "EMBEDDER": os.environ.get("VECTORSTORE_MODEL", "sentence-transformers/all-MiniLM-L6-v2"),
}
