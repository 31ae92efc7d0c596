"""Settings of the example project: PostgreSQL from the environment, vectorstore beside it.

The database is the one Django itself uses (``DATABASES["default"]``);
vectorstore builds its SQLAlchemy engine from these very settings (see
``docsearch/store.py``), so there is one place to configure it.
Environment: ``DJANGO_DB_NAME``, ``DJANGO_DB_HOST`` (a host name or a unix
socket folder), ``DJANGO_DB_PORT``, ``DJANGO_DB_USER``, ``DJANGO_DB_PASSWORD``.
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("DJANGO_DB_NAME", "vectorstore"),
        "HOST": os.environ.get("DJANGO_DB_HOST", ""),
        "PORT": os.environ.get("DJANGO_DB_PORT", ""),
        "USER": os.environ.get("DJANGO_DB_USER", "postgres"),
        "PASSWORD": os.environ.get("DJANGO_DB_PASSWORD", ""),
    }
}

# vectorstore: which collection, and which embedding model ("hashing" is the
# deterministic test embedder; anything else is a sentence-transformers model).
VECTORSTORE_COLLECTION = "documents"
VECTORSTORE_MODEL = os.environ.get("VECTORSTORE_MODEL", "sentence-transformers/all-MiniLM-L6-v2")
