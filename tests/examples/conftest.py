"""The example apps are tested with vectorstore's own pytest plugin, as users would.

The plugin's fixtures (``vectorstore_url``, ``vectorstore_repo``, ...) are loaded
from the ``pytest11`` entry point.  Its server fixture is overridden here so the
throwaway databases live on the test suite's server, never on the user's
default embedded server.
"""

from __future__ import annotations

import pytest
from sqlalchemy import URL

from tests.conftest import url_for


@pytest.fixture(scope="session")
def vectorstore_server_url() -> URL:
    return url_for("postgres")
