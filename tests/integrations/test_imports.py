"""Importing vectorstore imports no framework; importing an integration starts nothing."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_import_vectorstore_imports_no_framework() -> None:
    run("import sys, vectorstore\n"
        "assert not {'flask', 'django', 'flask_sqlalchemy'} & set(sys.modules)")  # fmt: skip


def test_importing_the_integrations_connects_to_nothing_and_loads_no_model() -> None:
    run("import sys\n"
        "import vectorstore.integrations.flask, vectorstore.integrations.django\n"
        "import vectorstore.integrations.django.middleware, vectorstore.alembic\n"
        "assert 'torch' not in sys.modules\n"
        "assert 'sentence_transformers' not in sys.modules\n"
        "from django.conf import settings\n"
        "assert not settings.configured  # the Django integration read no setting\n")  # fmt: skip


def test_importing_the_spark_integration_imports_no_spark() -> None:
    run("import sys, vectorstore\n"
        "import vectorstore.integrations.spark\n"
        "assert 'pyspark' not in sys.modules\n"
        "assert 'torch' not in sys.modules\n")  # fmt: skip
