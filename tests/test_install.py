"""The built wheel, installed with no extras but a driver into a fresh virtual environment.

What a user gets from ``pip install 'vectorstore[psycopg2]'``: the core
(``add``, ``bulk_add`` of arrays and records, ``nearest``, migrations) runs
against the test server, pandas, pyarrow and torch are not installed, and the
features that need them say which extra to add.  pip fetches the core's
dependencies by name (from its cache when it has them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import URL

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import importlib.util, sys
import numpy as np
import vectorstore as vs

for name in ("pandas", "pyarrow", "torch", "sentence_transformers", "psycopg"):
    assert importlib.util.find_spec(name) is None, f"{name} was installed"
url = sys.argv[1]
vs.migrate(url)
assert vs.check_schema(url) == []
with vs.DocumentRepository.standalone(url, collection="wheel",
                                      embedder=vs.HashingTestEmbedder()) as repo:
    repo.add("the first document", metadata={"n": 0})
    vectors = np.random.default_rng(0).standard_normal((100, 384)).astype(np.float32)
    assert repo.bulk_add(vectors, texts=[f"text {i}" for i in range(100)]).inserted == 100
    assert repo.bulk_add([{"text": "a record", "metadata": {"n": 1}}]).inserted == 1
    hits = repo.nearest("the first document", k=5)
    assert hits.returned == 5 and hits[0].document.text == "the first document"
    assert repo.nearest("a record", k=1, filter={"n": 1})[0].document.text == "a record"
    for call in (lambda: repo.ingest("x.csv"), lambda: hits.to_dataframe(),
                 lambda: vs.SentenceTransformerEmbedder().embed(["x"])):
        try:
            call()
        except vs.MissingDependencyError as exc:
            print("missing:", exc)
        else:
            raise SystemExit("no MissingDependencyError")
    print("rows", repo.count())
"""


def plain_env() -> dict[str, str]:
    """The environment a user's shell would have (no test settings, offline models)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VECTORSTORE_", "PYTHON", "VIRTUAL_ENV"))}  # fmt: skip
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


@pytest.mark.slow
def test_the_wheel_without_extras_runs_the_core(db_url: URL, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         "-w", str(dist), str(ROOT)],
        check=True, timeout=600, env=plain_env(), cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = dist.glob("vectorstore-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{wheel}[psycopg2]"],
        capture_output=True, text=True, timeout=900, env=plain_env(),
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    (tmp_path / "x.csv").write_text("text\na\n")
    done = subprocess.run(
        [str(python), "-c", textwrap.dedent(SCRIPT), db_url.render_as_string(hide_password=False)],
        capture_output=True, text=True, timeout=300, env=plain_env(), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("missing:") == 3
    assert "pip install 'vectorstore[io]'" in done.stdout
    assert "pip install 'vectorstore[embeddings]'" in done.stdout
    assert "rows 102" in done.stdout
    # the console script answers --help without the heavy parts
    helped = subprocess.run([str(venv / "bin" / "vectorstore"), "--help"], capture_output=True,
                            text=True, timeout=60, env=plain_env())  # fmt: skip
    assert helped.returncode == 0
    assert "collection" in helped.stdout
