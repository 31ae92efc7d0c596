"""The integrations are tested as users run them: with vectorstore's pytest plugin.

The plugin's server fixture is pointed at the suite's own server, so the
throwaway databases never land on the user's default embedded server.  The
Django suite (``django_suite/``) runs in a pytest of its own, with
pytest-django enabled (``test_django.py`` starts it): it is not collected here.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import URL

from tests.conftest import url_for

collect_ignore = [] if os.environ.get("VECTORSTORE_DJANGO_SUITE") else ["django_suite"]


@pytest.fixture(scope="session")
def vectorstore_server_url() -> URL:
    return url_for("postgres")
