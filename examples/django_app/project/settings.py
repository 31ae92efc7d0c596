"""Settings of the example project: PostgreSQL from the environment, vectorstore beside it.

The database is the one Django itself uses (``DATABASES["default"]``);
vectorstore builds its SQLAlchemy engine from these very settings (see
``docsearch/store.py``), so there is one place to configure it.
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
INSTALLED_APPS = ["examples.django_app.docsearch"]
MIDDLEWARE = ["examples.django_app.docsearch.middleware.VectorstoreSessionMiddleware"]
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
VECTORSTORE_COLLECTION = "documents"
VECTORSTORE_MODEL = os.environ.get("VECTORSTORE_MODEL", "sentence-transformers/all-MiniLM-L6-v2")
