"""The core runs without the extras; a missing extra is a MissingDependencyError naming it.

Each case runs in a fresh interpreter in which the optional package is made
unimportable (``sys.modules[name] = None``, which is what Python does for a
package that is not installed: ``ModuleNotFoundError``), against this test's
own database.  The wheel installed without extras into a fresh virtual
environment is ``tests/test_install.py``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import URL

from tests.test_cli import cli_env


def run_without(modules: list[str], code: str, url: URL) -> subprocess.CompletedProcess[str]:
    prelude = "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    script = "import sys\n" + prelude + textwrap.dedent(code)
    env = cli_env(VECTORSTORE_DATABASE_URL=url.render_as_string(hide_password=False))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip


CORE = """
import numpy as np
import vectorstore as vs

repo = vs.DocumentRepository.standalone(collection="core", embedder=vs.HashingTestEmbedder())
repo.add("one document", metadata={"n": 1})
vectors = np.random.default_rng(0).standard_normal((50, 384)).astype(np.float32)
print(repo.bulk_add(vectors, texts=[f"text {i}" for i in range(50)]).inserted)
repo.bulk_add([{"text": f"record {i}"} for i in range(5)])
hits = repo.nearest("one document", k=3, filter={"n": 1})
print(hits.returned, hits[0].document.text)
repo.close()
for name in ("pandas", "pyarrow", "torch"):
    assert sys.modules.get(name) is None, name
"""


def test_the_core_works_without_pandas_pyarrow_or_torch(db_url: URL) -> None:
    done = run_without(["pandas", "pyarrow", "torch"], CORE, db_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["50", "1 one document"]


@pytest.mark.parametrize(
    ("call", "extra"),
    [
        ("vs.ingest(str(tmp / 'x.csv'), repository=repo)", "vectorstore[io]"),
        ("vs.ingest(str(tmp / 'x.jsonl'), repository=repo)", "vectorstore[io]"),
        ("vs.ingest(str(tmp / 'x.parquet'), repository=repo)", "vectorstore[io]"),
        ("vs.export_parquet(repo, str(tmp / 'out.parquet'))", "vectorstore[io]"),
        ("repo.nearest('a', k=1).to_dataframe()", "vectorstore[io]"),
    ],
    ids=["csv", "jsonl", "parquet", "export", "to_dataframe"],
)
def test_a_missing_io_extra_names_it(db_url: URL, call: str, extra: str) -> None:
    code = f"""
    import pathlib, tempfile
    import vectorstore as vs
    tmp = pathlib.Path(tempfile.mkdtemp())
    (tmp / "x.csv").write_text("text\\na\\n")
    (tmp / "x.jsonl").write_text('{{"text": "a"}}\\n')
    (tmp / "x.parquet").write_bytes(b"PAR1")
    embedder = vs.HashingTestEmbedder()
    with vs.DocumentRepository.standalone(collection="io", embedder=embedder) as repo:
        repo.add("a")
        try:
            {call}
        except vs.MissingDependencyError as exc:
            assert isinstance(exc, ImportError) and isinstance(exc, vs.ConfigurationError)
            print(exc)
        else:
            raise SystemExit("no error")
        assert repo.count() == 1
    """
    done = run_without(["pandas", "pyarrow"], code, db_url)
    assert done.returncode == 0, done.stderr
    assert f"pip install '{extra}'" in done.stdout


def test_the_default_driver_is_the_installed_one(db_url: URL) -> None:
    code = """
    import vectorstore as vs
    print(vs.normalize_url("postgresql://u@h/db").drivername)
    print(vs.EmbeddedServer("/tmp/nowhere").url().drivername)
    """
    done = run_without(["psycopg2"], code, db_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["postgresql+psycopg", "postgresql+psycopg"]
    done = run_without([], code, db_url)
    assert done.stdout.split() == ["postgresql+psycopg2", "postgresql+psycopg2"]


@pytest.mark.parametrize(("missing", "scheme"), [("psycopg", "postgresql+psycopg"),
                                                  ("psycopg2", "postgresql+psycopg2")])
def test_a_missing_driver_names_its_extra_in_python_and_on_the_command_line(
    db_url: URL, missing: str, scheme: str
) -> None:
    url = db_url.set(drivername=scheme).render_as_string(hide_password=False)
    code = f"""
    import vectorstore as vs
    try:
        vs.make_engine({url!r})
    except vs.MissingDependencyError as exc:
        print(exc)
    from vectorstore.cli import main
    sys.exit(main(["--database-url", {url!r}, "stats"]))
    """
    done = run_without([missing], code, db_url)
    assert f"pip install 'vectorstore[{missing}]'" in done.stdout
    assert done.returncode == 1, done.stderr  # a configuration error, not an internal one
    assert "internal error" not in done.stderr
    assert done.stderr.startswith("error: ")
    assert f"pip install 'vectorstore[{missing}]'" in done.stderr


def test_without_any_driver_both_extras_are_named(db_url: URL) -> None:
    code = """
    import vectorstore as vs
    try:
        vs.make_engine("postgresql://u@localhost/db")
    except vs.MissingDependencyError as exc:
        print(exc)
    """
    done = run_without(["psycopg2", "psycopg"], code, db_url)
    assert done.returncode == 0, done.stderr
    assert "pip install 'vectorstore[psycopg2]'" in done.stdout
    assert "'vectorstore[psycopg]'" in done.stdout
