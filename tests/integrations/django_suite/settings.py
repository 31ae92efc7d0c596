"""Settings of the Django suite: the test server from the environment, psycopg 3 or psycopg2.

``tests/integrations/test_django.py`` sets ``VS_DJANGO_*`` and runs this suite
with pytest-django; ``VS_DJANGO_DRIVER=psycopg2`` hides psycopg 3 so Django's
backend loads psycopg2, as it does where only psycopg2 is installed.
"""

from __future__ import annotations

import os
import sys

if os.environ.get("VS_DJANGO_DRIVER") == "psycopg2":
    sys.modules["psycopg"] = None  # type: ignore[assignment]

SECRET_KEY = "tests-only"
ROOT_URLCONF = "tests.integrations.django_suite.urls"
ALLOWED_HOSTS = ["testserver"]
MIDDLEWARE = ["vectorstore.integrations.django.middleware.VectorStoreErrorsMiddleware"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "vectorstore.integrations.django",
    "tests.integrations.django_suite.testapp",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": f"vsdj_{os.getpid()}",
        "HOST": os.environ.get("VS_DJANGO_HOST", ""),
        "PORT": os.environ.get("VS_DJANGO_PORT", ""),
        "USER": os.environ.get("VS_DJANGO_USER", "postgres"),
        "PASSWORD": os.environ.get("VS_DJANGO_PASSWORD", ""),
    },
    "lite": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
}
VECTORSTORE = {"COLLECTION": "books", "EMBEDDER": "hashing"}
