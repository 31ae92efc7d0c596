"""The Django app's suite (``django_suite/``), run with pytest-django in a pytest of its own.

pytest-django stays off in the main suite (``-p no:django`` in pyproject's
addopts): it would configure Django for every test.  Here it runs the Django
suite in a subprocess, once per driver Django's backend can load (psycopg 3,
and psycopg2 with psycopg 3 hidden), against the suite's test server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TARGET

ROOT = Path(__file__).resolve().parents[2]
SUITE = Path(__file__).resolve().parent / "django_suite"


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_the_django_suite_passes(driver: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "VECTORSTORE_"))}
    env.update(
        VECTORSTORE_DJANGO_SUITE="1",
        VS_DJANGO_DRIVER=driver,
        VS_DJANGO_HOST=str(TARGET["host"]),
        VS_DJANGO_PORT=str(TARGET["port"]),
        VS_DJANGO_USER=str(TARGET["user"]),
        VS_DJANGO_PASSWORD=str(TARGET["password"] or ""),
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(SUITE), "-q", "-p", "no:cacheprovider",
         "-o", "addopts=-ra --strict-markers",
         "--ds=tests.integrations.django_suite.settings", "--create-db",
         "--basetemp", str(tmp_path / "basetemp")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout
    assert "error" not in done.stdout.splitlines()[-1]


def test_bad_settings_stop_manage_py_at_start_up() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "VECTORSTORE_"))}
    env.update(VECTORSTORE_MODEL="vectorstore/hashing-test-embedder-16", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "django_app" / "manage.py"), "check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    assert "ConfigurationError" in done.stderr
    assert "makes 16-d vectors but Document.embedding is 384-d" in done.stderr
